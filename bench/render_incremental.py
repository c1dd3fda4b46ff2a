"""Change -> rendered seed template, incrementally, at 1k/3k/10k/30k services (3 servers each).

For each size, in a fresh interpreter: one full render, then CHANGES registry changes
applied one at a time (70% a server's value changes, 15% a server is added, 10% one is
removed, 5% a service appears or goes), each followed by a render of the whole file. It
prints p50/p95/max of the time from the changed values to the rendered bytes for

* ``full``: what the daemon did before, ``resources.render.render`` with a template cache
  (parse once, execute everything again), on the first FULL_SAMPLES changes only;
* ``diff``: ``IncrementalRenderer.render(values)``, which diffs the values itself;
* ``keys``: ``IncrementalRenderer.render(values, changed)``, given the changed keys (as a
  mirror's change log would give them).

``--check`` compares every incremental render's bytes with a full render's.

    python bench/render_incremental.py [--check] [--changes N] [SIZES...]
"""

from __future__ import annotations

import json
import pathlib
import random
import resource
import statistics
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from render_seed import TEMPLATE, make_keys  # noqa: E402

SIZES = (1_000, 3_000, 10_000, 30_000)
PREFIX = "/registry"
FULL_SAMPLES = 5


def changes(services: int, count: int, seed: int = 15) -> list[tuple[str, str | None]]:
    """A reproducible list of (key, new value or None to delete), applied in order."""
    rng = random.Random(seed)
    out: list[tuple[str, str | None]] = []
    extra = services
    for i in range(count):
        r = rng.random()
        svc = rng.randrange(services)
        value = json.dumps({"host": f"10.200.{i // 256 % 256}.{i % 256}", "port": 9000 + i % 1000})
        if r < 0.70:
            out.append((f"{PREFIX}/services/svc{svc:05d}/servers/s{rng.randrange(3)}", value))
        elif r < 0.85:
            out.append((f"{PREFIX}/services/svc{svc:05d}/servers/x{i}", value))
        elif r < 0.95:
            out.append((f"{PREFIX}/services/svc{svc:05d}/servers/s{rng.randrange(3)}", None))
        else:
            out.append((f"{PREFIX}/services/new{extra:05d}/servers/s0", value))
            extra += 1
    return out


def _pcts(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    return {
        "p50": statistics.median(s) * 1000,
        "p95": s[min(len(s) - 1, int(len(s) * 0.95))] * 1000,
        "max": s[-1] * 1000,
    }


def run_one(services: int, count: int, check: bool) -> dict[str, object]:
    """Measure in this process (called in the child)."""
    from muster.resources.incremental import IncrementalRenderer
    from muster.resources.render import TemplateCache, render
    from muster.resources.spec import ResourceSpec

    source = TEMPLATE.read_bytes()
    values = {PREFIX + k: v for k, v in make_keys(services).items()}
    path = pathlib.Path
    spec = ResourceSpec("nginx", path("nginx.tmpl"), path("unused.conf"), ("/services",), PREFIX)
    cache = TemplateCache(incremental=False)
    start = time.perf_counter()
    render(spec, values, source, cache)
    full_first = time.perf_counter() - start
    steps = changes(services, count)
    full: list[float] = []
    v = dict(values)
    for key, value in steps[:FULL_SAMPLES]:
        v = dict(v)
        if value is None:
            v.pop(key, None)
        else:
            v[key] = value
        start = time.perf_counter()
        render(spec, v, source, cache)
        full.append(time.perf_counter() - start)
    figures: dict[str, object] = {"services": services, "full_first_s": full_first, "full": _pcts(full)}
    for mode in ("diff", "keys"):
        renderer = IncrementalRenderer("nginx.tmpl", source, PREFIX)
        renderer.render(values)
        v = dict(values)
        samples: list[float] = []
        for key, value in steps:
            v = dict(v)  # a new snapshot per change, as a backend delivers it
            if value is None:
                v.pop(key, None)
            else:
                v[key] = value
            start = time.perf_counter()
            out = renderer.render(v, [key] if mode == "keys" else None)
            samples.append(time.perf_counter() - start)
            if check and out != render(spec, v, source, TemplateCache(incremental=False)):
                raise SystemExit(f"{mode}: incremental render differs from a full one after {key}")
        figures[mode] = _pcts(samples)
        figures[f"{mode}_full_renders"] = renderer.full_renders
        figures["entries"] = renderer.memo.entries
    figures["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return figures


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(run_one(int(argv[1]), int(argv[2]), argv[3] == "1")))
        return 0
    check = "--check" in argv
    argv = [a for a in argv if a != "--check"]
    count = 200
    if "--changes" in argv:
        i = argv.index("--changes")
        count = int(argv[i + 1])
        del argv[i : i + 2]
    sizes = [int(a) for a in argv] or list(SIZES)
    print(f"{count} changes per size; milliseconds from changed values to rendered bytes")
    head = f"{'services':>9} {'first s':>8}  {'full p50/p95':>14}"
    print(f"{head}  {'diff p50/p95/max':>20}  {'keys p50/p95/max':>20}  {'peak RSS':>9}")
    for n in sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n), str(count), "1" if check else "0"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr or proc.stdout, file=sys.stderr)
            return 1
        r = json.loads(proc.stdout)
        f, d, k = r["full"], r["diff"], r["keys"]
        print(
            f"{n:>9,} {r['full_first_s']:>8.2f}  {f['p50']:>6.0f}/{f['p95']:<6.0f}  "
            f"{d['p50']:>6.1f}/{d['p95']:>5.1f}/{d['max']:>6.1f}  "
            f"{k['p50']:>6.1f}/{k['p95']:>5.1f}/{k['max']:>6.1f}  {r['peak_rss_mb']:>7.0f}MB"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
