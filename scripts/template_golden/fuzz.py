"""Random differential testing of muster's text/template engine against Go 1.19 (needs `go`).

Usage: python scripts/template_golden/fuzz.py [--count N] [--seed S] [--batch B]
                                              [--save DIR] [--messages] [--memo]

Generates random templates from a grammar of the whole language (text, trim markers,
comments, actions, pipelines with declarations and assignments, if/else if/with/range/
else, break/continue, define/template/block, every builtin with arguments of every kind,
printf formats with random flags/widths/precisions/verbs, literals of every kind) and
random JSON data (nested maps and lists, floats, nulls, unicode), renders each through
Go (main.go -batch, one `go` process per batch) and through muster in-process, and
prints every case where success/failure or the output bytes differ. With --messages,
error messages are compared as well. With --save DIR, each mismatch is written as a
case directory (template.tmpl + data.json) ready for gen-template-goldens.

This is a tool, not a test: pytest does not run it. Mismatches found here become cases
in tests/conformance/fuzz/ once minimised.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

sys.path.insert(0, str(HERE.parents[1] / "tests" / "conformance"))

from test_realistic import readme_data  # type: ignore[import-not-found,unused-ignore]  # noqa: E402

from muster.confd.funcs import func_map  # noqa: E402
from muster.confd.store import KVStore  # noqa: E402
from muster.errors import TemplateError  # noqa: E402
from muster.gotemplate import Template  # noqa: E402
from muster.gotemplate.memo import Memo  # noqa: E402
from muster.resources.incremental import IncrementalRenderer  # noqa: E402

# ---------------------------------------------------------------------------------
# Data


KEYS = [
    "a",
    "b",
    "c",
    "name",
    "port",
    "host",
    "Z",
    "é",
    "10",
    "9",
    "x_y",
    "list",
    "m",
    "",
    "\U0001fae0",  # not a letter in any Unicode version: a bad character in a field name
]
STRINGS = [
    "",
    "a",
    "web",
    "hello world",
    "<b>&'\"",
    "é",
    "日本",
    "tab\there",
    "line\nbreak",
    "10.0.0.1",
    "%d",
    "{{",
    "`",
    "\u2028",
    "\x7f",
    "😀",
    "true",
    "  padded  ",
    # Runes whose classes differ between Go 1.19's Unicode 13 and Python's newer tables,
    # format/control/unassigned/private-use runes and the edges of the code space.
    "\u0870\U0001fae0\u061d",
    "\u00ad\u200b\ufeff\U000e0001",
    "\u0378\ue000\U0010ffff",
    "\x00\x1f\x85\u00a0\u3000",
]
FLOATS = [0.0, -0.0, 1.0, -1.0, 0.5, 8080.0, 1e6, 1234567.0, 1e-5, 0.0001, 3.14159, 1e21, 2.5e-7, 42.0, 255.0]


def random_data(rng: random.Random, depth: int = 0) -> Any:
    kinds = ["str", "float", "bool", "null", "map", "list"] if depth < 3 else ["str", "float", "bool", "null"]
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(STRINGS)
    if kind == "float":
        return rng.choice(
            FLOATS + [rng.randint(-1000, 100000), round(rng.uniform(-100, 100), rng.randint(0, 4))]
        )
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "null":
        return None
    if kind == "map":
        return {rng.choice(KEYS): random_data(rng, depth + 1) for _ in range(rng.randint(0, 4))}
    return [random_data(rng, depth + 1) for _ in range(rng.randint(0, 4))]


def random_top_data(rng: random.Random) -> Any:
    r = rng.random()
    if r < 0.08:
        return None  # no data.json
    if r < 0.12:
        return random_data(rng, 2)
    d = {k: random_data(rng, 1) for k in rng.sample(KEYS, rng.randint(2, 8))}
    return d


# ---------------------------------------------------------------------------------
# Templates

BUILTINS = "and or not len index slice eq ne lt le gt ge print printf println html js urlquery call".split()
FLAGS = ["", "", "", "-", "+", "#", " ", "0", "-0", "+ ", "#0"]
VERBS = list("vvvsdqxXobcUeEfFgGt%T") + ["w"]


def _field_paths(data: Any, prefix: str = "", depth: int = 0) -> list[str]:
    if not isinstance(data, dict) or depth > 3:
        return []
    out = []
    for k, v in data.items():
        if k and (k[0].isalpha() or k[0] == "_") and all(c.isalnum() or c == "_" for c in k):
            out.append(prefix + "." + k)
            out.extend(_field_paths(v, prefix + "." + k, depth + 1))
    return out


class Gen:
    """Random template source with a light notion of scope, so most templates parse."""

    def __init__(self, rng: random.Random, data: Any = None) -> None:
        self.rng = rng
        self.scopes: list[list[str]] = [["$"]]
        self.in_range = 0
        self.defines: list[str] = []
        self.depth = 0
        # Field chains that exist in the data, so that more actions reach real values.
        self.paths = _field_paths(data)

    # -- helpers
    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def pick(self, seq: Sequence[T]) -> T:
        return self.rng.choice(seq)

    def vars(self) -> list[str]:
        return [v for s in self.scopes for v in s]

    # -- lexical pieces
    def text(self) -> str:
        return self.pick(
            [
                "",
                " ",
                "\n",
                "  \n\t",
                "x",
                "server ",
                ";\n",
                "é",
                "{ ",
                "}",
                "}}",
                " = ",
                "\r\n",
                "a b",
                ":",
                "<",
                "\t",
                "listen 80;\n",
                "\udcff",  # a raw invalid byte (0xff): templates are bytes, not always UTF-8
                "\udce6\udc97",  # a cut UTF-8 sequence
            ]
        )

    def open(self) -> str:
        return "{{- " if self.chance(0.3) else ("{{ " if self.chance(0.5) else "{{")

    def close(self) -> str:
        return " -}}" if self.chance(0.3) else (" }}" if self.chance(0.5) else "}}")

    def int_lit(self) -> str:
        return self.pick(
            [
                "0",
                "1",
                "2",
                "-1",
                "3",
                "10",
                "42",
                "-7",
                "0x1F",
                "0o17",
                "017",
                "0b101",
                "1_000",
                "0X_ff",
                "'a'",
                "'\\n'",
                "'é'",
                "'\\x41'",
                "'\\u00e9'",
                "9223372036854775807",
                "-9223372036854775808",
                "18446744073709551615",
                "+5",
                "100",
                "255",
            ]
        )

    def float_lit(self) -> str:
        return self.pick(
            [
                "1.5",
                "0.0",
                "-2.5",
                "1e3",
                "1E-3",
                "0x1p4",
                ".5",
                "1.",
                "3.14159",
                "1e21",
                "8080.0",
                "-0.0",
                "1_0.5",
            ]
        )

    def str_lit(self) -> str:
        return self.pick(
            [
                '""',
                '"a"',
                '"web"',
                '"hello world"',
                '"é"',
                '"<tag>&"',
                '"%d"',
                '"\\n"',
                '"\\t\\x41\\u00e9\\U0001F600"',
                '"a\\"b"',
                "`raw`",
                "`a\\nb`",
                "`multi\nline`",
                '"10"',
                '"9"',
                '"name"',
                '"list"',
                '"a b"',
                '"\\\\"',
                '"{{"',
                '"\udcff\udcfe"',
                "`\udcc3`",
            ]
        )

    def literal(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.int_lit()
        if r < 0.45:
            return self.float_lit()
        if r < 0.75:
            return self.str_lit()
        if r < 0.88:
            return self.pick(["true", "false"])
        if r < 0.97:
            return "nil"
        return self.pick(["1i", "2.5i", "0i", "1+", "09", "0x", "'ab'", "1e", "1.2.3", "1 + 2"])

    def field_chain(self) -> str:
        if self.paths and self.chance(0.5):
            return self.pick(self.paths)
        n = self.pick([1, 1, 1, 2, 2, 3])
        return "".join(
            "." + self.pick([k for k in KEYS if k and k[0].isalpha() and k != "é"] + ["é", "Method"])
            for _ in range(n)
        )

    def variable(self) -> str:
        vs = self.vars()
        if self.chance(0.01):
            return "$undefined"
        v = self.pick(vs)
        if self.chance(0.3):
            v += self.field_chain()
        return v

    def operand(self) -> str:
        r = self.rng.random()
        if self.depth > 4:
            r = min(r, 0.6)
        if r < 0.25:
            return self.field_chain()
        if r < 0.32:
            return "."
        if r < 0.45:
            return self.variable()
        if r < 0.75:
            return self.literal()
        if r < 0.92:
            self.depth += 1
            inner = self.pipeline(allow_decl=False)
            self.depth -= 1
            p = "(" + inner + ")"
            if self.chance(0.15):
                p += self.field_chain()
            return p
        return self.pick(["$.a", "$.list", "$.m.a", ".a.b", "$.name"])

    def printf_format(self) -> str:
        parts = []
        for _ in range(self.rng.randint(0, 3)):
            if self.chance(0.4):
                parts.append(self.pick(["x=", " ", "|", "é", "%%", "\\n", "-"]))
            spec = "%" + self.pick(FLAGS)
            if self.chance(0.3):
                spec += str(self.rng.randint(0, 12))
            elif self.chance(0.05):
                spec += "*"
            if self.chance(0.25):
                spec += "." + self.pick(["", "0", "1", "2", "3", "6", "*"])
            if self.chance(0.05):
                spec += "[" + str(self.rng.randint(1, 3)) + "]"
            spec += self.pick(VERBS)
            parts.append(spec)
        if self.chance(0.1):
            parts.append("%!")
        return '"' + "".join(parts) + '"'

    def args(self, lo: int, hi: int) -> list[str]:
        return [self.operand() for _ in range(self.rng.randint(lo, hi))]

    def call(self) -> str:
        fn = self.pick(BUILTINS + ["printf", "printf", "index", "eq", "len", "print", "slice"])
        if fn == "printf":
            a = [self.printf_format()] + self.args(0, 3)
        elif fn in ("not", "len", "html", "js", "urlquery"):
            a = self.args(1, 1) if self.chance(0.9) else self.args(0, 3)
        elif fn in ("eq", "ne", "lt", "le", "gt", "ge"):
            a = self.args(2, 2) if self.chance(0.8) else self.args(1, 4)
        elif fn == "index":
            a = [self.pick([".list", ".m", ".a", "$.list", ". ", self.operand()])] + [
                self.pick(["0", "1", "2", "-1", '"a"', '"b"', '"name"', ".a", "1.0", "nil", self.operand()])
                for _ in range(self.rng.randint(0, 2))
            ]
        elif fn == "slice":
            a = [self.pick([".list", ".name", '"héllo"', '"abc"', ".a", self.operand()])] + [
                self.pick(["0", "1", "2", "3", "-1", "9"]) for _ in range(self.rng.randint(0, 3))
            ]
        elif fn == "call":
            a = self.args(1, 2)
        else:
            a = self.args(0, 3)
        return " ".join([fn] + a)

    def command(self, first: bool) -> str:
        if self.chance(0.5):
            return self.call()
        if not first:
            return self.pick(
                ["print", 'printf "%v"', "len", "html", "js", "urlquery", "not", "println", 'printf "%q|"']
            )
        return self.operand()

    def pipeline(self, allow_decl: bool = True) -> str:
        decl = ""
        if allow_decl and self.chance(0.2):
            existing = [v for v in self.vars() if v != "$"]
            if existing and self.chance(0.4):
                decl = self.pick(existing) + " = "
            else:
                name = self.pick(["$x", "$y", "$n", "$v", "$é", "$_1"])
                decl = name + " := "
                self.scopes[-1].append(name)
        cmds = [self.command(True)]
        while self.chance(0.2) and len(cmds) < 4:
            cmds.append(self.command(False))
        return decl + " | ".join(cmds)

    def comment(self) -> str:
        c = self.pick(["/* c */", "/* multi\nline */", "/**/"])
        o = "{{- " if self.chance(0.3) else "{{"
        cl = " -}}" if self.chance(0.3) else "}}"
        return o + c + cl

    def control(self, kw: str) -> str:
        self.depth += 1
        out = []
        if kw == "range":
            self.scopes.append([])
            decl = ""
            if self.chance(0.5):
                decl = self.pick(["$v := ", "$i, $v := ", "$k, $e := ", "$i := "])
                for name in decl.replace(":=", "").replace(",", " ").split():
                    self.scopes[-1].append(name)
            target = self.pick([".list", ".m", ".a", ".", "$.list", "$", ".b", self.operand()])
            out.append(self.open() + "range " + decl + target + self.close())
            self.in_range += 1
            out.append(self.body(2))
            self.in_range -= 1
            self.scopes.pop()
            if self.chance(0.3):
                self.scopes.append([])
                out.append(self.open() + "else" + self.close() + self.body(2))
                self.scopes.pop()
        else:
            self.scopes.append([])
            pipe = self.pipeline()
            out.append(self.open() + kw + " " + pipe + self.close())
            out.append(self.body(2))
            self.scopes.pop()
            while self.chance(0.25 if kw == "if" else 0.03):
                self.scopes.append([])
                sub = "if" if self.chance(0.97) else "with"
                out.append(self.open() + "else " + sub + " " + self.pipeline() + self.close() + self.body(2))
                self.scopes.pop()
            if self.chance(0.35):
                self.scopes.append([])
                out.append(self.open() + "else" + self.close() + self.body(2))
                self.scopes.pop()
        out.append(self.open() + "end" + self.close())
        self.depth -= 1
        return "".join(out)

    def item(self) -> str:
        r = self.rng.random()
        if self.depth > 3:
            r = r * 0.55
        if r < 0.2:
            return self.text()
        if r < 0.5:
            return self.open() + self.pipeline() + self.close()
        if r < 0.55:
            return self.comment()
        if r < 0.62 and self.in_range:
            return self.open() + self.pick(["break", "continue"]) + self.close()
        if r < 0.66 and self.defines:
            return (
                self.open()
                + "template "
                + '"'
                + self.pick(self.defines)
                + '"'
                + (" " + self.operand() if self.chance(0.7) else "")
                + self.close()
            )
        if r < 0.75:
            return self.control("if")
        if r < 0.82:
            return self.control("with")
        if r < 0.92:
            return self.control("range")
        if r < 0.95 and self.depth == 0:
            name = self.pick(["blk", "b2"])
            block = (
                self.open()
                + "block "
                + '"'
                + name
                + '" '
                + self.operand()
                + self.close()
                + self.body(2)
                + self.open()
                + "end"
                + self.close()
            )
            self.defines.append(name)
            return block
        return self.text()

    def body(self, n: int) -> str:
        return "".join(self.item() for _ in range(self.rng.randint(0, n)))

    def template(self) -> str:
        out = []
        # Defines first so that later items can call them; a define's body cannot see
        # the caller's variables (only its own $), as in Go.
        for _ in range(self.rng.choice([0, 0, 0, 1, 2])):
            name = self.pick(["t1", "t2", "row", "template.tmpl"]) if self.chance(0.9) else "x y"
            if name in self.defines or name == "template.tmpl" and self.chance(0.7):
                continue
            saved = self.scopes
            self.scopes = [["$"]]
            body = self.body(3)
            self.scopes = saved
            out.append('{{define "' + name + '"}}' + body + "{{end}}")
            if name != "template.tmpl":
                self.defines.append(name)
        out.append(self.body(self.pick([2, 3, 4, 6])))
        src = "".join(out)
        if self.chance(0.03):
            # Small syntax mutations: a delimiter dropped, duplicated or cut.
            k = self.rng.randrange(len(src) + 1)
            src = src[:k] + self.pick(["{{", "}}", "", "(", ")", "|", "end", "{{end}}", '"', "-"]) + src[k:]
        return src


CONFD_KEYS = [
    "/services/web/servers/a",
    "/services/web/servers/b",
    "/services/web/servers/c",
    "/services/web/port",
    "/services/api/servers/x",
    "/services/api/port",
    "/app/config",
    "/app/list",
    "/app/b64",
    "/app/flag",
    "/app/num",
    "/top",
    "/a/b/c/d",
]
CONFD_VALUES = [
    "10.0.0.1:80",
    "10.0.0.2:80",
    "8080",
    "",
    "true",
    "0",
    "-7",
    "web",
    "é",
    "a,b,,c",
    "YWJj",
    "!!",
    "x y",
]
CONFD_JSON = [
    '{"host":"h","port":80,"tags":["a","b"]}',
    '[1,"two",null,{"k":3.5}]',
    "null",
    "{}",
    "[]",
    "{bad",
    "3",
]
CONFD_PATHS = [
    "/",
    "/services",
    "/services/",
    "/services/web",
    "/services/web/servers",
    "/services/web/servers/a",
    "/app",
    "/ap",
    "/nope",
    "",
    "/a/b",
    "/a/b/c",
    "services",
    "/services/*/servers/*",
    "/services/web/servers/*",
    "/*",
    "/*/*",
    "/services/[aw]*/port",
    "/services/web/servers/[",
    "/app/?ist",
]
CONFD_FUNCS = {
    "getv": (1, 2),
    "getvs": (1, 1),
    "gets": (1, 1),
    "get": (1, 1),
    "exists": (1, 1),
    "ls": (1, 1),
    "lsdir": (1, 1),
    "base": (1, 1),
    "dir": (1, 1),
    "split": (2, 2),
    "join": (2, 2),
    "json": (1, 1),
    "jsonArray": (1, 1),
    "map": (0, 4),
    "getenv": (1, 2),
    "toUpper": (1, 1),
    "toLower": (1, 1),
    "contains": (2, 2),
    "replace": (4, 4),
    "trimSuffix": (2, 2),
    "base64Encode": (1, 1),
    "base64Decode": (1, 1),
    "parseBool": (1, 1),
    "reverse": (1, 1),
    "sortByLength": (1, 1),
    "sortKVByLength": (1, 1),
    "add": (2, 2),
    "sub": (2, 2),
    "mul": (2, 2),
    "div": (2, 2),
    "mod": (2, 2),
    "seq": (2, 2),
    "atoi": (1, 1),
}


def random_keys(rng: random.Random) -> dict[str, str]:
    chosen = rng.sample(CONFD_KEYS, rng.randint(0, len(CONFD_KEYS)))
    keys = {k: rng.choice(CONFD_VALUES) for k in chosen}
    for k in chosen:
        if k.startswith("/app/config") or k == "/app/list":
            keys[k] = rng.choice(CONFD_JSON)
    return keys


def nudge_keys(rng: random.Random, keys: dict[str, str], ranges: bool = False) -> dict[str, str]:
    """A nearby key set (one to three keys added, changed or removed): what --memo renders
    after ``keys``, so that most memoised units are reused and the rest run again."""
    out = dict(keys)
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(RANGE_KEYS if ranges else CONFD_KEYS)
        if key in out and rng.random() < 0.4:
            del out[key]
        elif ranges:
            out[key] = rng.choice(RANGE_VALUES)
        elif key.startswith("/app/config") or key == "/app/list":
            out[key] = rng.choice(CONFD_JSON)
        else:
            out[key] = rng.choice(CONFD_VALUES)
    return out


# --ranges: templates of the shapes memoisation handles (and must refuse), over a registry.
RANGE_SERVICES = ["web", "api", "db", "new", "a b"]
RANGE_KEYS = (
    [f"/services/{s}/servers/{x}" for s in RANGE_SERVICES for x in "abc"]
    + [f"/services/{s}/port" for s in RANGE_SERVICES]
    + ["/top", "/app/config", "/app/list"]
)
RANGE_VALUES = [
    "10.0.0.1:80",
    "10.0.0.2:80",
    "8080",
    "",
    "web",
    "true",
    '{"host":"h","port":80}',
    "[1,2]",
    "é",
]


def range_keys(rng: random.Random) -> dict[str, str]:
    chosen = rng.sample(RANGE_KEYS, rng.randint(0, len(RANGE_KEYS)))
    return {k: rng.choice(RANGE_VALUES) for k in chosen}


class RangeGen:
    """Ranges over store listings whose bodies read the store, nested ranges, with, template
    calls, break/continue, outer variables read or assigned, mutating functions."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.depth = 0

    def source(self) -> str:
        return self.rng.choice(
            [
                'ls "/services"',
                'lsdir "/services"',
                'gets "/services/*/servers/*"',
                'getvs "/services/*/servers/*"',
                'ls "/services/web/servers"',
                'split (getv "/top" "a,b") ","',
                "$all",
                'seq 1 (len (ls "/services"))',
                'jsonArray (getv "/app/list" "[]")',
            ]
        )

    def key_of(self, var: str) -> str:
        return self.rng.choice(
            [
                f'(printf "/services/%s/port" {var})',
                f'(printf "/services/%s/servers/*" {var})',
                f'(printf "%v" {var})',
                '"/top"',
            ]
        )

    def item(self, var: str) -> str:
        self.depth += 1
        try:
            choices = [
                f"{{{{{var}}}}}",
                "x",
                f'{{{{getv {self.key_of(var)} "-"}}}}',
                f"{{{{exists {self.key_of(var)}}}}}",
                f"{{{{range getvs {self.key_of(var)}}}}}<{{{{.}}}}>{{{{end}}}}",
                f'{{{{with getv {self.key_of(var)} ""}}}}w{{{{.}}}}{{{{else}}}}e{{{{end}}}}',
                f'{{{{if eq (printf "%v" {var}) "web"}}}}{{{{break}}}}{{{{end}}}}',
                f'{{{{if eq (printf "%v" {var}) "api"}}}}{{{{continue}}}}{{{{end}}}}',
                f'{{{{$outer = printf "%v" {var}}}}}',
                "{{$outer}}",
                f"{{{{$d := {var}}}}}{{{{$d}}}}",
                f'{{{{template "t" {var}}}}}',
                f"{{{{len (ls {self.key_of(var)})}}}}",
                "{{.Key}}",
                "{{index $all 0}}",
                '{{reverse (ls "/services")}}',
                "{{$}}",
                f"{{{{(json {var}).host}}}}",
            ]
            if self.depth < 3:
                choices.append(self.range())
            return self.rng.choice(choices)
        finally:
            self.depth -= 1

    def range(self) -> str:
        r = self.rng
        var = r.choice(["$s", "$v", "$k"])
        decl = r.choice([f"{var} := ", f"$i, {var} := "])
        body = "".join(self.item(var) for _ in range(r.randint(1, 4)))
        tail = r.choice(["", "{{else}}none"])
        return f"{{{{range {decl}{self.source()}}}}}[{body}]{tail}{{{{end}}}}"

    def template(self) -> str:
        head = '{{$all := ls "/services"}}{{$outer := "o"}}'
        parts = [self.range() for _ in range(self.rng.randint(1, 3))]
        define = self.rng.choice(
            [
                '{{define "t"}}T{{getv (printf "/services/%v/port" .) "?"}}{{end}}',
                '{{define "t"}}T{{range ls "/services"}}{{.}}{{end}}{{end}}',
                '{{define "t"}}T{{.}}{{end}}',
            ]
        )
        return head + "\n".join(parts) + "{{$outer}}" + define


