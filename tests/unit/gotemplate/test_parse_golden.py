"""Differential parse tests against goldens produced by Go 1.19 itself.

``parse_goldens.json`` holds, for ~2,900 sources (the conformance templates, the inputs
of Go's parse_test.go and lex_test.go, and random mutations of them, two thirds of
which fail to parse), what Go's ``template.New("template.tmpl").Funcs(...).Parse``
returned: the exact error message, or every template's ``String()`` and the
``ErrorContext`` location of every node (plus the kinds and values of numbers).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from muster.errors import TemplateSyntaxError
from muster.golang.values import GoFunc
from muster.gotemplate import Template, nodes

GOLDENS = json.loads((Path(__file__).parent / "parse_goldens.json").read_text(encoding="utf-8"))
FUNCS = {name: GoFunc(lambda: None, name=name) for name in GOLDENS["funcs"]}
CASES: list[dict[str, Any]] = GOLDENS["cases"]


def _float_bits(f: float) -> str:
    return format(struct.unpack("<Q", struct.pack("<d", f))[0], "x")


def _positions(tree: nodes.Tree) -> list[str]:
    out: list[str] = []

    def walk(node: nodes.Node | None) -> None:
        if node is None:
            return
        name, line, col = tree.error_context(node)
        out.append(f"{name}:{line}:{col}")
        match node:
            case nodes.NumberNode():
                flags = ":".join(
                    str(f).lower() for f in (node.is_int, node.is_uint, node.is_float, node.is_complex)
                )
                values = (node.float_value, node.complex_value.real, node.complex_value.imag)
                out.append(
                    f"N:{flags}:{node.int_value}:{node.uint_value}:" + ":".join(map(_float_bits, values))
                )
            case nodes.ListNode():
                for child in node.nodes:
                    walk(child)
            case nodes.ActionNode():
                walk(node.pipe)
            case nodes.PipeNode():
                for part in (*node.decl, *node.cmds):
                    walk(part)
            case nodes.CommandNode():
                for arg in node.args:
                    walk(arg)
            case nodes.ChainNode():
                walk(node.node)
            case nodes.BranchNode():
                walk(node.pipe)
                walk(node.list)
                walk(node.else_list)
            case nodes.TemplateNode():
                walk(node.pipe)

    walk(tree.root)
    return out


def _go_tree_string(node: nodes.Node) -> str:
    """``str(node)`` with Go's spelling of assignments, for comparison with Go."""
    match node:
        case nodes.ListNode():
            return "".join(_go_tree_string(n) for n in node.nodes)
        case nodes.ActionNode():
            assert node.pipe is not None
            return "{{" + _go_pipe(node.pipe) + "}}"
        case nodes.BranchNode():
            assert node.pipe is not None and node.list is not None
            out = "{{" + node.keyword + " " + _go_pipe(node.pipe) + "}}" + _go_tree_string(node.list)
            if node.else_list is not None:
                out += "{{else}}" + _go_tree_string(node.else_list)
            return out + "{{end}}"
        case nodes.TemplateNode() if node.pipe is not None:
            return "{{template " + nodes.go_quote(node.name) + " " + _go_pipe(node.pipe) + "}}"
    return str(node)


def _go_pipe(pipe: nodes.PipeNode) -> str:
    text = str(pipe)
    if pipe.is_assign:
        head = ", ".join(str(v) for v in pipe.decl)
        text = head + " := " + text[len(head) + len(" = ") :]
    return text


@pytest.mark.parametrize("case", CASES, ids=range(len(CASES)))
def test_parse_matches_go(case: dict[str, Any]) -> None:
    template = Template("template.tmpl", funcs=FUNCS)
    if "err" in case:
        with pytest.raises(TemplateSyntaxError) as info:
            template.parse(case["src"])
        assert str(info.value) == case["err"]
        return
    template.parse(case["src"])
    trees = {t.name: t.tree for t in template.templates}
    assert {name: _go_tree_string(tree.root) for name, tree in trees.items() if tree} == case["trees"]
    assert {name: _positions(tree) for name, tree in trees.items() if tree} == case["positions"]
