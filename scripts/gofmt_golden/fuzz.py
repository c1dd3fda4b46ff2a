"""Random differential testing of muster's gofmt against Go's fmt (needs `go`).

Usage: python scripts/gofmt_golden/fuzz.py [N] [SEED]

Builds N random Sprintf/Sprint/Sprintln calls (formats with random flags, widths,
precisions, `*`, argument indexes and verbs over a pool of values), runs them through
Go (main.go -eval) and through muster, and prints every mismatch.  A mismatch found
here belongs in main.go's golden table once fixed.
"""

from __future__ import annotations

import json
import math
import os
import random
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests" / "unit" / "gotemplate"))

from test_gofmt import decode  # noqa: E402

from muster.golang.fmt import sprint, sprintf, sprintln  # noqa: E402


def fbits(f: float) -> str:
    return format(struct.unpack("<Q", struct.pack("<d", f))[0], "x")


def s(text: str) -> dict[str, Any]:
    return {"t": "string", "hex": text.encode("utf-8", "surrogateescape").hex()}


def i(t: str, n: int) -> dict[str, Any]:
    return {"t": t, "v": str(n)}


def f(x: float) -> dict[str, Any]:
    return {"t": "float64", "v": fbits(x)}


def random_scalar(rng: random.Random) -> dict[str, Any]:
    kind = rng.choice(["int", "int", "float", "float", "string", "string", "bool", "nil", "typed", "complex"])
    if kind == "int":
        return i(
            "int",
            rng.choice(
                [0, 1, -1, 7, 42, -42, 255, 1 << 40, -(1 << 63), (1 << 63) - 1, rng.randint(-9999, 9999)]
            ),
        )
    if kind == "typed":
        t, lo, hi = rng.choice(
            [
                ("int8", -128, 127),
                ("uint8", 0, 255),
                ("int32", -(1 << 31), (1 << 31) - 1),
                ("uint16", 0, 65535),
                ("uint64", 0, (1 << 64) - 1),
                ("int64", -(1 << 63), (1 << 63) - 1),
                ("uint32", 0, (1 << 32) - 1),
                ("int16", -32768, 32767),
                ("uint", 0, (1 << 64) - 1),
            ]
        )
        return i(t, rng.choice([lo, hi, 0, rng.randint(lo, hi), min(hi, 0x4E16), min(hi, 0x1F600)]))
    if kind == "float":
        x = rng.choice(
            [
                0.0,
                -0.0,
                1.0,
                0.1,
                1e6,
                1e-5,
                1e21,
                123456.0,
                math.inf,
                -math.inf,
                math.nan,
                2.5,
                5e-324,
                1.7976931348623157e308,
                rng.uniform(-1e3, 1e3),
                rng.random() * 10 ** rng.randint(-30, 30),
                float(rng.randint(-(10**7), 10**7)),
                rng.choice([0.5, 1.5]) * 10 ** rng.randint(-8, 22),
            ]
        )
        return f(x)
    if kind == "complex":
        return {
            "t": "complex128",
            "re": fbits(rng.choice([0.0, 1.5, -2.0, math.inf])),
            "im": fbits(rng.choice([0.0, 1.0, -0.5, math.nan])),
        }
    if kind == "string":
        return s(
            rng.choice(
                [
                    "",
                    "hi",
                    "héllo",
                    "日本語",
                    "a\tb\n",
                    "a`b",
                    "\udcff",
                    "x\udcc3",
                    "\u00a0",
                    "😀",
                    "\x00\x7f",
                    '"q"',
                    "\\",
                    "\ufeff",
                    "ab\u0301",
                    "0123456789abcdef",
                ]
            )
        )
    if kind == "bool":
        return {"t": "bool", "v": rng.random() < 0.5}
    return {"t": "nil"}