class ConfdGen(Gen):
    """Templates that also call confd's functions, with arguments of every kind."""

    def confd_arg(self) -> str:
        r = self.rng.random()
        if r < 0.45:
            return '"' + self.pick(CONFD_PATHS) + '"'
        if r < 0.6:
            return self.pick(
                ['","', '""', '"a,b,,c"', '"MUSTER_FUZZ_UNSET"', '"HOME"', '"-1"', '"YWJj"', '"true"']
            )
        if r < 0.7:
            return '"' + self.pick(CONFD_JSON).replace('"', '\\"') + '"'
        if r < 0.85:
            return self.pick(["0", "1", "2", "3", "-2", "5", "1.5", "nil", "true"])
        self.depth += 1
        inner = self.confd_call() if self.chance(0.7) else self.pipeline(allow_decl=False)
        self.depth -= 1
        return "(" + inner + ")"

    def confd_call(self) -> str:
        fn = self.pick(list(CONFD_FUNCS))
        lo, hi = CONFD_FUNCS[fn]
        n = self.rng.randint(lo, hi) if self.chance(0.9) else self.rng.randint(0, 3)
        if self.depth > 3:
            return fn + "".join(' "' + self.pick(CONFD_PATHS) + '"' for _ in range(n))
        return " ".join([fn] + [self.confd_arg() for _ in range(n)])

    def call(self) -> str:
        if self.chance(0.55):
            return self.confd_call()
        return super().call()

    def operand(self) -> str:
        if self.depth <= 3 and self.chance(0.25):
            self.depth += 1
            inner = self.confd_call()
            self.depth -= 1
            return "(" + inner + ")" + (self.field_chain() if self.chance(0.1) else "")
        return super().operand()

    def field_chain(self) -> str:
        if self.chance(0.3):
            return self.pick([".Key", ".Value", ".host", ".tags", ".k"])
        return super().field_chain()


