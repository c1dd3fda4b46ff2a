"""``muster render`` of the seed template over a confd-layout ``keys.yaml`` of N services, beside confd.

Writes ``keys.yaml`` (``services: svcNNNNN: servers: sK: '{"host": ..., "port": ...}'``,
3 servers per service, as the file backend reads it) and times the whole command,
interpreter start included, as a user runs it: ``muster render TEMPLATE --keys keys.yaml``.
When a ``confd`` binary is found (``--confd PATH`` or on PATH) it renders the same keys
and template with ``confd -onetime -backend file`` in the same run, alternating with
muster, and the ratios of the medians and of the fastest runs are printed; the outputs are
compared byte for byte. scripts/template_golden/README.md says how confd was built here.

    python bench/render_yaml.py [--confd PATH] [--runs 3] [SERVICES...]   # default 3000
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests/conformance/gotemplate/cases/confd-real-nginx-blog-fixed/template.tmpl"
SERVERS = 3


def write_keys(path: pathlib.Path, services: int) -> None:
    lines = ["services:"]
    for i in range(services):
        lines.append(f"  svc{i:05d}:")
        lines.append("    servers:")
        host = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
        for s in range(SERVERS):
            value = json.dumps({"host": host, "port": 8000 + s})
            lines.append(f"      s{s}: '{value}'")
    path.write_text("\n".join(lines) + "\n")


def time_muster(keys: pathlib.Path) -> tuple[float, bytes]:
    muster = pathlib.Path(sys.executable).with_name("muster")
    start = time.perf_counter()
    proc = subprocess.run(
        [str(muster), "render", str(TEMPLATE), "--keys", str(keys)], capture_output=True, check=True
    )
    return time.perf_counter() - start, proc.stdout


def time_confd(confd: str, keys: pathlib.Path, tmp: pathlib.Path) -> tuple[float, bytes]:
    confdir = tmp / "confd"
    (confdir / "conf.d").mkdir(parents=True, exist_ok=True)
    (confdir / "templates").mkdir(exist_ok=True)
    shutil.copy(TEMPLATE, confdir / "templates" / "seed.tmpl")
    dest = tmp / "confd.out"
    (confdir / "conf.d" / "seed.toml").write_text(
        f'[template]\nsrc = "seed.tmpl"\ndest = "{dest}"\nkeys = ["/"]\n'
    )
    dest.unlink(missing_ok=True)
    start = time.perf_counter()
    subprocess.run(
        [
            confd,
            "-onetime",
            "-backend",
            "file",
            "-file",
            str(keys),
            "-confdir",
            str(confdir),
            "-config-file",
            str(tmp / "none.toml"),
            "-log-level",
            "error",
        ],
        capture_output=True,
        check=True,
    )
    return time.perf_counter() - start, dest.read_bytes()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--confd", default=shutil.which("confd"), help="confd binary (default: on PATH)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("sizes", nargs="*", type=int, default=[3000])
    args = parser.parse_args()
    if args.confd is None:
        print("confd: not found (no --confd, none on PATH): muster's time only", file=sys.stderr)
    print(
        f"{'services':>9} {'muster s':>9} {'confd s':>8} {'ratio':>6} {'min ratio':>9}  (median of "
        f"{args.runs}; min ratio: fastest of each, less swayed by load; load {os.getloadavg()[0]:.1f})"
    )
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = pathlib.Path(tmp_name)
        for n in args.sizes:
            keys = tmp / f"keys-{n}.yaml"
            write_keys(keys, n)
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(args.runs):
                seconds, out = time_muster(keys)
                ours.append(seconds)
                assert out.count(b"upstream svc") == n, "muster rendered the wrong number of services"
                if args.confd:
                    seconds, confd_out = time_confd(args.confd, keys, tmp)
                    theirs.append(seconds)
                    if confd_out != out:
                        print(f"{n}: muster's output differs from confd's", file=sys.stderr)
                        return 1
            m = statistics.median(ours)
            c = statistics.median(theirs) if theirs else None
            shown = (
                f"{c:>8.2f} {m / c:>6.3f} {min(ours) / min(theirs):>9.3f}"
                if c
                else f"{'-':>8} {'-':>6} {'-':>9}"
            )
            print(f"{n:>9,} {m:>9.3f} {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