def random_value(rng: random.Random, depth: int = 0) -> dict[str, Any]:
    r = rng.random()
    if depth > 1 or r < 0.6:
        return random_scalar(rng)
    if r < 0.7:
        return {"t": "list", "v": [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]}
    if r < 0.8:
        keys = rng.sample(["a", "b", "10", "9", "Z", "é", ""], rng.randint(0, 3))
        return {"t": "map", "v": [[k.encode().hex(), random_value(rng, depth + 1)] for k in keys]}
    if r < 0.85:
        return {
            "t": "slice",
            "elem": "string",
            "v": [s(rng.choice(["x", "yz", "é"])) for _ in range(rng.randint(0, 3))],
        }
    if r < 0.9:
        return {"t": "bytes", "hex": bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 4))).hex()}
    if r < 0.93:
        return {"t": "KV", "key": s("k"), "value": s(rng.choice(["v", "", "é"]))}
    if r < 0.95:
        return {"t": "*KV", "key": s("k"), "value": s("v")}
    if r < 0.97:
        return {"t": "Temp", "deg": f(rng.choice([1.25, -3.0, 100.0]))}
    if r < 0.98:
        return {"t": "Oops", "code": i("int", rng.randint(0, 9))}
    if r < 0.99:
        return {"t": "Ver", "major": i("int", 1), "minor": i("int", rng.randint(0, 12))}
    return {"t": "Pair", "name": s("p"), "any": random_value(rng, depth + 1), "n": i("int", 3)}


def random_directive(rng: random.Random, nargs: int) -> str:
    out = "%"
    out += "".join(rng.sample("+-# 0", rng.randint(0, 3)))
    if rng.random() < 0.1:
        out += f"[{rng.randint(0, nargs + 1)}]"
    r = rng.random()
    if r < 0.3:
        out += str(rng.choice([0, 1, 3, 5, 8, 12]))
    elif r < 0.38:
        out += "*"
    if rng.random() < 0.3:
        out += "."
        r = rng.random()
        if r < 0.7:
            out += str(rng.choice([0, 1, 2, 3, 6, 10]))
        elif r < 0.85:
            out += "*"
    if rng.random() < 0.05:
        out += f"[{rng.randint(1, nargs + 1)}]"
    if rng.random() < 0.02:
        return out  # may end the format without a verb
    out += rng.choice("vvvvdsqxXoObcUeEfFgGtT%pzé!w")
    return out


def random_call(rng: random.Random) -> dict[str, Any]:
    fn = rng.choice(["sprintf"] * 8 + ["sprint", "sprintln"])
    args = [random_value(rng) for _ in range(rng.choice([0, 1, 1, 1, 2, 2, 3, 4]))]
    fmt = ""
    if fn == "sprintf":
        parts = []
        for _ in range(rng.randint(1, 3)):
            parts.append(rng.choice(["", "", "|", " x ", "é"]))
            parts.append(random_directive(rng, len(args)))
        fmt = "".join(parts)
    return {"fn": fn, "format": fmt, "args": args}


def has_pointer(enc: Any, depth: int = 0) -> bool:
    """Whether Go would print an address (which differs from run to run)."""
    if isinstance(enc, dict):
        if enc.get("t") == "*KV" and depth > 0:
            return True
        nested = depth + (1 if enc.get("t") in ("list", "map", "Pair") else 0)
        return any(has_pointer(v, nested) for v in enc.values())
    if isinstance(enc, list):
        return any(has_pointer(v, depth) for v in enc)
    return False


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20000
    rng = random.Random(int(sys.argv[2]) if len(sys.argv) > 2 else 1)
    calls = []
    while len(calls) < n:
        call = random_call(rng)
        if has_pointer(call["args"]) or "p" in call["format"]:
            continue
        calls.append(call)
    lines = "".join(
        json.dumps({**c, "format": c["format"].encode("utf-8", "surrogateescape").hex()}) + "\n"
        for c in calls
    )
    proc = subprocess.run(
        ["go", "run", "main.go", "-eval"],
        input=lines,
        capture_output=True,
        text=True,
        cwd=HERE,
        env={**os.environ, "GO111MODULE": "off"},
        check=True,
    )
    results = [
        bytes.fromhex(json.loads(line)).decode("utf-8", "surrogateescape")
        for line in proc.stdout.splitlines()
    ]
    bad = 0
    for call, want in zip(calls, results, strict=True):
        args = [decode(a) for a in call["args"]]
        if call["fn"] == "sprintf":
            got = sprintf(call["format"], *args)
        else:
            got = sprint(*args) if call["fn"] == "sprint" else sprintln(*args)
        if got != want:
            bad += 1
            if bad <= 30:
                where = f"{call['fn']} {call['format']!r} {json.dumps(call['args'])[:200]}"
                print(f"{where}\n  go:     {want!r}\n  muster: {got!r}")
    print(f"{n} calls, {bad} mismatches")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