_TOKEN = __import__("re").compile(
    r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|\'(?:[^\'\\\n]|\\.)+\'|-?\d[\w.+-]*|\.[\w]+|\$[\w]*'
    r"|\{\{-? ?| ?-?\}\}|%[-+# 0]*\d*(?:\.\d*)?[a-zA-Z%]"
)


def mutate_template(rng: random.Random, src: str) -> str:
    """A corpus template with a few tokens swapped for others of a similar kind, so
    that the cases near the corpus's own (the ones hidden corpora hold) get tried."""
    tokens = list(_TOKEN.finditer(src))
    if not tokens:
        return src
    out = src
    for m in sorted(rng.sample(tokens, min(len(tokens), rng.randint(1, 3))), key=lambda m: -m.start()):
        tok = m.group()
        if tok.startswith("{{"):
            new = rng.choice(["{{", "{{- ", "{{ "])
        elif tok.endswith("}}"):
            new = rng.choice(["}}", " -}}", " }}"])
        elif tok.startswith("%"):
            new = "%" + rng.choice(FLAGS) + rng.choice(["", "5", "08", ".2", "-3.1"]) + rng.choice(VERBS)
        elif tok[0] in '"`':
            new = rng.choice(['""', '"a"', '"é"', '"%d"', '"10"', '"<a&b>"', "`x`", '"\\xff"', '"a b"'])
        elif tok[0] == "'":
            new = rng.choice(["'a'", "'\\n'", "'é'", "'\\x00'", "'\\U0001F600'"])
        elif tok[0] == ".":
            new = rng.choice([".a", ".b", ".l", ".m", ".s", ".n", ".missing", tok + ".x", "."])
        elif tok[0] == "$":
            new = rng.choice(["$", "$x", tok, "$.a"])
        else:
            new = rng.choice(
                ["0", "1", "-1", "2", "1.5", "1e3", "0x10", "3", "99", "-0", "1e21", "9223372036854775807"]
            )
        out = out[: m.start()] + new + out[m.end() :]
    return out


