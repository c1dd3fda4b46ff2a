"""Differential fuzzer: random templates over confd's functions, muster against Go.

Generates random key stores and random templates calling confd's functions (with
odd paths, glob patterns, bad arguments), renders them with Go's text/template and
a restatement of confd's function map (scripts/confd_golden/funcs, needs ``go``) and
with muster, and prints every case whose output or error text differs. Mismatches
worth keeping go into tests/unit/confd/data/funcs_cases.json. Known difference: %T of
a ``gets`` result (``memkv.KVPairs``) until the value model has named slice types.

    python scripts/confd_golden/fuzz_funcs.py [--seed N] [--cases N]
"""

from __future__ import annotations

import argparse
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

FUNCS_DIR = Path(__file__).parent / "funcs"
SEGS = ["a", "b", "app", "db", "web1", "web2", "x.y", "10", "9", "é"]
VALUES = ["1", "-7", "true", "T", "yes", "abc", "a,b,,c", "aGVsbG8=", "!!", "", '{"k": 1}', "[1,2]", "x y z"]
PATHS = [
    "/",
    "//",
    "",
    "/app",
    "/app/",
    "app",
    "/app//",
    "/app/.",
    "/a",
    "/a/b",
    "/nope",
    "/app/db",
    "/../app",
]
PATTERNS = [
    "/*",
    "/*/*",
    "/app/*",
    "/a*/*",
    "/?/*",
    "/[ab]/*",
    "/[^a]*",
    "*",
    "/app/db*",
    "/[",
    "\\*",
    "/a/b",
]
LS_APP = '(ls "/app")'
STRINGS = ['"a/b/c"', '"/app/"', '""', '"x.tmpl"', '"aaa"', '"é"', '"1"', '"-3"', '"f"', '"aGk="', '"a b"']


def random_store(rng: random.Random) -> dict[str, str]:
    store = {}
    for _ in range(rng.randint(0, 12)):
        segs = [rng.choice(SEGS) for _ in range(rng.randint(1, 3))]
        key = "/" + "/".join(segs)
        if rng.random() < 0.1:
            key = rng.choice(["/", key + "/", key.lstrip("/")])
        store[key] = rng.choice(VALUES)
    return store


class Gen:
    def __init__(self, rng: random.Random, keys: list[str]) -> None:
        self.rng = rng
        self.keys = keys or ["/nope"]

    def path(self) -> str:
        return json.dumps(self.rng.choice(PATHS + self.keys))

    def string(self, depth: int = 0) -> str:
        r = self.rng
        if depth > 2:
            return r.choice(STRINGS)
        choice = r.randrange(12)
        if choice == 0:
            return f"(getv {json.dumps(r.choice(self.keys))})"
        if choice == 1:
            return f'(getv {self.path()} "dflt")'
        if choice == 2:
            fn = r.choice(["base", "dir", "toUpper", "toLower", "base64Encode"])
            return f"({fn} {self.string(depth + 1)})"
        if choice == 3:
            return f'(join {self.strings(depth + 1)} "{r.choice([",", "", "-"])}")'
        if choice == 4:
            return f'(replace {self.string(depth + 1)} "a" "b" {r.choice([-1, 0, 1, 2])})'
        if choice == 5:
            return f"(trimSuffix {self.string(depth + 1)} {r.choice(STRINGS)})"
        if choice == 6:
            return f"(base64Decode {self.string(depth + 1)})"
        if choice == 7:
            return f'(printf "%v" {self.any(depth + 1)})'
        return r.choice(STRINGS)

    def strings(self, depth: int = 0) -> str:
        r = self.rng
        choice = r.randrange(7)
        if choice == 0:
            return f"(ls {self.path()})"
        if choice == 1:
            return f"(lsdir {self.path()})"
        if choice == 2:
            return f"(getvs {json.dumps(r.choice(PATTERNS))})"
        if choice == 3:
            return f'(split {self.string(depth + 1)} "{r.choice([",", "", "/"])}")'
        inner = self.strings(depth + 1) if depth < 2 else LS_APP
        if choice == 4:
            return f"(sortByLength {inner})"
        if choice == 5:
            return f"(reverse {inner})"
        return f"(getvs {json.dumps(r.choice(PATTERNS))})"

    def any(self, depth: int = 0) -> str:
        r = self.rng
        choice = r.randrange(10)
        if choice == 0:
            return f"(gets {json.dumps(r.choice(PATTERNS))})"
        if choice == 1:
            return f"(seq {r.randint(-2, 3)} {r.randint(-2, 3)})"
        if choice == 2:
            return f"(exists {self.path()})"
        if choice == 3:
            return f"(atoi {self.string(depth + 1)})"
        if choice == 4:
            return f"(parseBool {self.string(depth + 1)})"
        if choice == 5:
            op = r.choice(["add", "sub", "mul", "div", "mod"])
            return f"({op} {r.randint(-9, 9)} {r.randint(-3, 3)})"
        if choice == 6:
            return f"(sortKVByLength (gets {json.dumps(r.choice(PATTERNS))}))"
        if choice == 7:
            return f"(json {self.string(depth + 1)})"
        if choice == 8 and depth < 2:
            return self.strings(depth + 1)
        return self.string(depth + 1)

    def template(self) -> str:
        parts = []
        for _ in range(self.rng.randint(1, 3)):
            kind = self.rng.randrange(4)
            if kind == 0:
                parts.append(f"{{{{range {self.strings()}}}}}[{{{{.}}}}]{{{{end}}}}")
            elif kind == 1:
                parts.append(f'{{{{printf "%T=%v" {self.any()} {self.any()}}}}}')
            elif kind == 2:
                parts.append(
                    f"{{{{range $i, $kv := gets {json.dumps(self.rng.choice(PATTERNS))}}}}}"
                    "{{$i}}:{{$kv.Key}}={{.Value}};{{end}}"
                )
            else:
                parts.append(f"{{{{{self.any()}}}}}")
        return " ".join(parts)


def _as_go_json(text: str) -> str:
    # Go's JSON encoder writes each invalid UTF-8 byte as U+FFFD.
    return "".join("\ufffd" if 0xDC80 <= ord(c) <= 0xDCFF else c for c in text)


def muster_render(keys: dict[str, str], src: str) -> tuple[str, str]:
    try:
        out = Template("t.tmpl", funcs=func_map(KVStore(keys))).parse(src).execute(None)
        return _as_go_json(out), ""
    except TemplateError as exc:
        return "", _as_go_json(str(exc))


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--cases", type=int, default=300)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    mismatches = 0
    with tempfile.TemporaryDirectory() as tmp:
        binary = Path(tmp) / "funcs"
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=FUNCS_DIR, check=True)
        for batch in range(args.cases // 50 or 1):
            keys = random_store(rng)
            gen = Gen(rng, sorted(keys))
            templates = {f"c{batch}-{i}": gen.template() for i in range(50)}
            proc = subprocess.run(
                [str(binary)],
                input=json.dumps({"keys": keys, "templates": templates}),
                capture_output=True,
                text=True,
                check=True,
            )
            golden = json.loads(proc.stdout)
            for name, src in templates.items():
                want = (golden[name]["out"], golden[name].get("err", ""))
                got = muster_render(keys, src)
                if got != want:
                    mismatches += 1
                    print(
                        json.dumps(
                            {"keys": keys, "template": src, "go": want, "muster": got}, ensure_ascii=False
                        )
                    )
    print(f"{mismatches} mismatches", file=sys.stderr)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
