"""Random differential testing of muster's indexed KVStore against memkv's scans (needs `go`).

Usage: python scripts/template_golden/fuzz_store.py [--count N] [--seed S]

confd's store functions (memkv) scan every key on every call; muster's KVStore answers
from an index, with fast paths for clean keys and scans for the rest. This builds
random key sets (clean, trailing-slash, double-slash, relative, dotted, glob-looking
keys) and random queries (exists getv gets getvs ls lsdir with odd paths and
patterns), answers them with memkvscan/main.go (a port of memkv's semantics onto Go's
path/sort packages) and with muster, and prints every difference.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "src"))

from muster.confd.store import KeyNotFound, KVStore  # noqa: E402

PARTS = ["a", "b", "ab", "services", "web", "servers", "1", "10", "9", "x.y", "é", "A", "-", "_", " "]
ODD = ["", ".", "..", "*", "?", "[", "]", "\\", "a*", "[ab]", "[!a]", "[a-c]", "{a}", "a\\*"]
PATTERN_PARTS = ["*", "?", "*", "[ab]", "[!a]", "[a-z]*", "[", "[]", "\\*", "\\", "[^a]", "[\\]]", "a?", "*b"]


def random_path(rng: random.Random, parts: list[str], odd: float) -> str:
    n = rng.choice([0, 1, 1, 2, 2, 3, 3, 4])
    comps = [rng.choice(ODD) if rng.random() < odd else rng.choice(parts) for _ in range(n)]
    p = "/".join(comps)
    r = rng.random()
    if r < 0.8:
        p = "/" + p
    if rng.random() < 0.1:
        p += "/"
    if rng.random() < 0.05:
        p = p.replace("/", "//", 1)
    return p


def random_keys(rng: random.Random) -> dict[str, str]:
    odd = rng.choice([0.0, 0.0, 0.05, 0.2])
    keys = {}
    for _ in range(rng.randint(0, 12)):
        keys[random_path(rng, PARTS, odd)] = rng.choice(["", "v", "1", "10", "9", "b", "a", "é", "x y"])
    return keys


def random_query(rng: random.Random, keys: dict[str, str]) -> tuple[str, str]:
    op = rng.choice(["exists", "getv", "get", "gets", "getvs", "ls", "ls", "lsdir", "lsdir"])
    if keys and rng.random() < 0.4:
        base = rng.choice(list(keys))
        if rng.random() < 0.5 and "/" in base:
            base = base.rsplit("/", rng.randint(1, 2))[0] if base.count("/") > 1 else base.rsplit("/", 1)[0]
        if rng.random() < 0.2:
            base += "/"
        arg = base
    else:
        arg = random_path(rng, PARTS, 0.1)
    if op in ("gets", "getvs") and rng.random() < 0.7:
        comps = arg.split("/")
        for _ in range(rng.randint(1, 2)):
            comps[rng.randrange(len(comps))] = rng.choice(PATTERN_PARTS)
        arg = "/".join(comps)
    return op, arg


def muster_answer(store: KVStore, op: str, arg: str) -> dict[str, Any]:
    try:
        if op == "exists":
            return {"value": store.exists(arg), "err": ""}
        if op == "getv":
            return {"value": store.getv(arg), "err": ""}
        if op == "get":
            kv = store.get(arg)
            return {"value": [kv.Key, kv.Value], "err": ""}
        if op == "gets":
            return {"value": [[kv.Key, kv.Value] for kv in store.gets(arg)], "err": ""}
        if op == "getvs":
            return {"value": list(store.getvs(arg)), "err": ""}
        if op == "ls":
            return {"value": list(store.ls(arg)), "err": ""}
        if op == "lsdir":
            return {"value": list(store.lsdir(arg)), "err": ""}
    except KeyNotFound as exc:
        return {"value": None, "err": str(exc)}
    except Exception as exc:  # gomatch.BadPattern and anything unexpected
        return {"value": None, "err": f"{type(exc).__name__}: {exc}"}
    raise AssertionError(op)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, default=20000)
    ap.add_argument("--seed", type=int, default=None)
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else int(time.time())
    rng = random.Random(seed)
    print(f"seed {seed}")
    queries: list[dict[str, Any]] = []
    for _ in range(args.count):
        keys = random_keys(rng)
        asked = [random_query(rng, keys) for _ in range(rng.randint(1, 6))]
        # Ask some twice: KVStore memoizes glob answers per snapshot.
        asked += rng.sample(asked, rng.randint(0, len(asked)))
        for op, arg in asked:
            queries.append({"keys": keys, "op": op, "arg": arg})
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "memkv"
        subprocess.run(["go", "build", "-o", str(exe), "./memkvscan"], check=True, cwd=HERE)
        proc = subprocess.run([str(exe)], input=json.dumps(queries).encode(), capture_output=True, check=True)
    answers = json.loads(proc.stdout)
    bad = 0
    stores: dict[int, KVStore] = {}
    for q, g in zip(queries, answers, strict=True):
        # One KVStore per key set, shared by all of its queries, as in one render.
        store = stores.setdefault(id(q["keys"]), KVStore(q["keys"]))
        m = muster_answer(store, q["op"], q["arg"])
        go_failed, m_failed = bool(g["err"]), bool(m["err"])
        if go_failed != m_failed or (not go_failed and g["value"] != m["value"]):
            bad += 1
            print("MISMATCH", json.dumps({"query": q, "go": g, "muster": m}, ensure_ascii=False))
    print(json.dumps({"queries": len(queries), "mismatch": bad}))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