def mutate_data(rng: random.Random, value: Any, depth: int = 0) -> Any:
    if rng.random() < 0.15:
        return random_data(rng, min(depth + 1, 3))
    if isinstance(value, dict):
        out = {k: mutate_data(rng, v, depth + 1) for k, v in value.items()}
        if rng.random() < 0.2:
            out[rng.choice(KEYS)] = random_data(rng, 2)
        return out
    if isinstance(value, list):
        out_l = [mutate_data(rng, v, depth + 1) for v in value]
        if rng.random() < 0.2:
            out_l.append(random_data(rng, 2))
        return out_l
    return value


_CONFD_KEYS: dict[Path, dict[str, str]] = {}


def _confd_keys(case: Path) -> dict[str, str] | None:
    """The flat keys of a confd corpus case that needs no prefix, filter, flags or env.

    The flattening is muster's (confd's file backend reads YAML, which the Go side
    cannot): only the rendering is compared."""
    import tomllib

    from muster.backends.file import load_key_file

    table = tomllib.loads((case / "resource.toml").read_text(encoding="utf-8"))["template"]
    if table.get("keys", ["/"]) != ["/"] or "prefix" in table:
        return None
    if (case / "args.json").exists() or (case / "env.json").exists() or (case / "expected.err").exists():
        return None
    try:
        return load_key_file(str(case / "keys.yaml"))
    except Exception:
        return None


