"""Differential fuzzer against Go: element references under confd's in-place writers.

Random templates take elements with ``index``/``range``/``with`` and then run
``reverse``/``sortByLength``/``sortKVByLength`` on the slices they came from; Go (through
``scripts/template_golden``, built here, needs ``go``) and muster must agree byte for byte.

    python scripts/template_golden/fuzz_alias.py SEED COUNT
"""

from __future__ import annotations

import base64
import json
import random
import subprocess
import sys
import tempfile
from pathlib import Path

from muster.confd.funcs import func_map
from muster.confd.store import KVStore
from muster.errors import TemplateError
from muster.gotemplate import Template

KEYS = {
    "/app/a": "1",
    "/app/b": "22",
    "/app/c": "333",
    "/app/d": "4444",
    "/kv/aaa": "x",
    "/kv/b": "yy",
    "/kv/cc": "zzz",
    "/kv/dddd": "w",
}
STR_SLICES = {
    "$a": 'split "ccc,a,bb,dddd" ","',
    "$b": 'getvs "/app/*"',
    "$v": "slice $a 1 3",
    "$w": "slice $b 0 2",
}
KV_SLICES = {"$k": 'gets "/kv/*"', "$s": 'sortKVByLength (gets "/kv/*")', "$t": "slice $s 1"}


class Gen:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.n = 0
        self.in_range = False

    def fresh(self, p: str) -> str:
        self.n += 1
        return f"${p}{self.n}"

    def elem_expr(self, kv: bool) -> str:
        r = self.rng
        sl = r.choice(list(KV_SLICES if kv else STR_SLICES))
        i = r.randrange(2)
        return f"index {sl} {i}"

    def mutation(self) -> str:
        r = self.rng
        c = r.randrange(5)
        if c == 0:
            return f"reverse {r.choice(list(STR_SLICES))}"
        if c == 1:
            return f"sortByLength {r.choice(list(STR_SLICES))}"
        if c == 2:
            return f"reverse {r.choice(['$s', '$t'])}"
        if c == 3:
            return f"sortKVByLength {r.choice(list(KV_SLICES))}"
        return f"reverse {r.choice(list(STR_SLICES))}"

    def read(self, svars: list[str], kvars: list[str], dot: str) -> str:
        r = self.rng
        opts = []
        if svars:
            v = r.choice(svars)
            opts += [
                v,
                f'printf "%v|%q" {v} {v}',
                f'eq {v} "a"',
                f"len {v}",
                f"print {v} ({self.mutation()})",
                f'printf "%s %v" {v} ({self.mutation()})',
                f'or {v} "z"',
                f"index {v}",
                f"and {v} {v}",
                f'ne {v} "bb"',
                f'lt {v} "b"',
                f"not {v}",
                f'index (map "ccc" 1 "a" 2 "bb" 3 "dddd" 4 "1" 5) {v}',
                f"slice {v} 0 1",
                f'join (split {v} "") "-"',
                f"html {v}",
                f"js {v}",
                f"urlquery {v}",
                f"println {v}",
                f'{v} | printf "%s"',
                f"base {v}",
                f'printf "%v" (index (map "k" {v}) "k")',
                f"toUpper {v}",
                f"(print {v})",
            ]
        if kvars:
            v = r.choice(kvars)
            opts += [
                f"{v}.Key",
                f"{v}.Value",
                f"{v}.Key | len",
                f"eq {v}.Key {v}.Key",
                f'index (map "k" {v}) "k"',
                f'printf "%v" {v}',
                f"({v}).Key",
                f'printf "%v %v" {v} ({self.mutation()})',
            ]
        if dot == "s":
            opts += [".", 'printf "%s" .', f"print . ({self.mutation()})"]
        if dot == "k":
            opts += [".Key", 'printf "%+v" .', ".Value"]
        opts += [
            self.elem_expr(False),
            f"({self.elem_expr(True)}).Key",
            r.choice(list(STR_SLICES)),
            r.choice(list(KV_SLICES)),
        ]
        return r.choice(opts)

    def block(self, depth: int, svars: list[str], kvars: list[str], dot: str) -> str:
        r = self.rng
        out = []
        svars, kvars = list(svars), list(kvars)
        for _ in range(r.randint(1, 6)):
            c = r.randrange(10)
            if c < 2:
                kv = r.random() < 0.4
                name = self.fresh("f" if kv else "e")
                src = self.elem_expr(kv)
                if not kv and r.random() < 0.2 and svars:
                    src = r.choice(svars)
                if kv and r.random() < 0.3:
                    src = f"({src}).Key"
                    svars.append(name)
                    kv = None
                out.append(f"{{{{{name} := {src}}}}}")
                if kv is not None:
                    (kvars if kv else svars).append(name)
            elif c < 4:
                out.append(f"{{{{{self.mutation()}}}}}")
                if depth and r.random() < 0.15:
                    out.append(r.choice(["{{break}}", "{{continue}}"]) if self.in_range else "")
            elif c < 7:
                out.append(f"{{{{{self.read(svars, kvars, dot)}}}}}")
            elif c == 7 and depth < 3 and svars:
                v = r.choice(svars)
                inner = self.block(depth + 1, svars, kvars, dot)
                other = self.block(depth + 1, svars, kvars, dot)
                out.append(f'{{{{if eq {v} "a" "ccc" "1"}}}}[{inner}]{{{{else}}}}[{other}]{{{{end}}}}')
            elif c < 9 and depth < 3:
                kv = r.random() < 0.4
                sl = r.choice(list(KV_SLICES if kv else STR_SLICES))
                i, e = self.fresh("i"), self.fresh("r")
                saved, self.in_range = self.in_range, True
                inner = self.block(
                    depth + 1, svars + ([] if kv else [e]), kvars + ([e] if kv else []), "k" if kv else "s"
                )
                self.in_range = saved
                out.append(f"{{{{range {i}, {e} := {sl}}}}}<{inner}>{{{{end}}}}")
            elif depth < 3:
                kv = r.random() < 0.4
                e = self.fresh("w")
                inner = self.block(
                    depth + 1, svars + ([] if kv else [e]), kvars + ([e] if kv else []), "k" if kv else "s"
                )
                out.append(f"{{{{with {e} := {self.elem_expr(kv)}}}}}({inner}){{{{end}}}}")
        return " ".join(out)

    def template(self) -> str:
        head = "".join(
            f"{{{{{n} := {src}}}}}"
            for n, src in {**STR_SLICES, **KV_SLICES}.items()
            if n not in ("$v", "$w", "$t")
        )
        head += "".join(
            f"{{{{{n} := {src}}}}}"
            for n, src in {**STR_SLICES, **KV_SLICES}.items()
            if n in ("$v", "$w", "$t")
        )
        body = self.block(0, [], [], "")
        if self.rng.random() < 0.3:
            body = (
                '{{define "d"}}<{{.}}|{{printf "%v" .}}>{{end}}'
                + body
                + '{{range $a}}{{template "d" .}}{{reverse $a}}{{template "d" .}}{{end}}{{template "d" (index $b 0)}}'
            )
        return head + body + "\n"


