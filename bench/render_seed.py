"""Render the seed post's nginx template over 100, 1,000 and 10,000 services (3 servers each).

Prints wall time and peak RSS per size. Each size runs in a fresh interpreter so its
peak RSS is its own. The timed part is what the daemon does per render: build the
indexed key snapshot, parse the template and execute it (the key tree is generated
before the clock starts, as a backend would have delivered it). The template is the
seed post's, repaired (``server {{ $data.host }}:{{ $data.port }};``): the same file
as tests/conformance/gotemplate/cases/confd-real-nginx-blog-fixed, whose output there
is byte-identical to confd's.

Reference (issue 2, measured with confd): 0.8 s for 1,000 services, 7.3 s for 3,000,
88 s for 10,000; peak RSS 66 MB. Target: 10,000 services in under 0.5 s.

``--check`` also renders each size with Go's text/template and a restatement of
confd's functions (scripts/confd_golden/funcs, needs ``go``; its scans are quadratic,
as confd's are, so keep the sizes small) and compares the bytes.

    python bench/render_seed.py [--check] [SIZES...]
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import resource
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "tests/conformance/gotemplate/cases/confd-real-nginx-blog-fixed/template.tmpl"
GO_REFERENCE = ROOT / "scripts/confd_golden/funcs"
SIZES = (100, 1_000, 10_000)
SERVERS = 3


def make_keys(services: int) -> dict[str, str]:
    """``/services/svcNNNNN/servers/sK`` = ``{"host": ..., "port": ...}`` for every server."""
    keys = {}
    for i in range(services):
        for s in range(SERVERS):
            host = f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}"
            keys[f"/services/svc{i:05d}/servers/s{s}"] = json.dumps({"host": host, "port": 8000 + s})
    return keys


def run_one(services: int) -> dict[str, object]:
    """Render once in this process; return figures (called in the child)."""
    from muster.confd.funcs import func_map
    from muster.confd.store import KVStore
    from muster.gotemplate import Template

    source = TEMPLATE.read_text()
    keys = make_keys(services)
    start = time.perf_counter()
    cpu_start = time.process_time()
    store = KVStore(keys)
    out = Template("nginx.tmpl", funcs=func_map(store)).parse(source).execute(None)
    elapsed = time.perf_counter() - start
    cpu = time.process_time() - cpu_start
    upstreams = out.count("upstream svc")
    assert upstreams == services, (upstreams, services)
    assert out.count("    server 10.") == 0 and out.count("  server 10.") == services * SERVERS
    return {
        "services": services,
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "bytes": len(out),
        "sha256": hashlib.sha256(out.encode()).hexdigest()[:16],
    }


def go_sha256(services: int) -> str:
    """The sha256 prefix of Go's rendering of the same keys and template."""
    with tempfile.TemporaryDirectory() as tmp:
        binary = pathlib.Path(tmp) / "funcs"
        subprocess.run(["go", "build", "-o", str(binary), "."], cwd=GO_REFERENCE, check=True)
        proc = subprocess.run(
            [str(binary), "-render", str(TEMPLATE)],
            input=json.dumps(make_keys(services)),
            capture_output=True,
            text=True,
            check=True,
        )
    return hashlib.sha256(proc.stdout.encode()).hexdigest()[:16]


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(int(argv[1]))))
        return 0
    check = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    if check and shutil.which("go") is None:
        print("--check needs go on PATH", file=sys.stderr)
        return 2
    sizes = [int(a) for a in argv] or list(SIZES)
    print(f"{'services':>9} {'servers':>8} {'wall s':>8} {'cpu s':>7} {'peak RSS':>9} {'output':>10}  sha256")
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n)], capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 1
        r = json.loads(proc.stdout)
        same = go_sha256(n) == r["sha256"] if check else None
        verdict = {None: "", True: "  = Go", False: "  DIFFERS FROM GO"}[same]
        print(
            f"{n:>9,} {n * SERVERS:>8,} {r['seconds']:>8.3f} {r['cpu_seconds']:>7.3f} "
            f"{r['peak_rss_mb']:>7.1f}MB {r['bytes']:>10,}  {r['sha256']}{verdict}"
        )
        if same is False:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