def corpus_case(rng: random.Random, cases: list[Path]) -> tuple[bytes, Any]:
    case = rng.choice(cases)
    src = (case / "template.tmpl").read_bytes().decode("utf-8", "surrogateescape")
    if rng.random() < 0.8:
        src = mutate_template(rng, src)
    if case.name.startswith("confd-"):
        return src.encode("utf-8", "surrogateescape"), _CONFD_KEYS[case]
    data_file = case / "data.json"
    data: bytes | None = data_file.read_bytes() if data_file.exists() else None
    if data is not None and rng.random() < 0.6:
        try:
            value = json.loads(data)
        except ValueError:
            value = None
        if value is not None:
            data = json.dumps(mutate_data(rng, value), ensure_ascii=False).encode()
    return src.encode("utf-8", "surrogateescape"), data


def printf_template(rng: random.Random, data: Any) -> str:
    """Dense printf: several calls with random formats over literals and data values."""
    g = Gen(rng, data)
    calls = []
    for _ in range(rng.randint(1, 6)):
        fmt = g.printf_format()
        if rng.random() < 0.5:
            # Longer formats, more verbs per call.
            fmt = fmt[:-1] + g.printf_format()[1:]
        args = [
            g.operand() if rng.random() < 0.4 else g.pick([*g.paths, "."] or ["."])
            for _ in range(rng.randint(0, 4))
        ]
        calls.append("{{printf " + " ".join([fmt, *args]) + "}}")
    return "|".join(calls)


