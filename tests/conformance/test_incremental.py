"""Incremental rendering is byte-identical to a full render: random templates (the
differential fuzzer's generators, scripts/template_golden/fuzz.py) over random change
sequences, each state rendered both ways.

* confd sequences: a template calling confd's functions over a key set that changes
  step by step (keys added, removed, changed; values JSON or not), rendered by one
  ``IncrementalRenderer`` and by a fresh template over a fresh ``KVStore``;
* data sequences: a template over changing JSON data, executed with one ``Memo`` and
  without.

Both must agree on success or failure and, on success, on every byte. The seeds are
fixed, so a failure names a reproducible sequence.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from muster.confd.funcs import func_map
from muster.confd.store import KVStore
from muster.errors import TemplateError
from muster.golang.json import unmarshal_any
from muster.gotemplate import Template
from muster.gotemplate.memo import Memo
from muster.resources.incremental import IncrementalRenderer

SEQUENCES = 1_000
STEPS = 6
ROOT = Path(__file__).resolve().parents[2]


def _fuzz() -> ModuleType:
    spec = importlib.util.spec_from_file_location("muster_fuzz", ROOT / "scripts/template_golden/fuzz.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("muster_fuzz", module)
    spec.loader.exec_module(module)
    return module


FUZZ = _fuzz()
PREFIX = "/p"
ENV = "MUSTER_INCREMENTAL_TEST"


def _full(src: str, keys: dict[str, str]) -> tuple[bool, bytes]:
    try:
        tmpl = Template("template.tmpl", funcs=func_map(KVStore(keys))).parse(src)
        return True, tmpl.execute(None).encode("utf-8", "surrogateescape")
    except TemplateError as exc:
        return False, str(exc).encode()


def _incremental(renderer: IncrementalRenderer, values: dict[str, str], changed: list[str] | None) -> Any:
    try:
        return True, renderer.render(values, changed)
    except TemplateError as exc:
        return False, str(exc).encode()


def _step(rng: random.Random, keys: dict[str, str]) -> list[str]:
    """Change one to three keys in place; return the keys touched."""
    touched = []
    for _ in range(rng.randint(1, 3)):
        key = rng.choice(FUZZ.CONFD_KEYS + ["/services/new/servers/z", "/x"])
        r = rng.random()
        if key in keys and r < 0.35:
            del keys[key]
        else:
            keys[key] = rng.choice(FUZZ.CONFD_JSON if r < 0.6 else FUZZ.CONFD_VALUES)
        touched.append(key)
    return touched


SERVICES = ["web", "api", "db", "new", "a b"]
UNIVERSE = (
    [f"/services/{s}/servers/{x}" for s in SERVICES for x in "abc"]
    + [f"/services/{s}/port" for s in SERVICES]
    + ["/top", "/app/config", "/app/list"]
)
VALUES = ["10.0.0.1:80", "10.0.0.2:80", "8080", "", "web", "true", '{"host":"h","port":80}', "[1,2]", "é"]


class _RangeGen:
    """Templates made of the shapes memoisation handles (and must refuse): ranges over
    store listings with bodies that read the store, nested ranges, with, template calls,
    break/continue, outer variables read or assigned, impure and mutating functions."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.depth = 0

    def source(self) -> str:
        r = self.rng
        return r.choice(
            [
                'ls "/services"',
                'lsdir "/services"',
                'gets "/services/*/servers/*"',
                'getvs "/services/*/servers/*"',
                'ls "/services/web/servers"',
                'split (getv "/top" "a,b") ","',
                "$all",
                ".",
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
        r = self.rng
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
                f'{{{{getenv "{ENV}"}}}}',
                "{{.Key}}",
                "{{index $all 0}}",
                '{{reverse (ls "/services")}}',
                "{{$}}",
            ]
            if self.depth < 3:
                choices.append(self.range())
            return r.choice(choices)
        finally:
            self.depth -= 1

    def range(self) -> str:
        r = self.rng
        var = r.choice(["$s", "$v", "$k"])
        decl = r.choice([f"{var} := ", f"$i, {var} := ", f"{var} := "])
        body = "".join(self.item(var) for _ in range(r.randint(1, 4)))
        tail = r.choice(["", "{{else}}none"])
        return f"{{{{range {decl}{self.source()}}}}}[{body}]{tail}{{{{end}}}}"

    def template(self) -> str:
        r = self.rng
        head = '{{$all := ls "/services"}}{{$outer := "o"}}'
        parts = [self.range() for _ in range(r.randint(1, 3))]
        parts.append("{{$outer}}")
        define = r.choice(
            [
                '{{define "t"}}T{{getv (printf "/services/%v/port" .) "?"}}{{end}}',
                '{{define "t"}}T{{range ls "/services"}}{{.}}{{end}}{{end}}',
                '{{define "t"}}T{{.}}{{end}}',
            ]
        )
        return head + "\n".join(parts) + define


def _ranges_sequence(seed: int) -> None:
    rng = random.Random(seed)
    src = _RangeGen(rng).template()
    keys = {k: rng.choice(VALUES) for k in rng.sample(UNIVERSE, rng.randint(0, len(UNIVERSE)))}
    renderer = IncrementalRenderer("template.tmpl", src.encode("utf-8", "surrogateescape"), PREFIX)
    for step in range(STEPS):
        touched: list[str] = []
        for _ in range(rng.randint(1, 3) if step else 0):
            key = rng.choice(UNIVERSE)
            if key in keys and rng.random() < 0.4:
                del keys[key]
            else:
                keys[key] = rng.choice(VALUES)
            touched.append(key)
        values = {PREFIX + k: v for k, v in keys.items()}
        changed = [PREFIX + k for k in touched] if step and rng.random() < 0.5 else None
        # The environment changes between renders: getenv must never be memoised.
        os.environ[ENV] = rng.choice(["", "e1", "e2"])
        try:
            got = _incremental(renderer, values, changed)
            want = _full(src, keys)
        finally:
            del os.environ[ENV]
        assert got == want, (seed, step, src, keys)  # error messages too


def _confd_sequence(seed: int) -> None:
    rng = random.Random(seed)
    src = FUZZ.ConfdGen(rng).template()
    try:
        Template("template.tmpl", funcs=func_map(KVStore({}))).parse(src)
    except TemplateError:
        return  # a syntax error is not an execution to compare
    keys = FUZZ.random_keys(rng)
    renderer = IncrementalRenderer("template.tmpl", src.encode("utf-8", "surrogateescape"), PREFIX)
    for step in range(STEPS):
        touched = _step(rng, keys) if step else list(keys)
        values = {PREFIX + k: v for k, v in keys.items()}
        changed = [PREFIX + k for k in touched] if rng.random() < 0.5 else None
        got = _incremental(renderer, dict(values), changed)
        want = _full(src, keys)
        assert got == want, (seed, step, src, keys)


def _data_sequence(seed: int) -> None:
    rng = random.Random(seed)
    data = FUZZ.random_top_data(rng)
    src = FUZZ.Gen(rng, data).template()
    try:
        tmpl = Template("template.tmpl").parse(src)
    except TemplateError:
        return
    memo = Memo()
    for step in range(STEPS):
        if step:
            data = FUZZ.mutate_data(rng, data) if rng.random() < 0.7 else data
        raw = json.dumps(data).encode()
        results = []
        for m in (memo, None):
            try:
                results.append((True, tmpl.execute(unmarshal_any(raw)[0], memo=m)))
            except TemplateError as exc:
                results.append((False, str(exc)))
            except RecursionError:
                return  # too deep for this test's stack either way
        (ok_m, out_m), (ok_f, out_f) = results
        assert (ok_m, out_m) == (ok_f, out_f), (seed, step, src, data)


@pytest.mark.parametrize("block", range(10))
def test_confd_change_sequences(block: int) -> None:
    for seed in range(block * SEQUENCES // 10, (block + 1) * SEQUENCES // 10):
        _confd_sequence(seed)


@pytest.mark.parametrize("block", range(10))
def test_range_change_sequences(block: int) -> None:
    for seed in range(block * SEQUENCES // 10, (block + 1) * SEQUENCES // 10):
        _ranges_sequence(20_000 + seed)


@pytest.mark.parametrize("block", range(10))
def test_data_change_sequences(block: int) -> None:
    for seed in range(block * SEQUENCES // 10, (block + 1) * SEQUENCES // 10):
        _data_sequence(10_000 + seed)