def muster(tmpl: str) -> tuple[bool, str]:
    try:
        return True, Template("t", funcs=func_map(KVStore(KEYS))).parse(tmpl).execute(None)
    except TemplateError as e:
        return False, str(e)


def main() -> None:
    seed = int(sys.argv[1])
    count = int(sys.argv[2])
    rng = random.Random(seed)
    gen = Gen(rng)
    tmpls = [gen.template() for _ in range(count)]
    cases = [{"tmpl": base64.b64encode(t.encode()).decode(), "data": None, "keys": KEYS} for t in tmpls]
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "template_golden"
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=Path(__file__).parent, check=True)
        res = subprocess.run([str(binary), "-batch"], input=json.dumps(cases), capture_output=True, text=True)
    lines = res.stdout.splitlines()
    bad = 0
    for t, line in zip(tmpls, lines, strict=True):
        g = json.loads(line)
        gout = base64.b64decode(g.get("out") or b"").decode("utf-8", "surrogateescape")
        ok, mout = muster(t)
        if ok != g["ok"] or (ok and gout != mout):
            bad += 1
            if bad <= 3:
                print(
                    "MISMATCH\n",
                    t,
                    "\nGO :",
                    g["ok"],
                    gout,
                    base64.b64decode(g.get("err") or b"")[:300] if g.get("err") else "",
                    "\nMUS:",
                    ok,
                    mout[:500],
                )
    oks = sum(json.loads(line)["ok"] for line in lines)
    print(f"{len(lines)} cases ({oks} ok in Go), {bad} mismatches, go rc={res.returncode}")


if __name__ == "__main__":
    main()