SOUP = (
    ["{{", "}}", "{{", "}}", "{{- ", " -}}", "{{-", "-}}", " ", " ", "  ", "\n", "\t", "\r\n"]
    + ["/*", "*/", '"', "`", "'", "(", ")", "|", ".", "$", "x", "é", ":=", "=", ",", "-", "+"]
    + ["0", "1", "9", "0x", "1.5", "e3", "_", "a", ".a", "$x", "$x :=", "if", "else", "end", "range"]
    + ["with", "define", "template", "block", "break", "continue", "nil", "true", "print", "len", "\\"]
    + ["printf", '"%d"', "index", "and", "or", "not", "eq", "{{end}}", "{{else}}", "{{if 1}}", "{{.}}"]
)


def soup(rng: random.Random) -> str:
    """Token soup: a random run of template fragments, mostly invalid, for the lexer and
    parser's error paths and their odd corners."""
    return "".join(rng.choice(SOUP) for _ in range(rng.randint(1, 24)))


# ---------------------------------------------------------------------------------
# Running


# Seconds one muster render may take (--timeout): a template recursing to Go's depth
# limit takes about a second, more on a loaded machine.
TIMEOUT_S = 5


class Timeout(Exception):
    pass


def _alarm(signum: int, frame: Any) -> None:
    raise Timeout


# With --reuse, the parsed templates of the current batch, by source: the daemon
# executes one parsed template many times, over changing data.
_PARSED: dict[bytes, Template | TemplateError] = {}


def _parse(src: bytes, reuse: bool) -> Template:
    if not reuse:
        return Template("template.tmpl").parse(src.decode("utf-8", "surrogateescape"))
    if src not in _PARSED:
        try:
            _PARSED[src] = Template("template.tmpl").parse(src.decode("utf-8", "surrogateescape"))
        except TemplateError as exc:
            _PARSED[src] = exc
    parsed = _PARSED[src]
    if isinstance(parsed, TemplateError):
        raise parsed
    return parsed


# With --memo, one memo per parsed template and one incremental renderer per confd
# template: each case then renders incrementally from the one before it.
_MEMOS: dict[bytes, Memo] = {}
_RENDERERS: dict[bytes, IncrementalRenderer] = {}
_MEMO_USE = {"memo_hits": 0, "memo_misses": 0}  # summed over all memos: shows --memo reused output


def _count_memo_hits() -> None:
    for memo in [*_MEMOS.values(), *(r.memo for r in _RENDERERS.values())]:
        _MEMO_USE["memo_hits"] += memo.hits
        _MEMO_USE["memo_misses"] += memo.misses


def muster_render(
    src: bytes, data: bytes | dict[str, str] | None, reuse: bool = False, memo: bool = False
) -> dict[str, Any]:
    signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(TIMEOUT_S)
    try:
        if isinstance(data, dict) and memo:
            renderer = _RENDERERS.get(src)
            if renderer is None:
                renderer = _RENDERERS[src] = IncrementalRenderer("template.tmpl", src, "/")
            out = renderer.render(data)
        elif isinstance(data, dict):
            # A confd case: confd's functions over the keys, dot nil.
            tmpl = Template("template.tmpl", funcs=func_map(KVStore(data)))
            out = (
                tmpl.parse(src.decode("utf-8", "surrogateescape"))
                .execute(None)
                .encode("utf-8", "surrogateescape")
            )
        else:
            m = _MEMOS.setdefault(src, Memo()) if memo else None
            out = (
                _parse(src, reuse or memo)
                .execute(readme_data(data), memo=m)
                .encode("utf-8", "surrogateescape")
            )
        return {"ok": len(out) <= 1 << 20, "out": out, "err": "" if len(out) <= 1 << 20 else "limit"}
    except TemplateError as exc:
        return {"ok": False, "out": b"", "err": str(exc)}
    except Timeout:
        # A deep render runs on in its own thread (deepstack) after the alarm: it keeps
        # this template's memo, which is for one execution at a time.
        _MEMOS.pop(src, None)
        _RENDERERS.pop(src, None)
        return {"ok": False, "out": b"", "err": "TIMEOUT", "crash": True}
    except Exception as exc:  # a crash is a bug of its own
        return {"ok": False, "out": b"", "err": f"CRASH {type(exc).__name__}: {exc}", "crash": True}
    finally:
        signal.alarm(0)


def build_go(tmp: Path) -> Path:
    exe = tmp / "template_golden"
    subprocess.run(["go", "build", "-o", str(exe), "."], check=True, env=_go_env(), cwd=HERE)
    return exe


def _go_env() -> dict[str, str]:
    import os

    env = dict(os.environ)
    env.setdefault("GOCACHE", str(Path(tempfile.gettempdir()) / "muster-gocache"))
    return env


def _payload(t: bytes, d: bytes | dict[str, str] | None) -> dict[str, Any]:
    if isinstance(d, dict):
        return {"tmpl": _b64(t), "data": None, "keys": d}
    return {"tmpl": _b64(t), "data": None if d is None else _b64(d)}


def go_render(exe: Path, cases: list[tuple[bytes, Any]]) -> list[dict[str, Any]]:
    """Go's result for each case; a case that runs away gets phase "timeout"."""
    results: list[dict[str, Any]] = []
    while len(results) < len(cases):
        rest = cases[len(results) :]
        payload = json.dumps([_payload(t, d) for t, d in rest])
        proc = subprocess.run([str(exe), "-batch"], input=payload.encode(), capture_output=True, timeout=3600)
        lines = proc.stdout.splitlines()
        if proc.returncode not in (0, 3) or not lines:
            raise RuntimeError(f"template_golden failed: {proc.stderr.decode(errors='replace')}")
        for line in lines:
            r = json.loads(line)
            r["out"] = base64.b64decode(r["out"]) if r["out"] else b""
            # Messages compare as text; invalid bytes in them as surrogate escapes.
            r["err"] = base64.b64decode(r["err"]).decode("utf-8", "surrogateescape") if r["err"] else ""
            results.append(r)
    return results


def _show(data: bytes | dict[str, str] | None) -> Any:
    return data.decode("utf-8", "surrogateescape") if isinstance(data, bytes) else data


def _b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


def main() -> int:
    global TIMEOUT_S
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--save", type=Path, default=None)
    ap.add_argument("--messages", action="store_true")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--soup", type=float, default=0.0, help="fraction of token-soup templates")
    ap.add_argument(
        "--reuse",
        type=int,
        default=1,
        help="execute each parsed template over N data sets (with --memo, mostly each near the last)",
    )
    ap.add_argument("--confd", type=float, default=0.0, help="fraction of confd cases (functions, keys)")
    ap.add_argument(
        "--ranges", type=float, default=0.0, help="fraction of confd cases ranging over store listings"
    )
    ap.add_argument(
        "--corpus", type=Path, default=None, help="mutate this corpus's lang-* cases (with --mutate)"
    )
    ap.add_argument(
        "--memo",
        action="store_true",
        help="render with memoisation: each case incrementally from the last one of its template",
    )
    ap.add_argument("--mutate", type=float, default=0.0, help="fraction of mutated corpus cases")
    ap.add_argument("--printf", type=float, default=0.0, help="fraction of printf-dense templates")
    ap.add_argument("--timeout", type=int, default=TIMEOUT_S, help="seconds one muster render may take")
    args = ap.parse_args()
    TIMEOUT_S = args.timeout
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    print(f"seed {seed}", flush=True)
    corpus = sorted(p for p in args.corpus.iterdir() if p.name.startswith("lang-")) if args.corpus else []
    for case in sorted(args.corpus.iterdir()) if args.corpus else []:
        if case.name.startswith("confd-") and "datetime" not in case.name and "lookup" not in case.name:
            keys = _confd_keys(case)
            if keys is not None:
                _CONFD_KEYS[case] = keys
                corpus.append(case)
    stats = {"cases": 0, "ok": 0, "fail": 0, "mismatch": 0, "message": 0, "skipped": 0}
    with tempfile.TemporaryDirectory() as tmp:
        exe = build_go(Path(tmp))
        done = 0
        while done < args.count:
            n = min(args.batch, args.count - done)
            cases: list[tuple[bytes, bytes | dict[str, str] | None]] = []
            _PARSED.clear()
            while len(cases) < n:
                if corpus and rng.random() < args.mutate:
                    src, mdata = corpus_case(rng, corpus)
                    cases.append((src, mdata))
                    continue
                if rng.random() < args.ranges:
                    text = RangeGen(rng).template()
                    keys = range_keys(rng)
                    for _ in range(args.reuse):
                        cases.append((text.encode("utf-8", "surrogateescape"), keys))
                        nearby = args.memo and rng.random() < 0.8
                        keys = nudge_keys(rng, keys, ranges=True) if nearby else range_keys(rng)
                    continue
                if rng.random() < args.confd:
                    text = ConfdGen(rng).template()
                    keys = random_keys(rng)
                    for _ in range(args.reuse):
                        cases.append((text.encode("utf-8", "surrogateescape"), keys))
                        # With --memo, mostly a nearby key set: memoised units get reused.
                        nearby = args.memo and rng.random() < 0.7
                        keys = nudge_keys(rng, keys) if nearby else random_keys(rng)
                    continue
                first = random_top_data(rng)
                if rng.random() < args.printf:
                    text = printf_template(rng, first)
                else:
                    text = soup(rng) if rng.random() < args.soup else Gen(rng, first).template()
                src = text.encode("utf-8", "surrogateescape")
                data = first
                for i in range(args.reuse):
                    if i:
                        # With --memo, mostly a nearby data set: memoised units get reused.
                        nearby = args.memo and rng.random() < 0.7
                        data = mutate_data(rng, data) if nearby else random_top_data(rng)
                    encoded = None if data is None else json.dumps(data, ensure_ascii=rng.random() < 0.5)
                    cases.append((src, None if encoded is None else encoded.encode()))
            gos = go_render(exe, cases)
            for (src, data), g in zip(cases, gos, strict=True):
                stats["cases"] += 1
                if g["phase"] in ("limit", "timeout"):
                    stats["skipped"] += 1
                    continue
                m = muster_render(src, data, args.reuse > 1, args.memo)
                same = g["ok"] == m["ok"] and (not g["ok"] or g["out"] == m["out"])
                if same and not m.get("crash"):
                    stats["ok" if g["ok"] else "fail"] += 1
                    if args.messages and not g["ok"] and g["err"] != m["err"]:
                        stats["message"] += 1
                        if not args.quiet:
                            print(
                                "MESSAGE",
                                json.dumps(
                                    {
                                        "tmpl": src.decode("utf-8", "replace"),
                                        "data": _show(data),
                                        "go": g["err"],
                                        "muster": m["err"],
                                    },
                                ),
                            )
                    continue
                stats["mismatch"] += 1
                print(
                    "MISMATCH",
                    json.dumps(
                        {
                            "tmpl": src.decode("utf-8", "replace"),
                            "data": _show(data),
                            "go": g["err"] or g["out"].decode("utf-8", "replace"),
                            "go_ok": g["ok"],
                            "muster": m["err"] or m["out"].decode("utf-8", "replace"),
                            "muster_ok": m["ok"],
                        },
                    ),
                    flush=True,
                )
                if args.save:
                    d = args.save / f"fuzz-{seed}-{stats['cases']}"
                    d.mkdir(parents=True, exist_ok=True)
                    (d / "template.tmpl").write_bytes(src)
                    if isinstance(data, dict):
                        (d / "keys.json").write_text(json.dumps(data, ensure_ascii=False, indent=1))
                    elif data is not None:
                        (d / "data.json").write_bytes(data)
            done += n
            if args.memo:
                _count_memo_hits()
                _MEMOS.clear()
                _RENDERERS.clear()
                print(json.dumps(stats | _MEMO_USE), flush=True)
            else:
                print(json.dumps(stats), flush=True)
    return 1 if stats["mismatch"] else 0


if __name__ == "__main__":
    sys.exit(main())
