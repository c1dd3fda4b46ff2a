"""Issue 14's fault scenarios on the multi-host namespace bed: requests, failures, convergence.

Builds the bed of ``tests/integration/netns/netbed.py`` (root only: network namespaces,
veth pairs and a bridge; 3 etcd members, 2 proxies each with nginx's Lua data plane and
``muster confd -watch``, 3 service hosts each with ``muster register`` and a demo server,
a load generator sending steady GETs through both proxies), runs each scenario of
``fault_scenarios.py`` under load, and prints one table row per scenario and run.

``--guard both`` runs every scenario a second time on a bed whose daemons run with
``-panic-grace 0`` (the panic guard off), applying every removal at once. confd itself is
not packaged for Debian, so the seed's own stack cannot be run here.

    sudo .venv/bin/python bench/faults.py [--partition 60] [--quorum-loss 10] [--daemon-down 5]
        [--rate 50] [--runs 1] [--guard on|off|both] [--scenarios proxy-partition etcd-quorum ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "integration" / "netns"))

from fault_scenarios import NEEDS_GUARD, SCENARIOS, Outcome, format_table  # noqa: E402
from netbed import Bed  # noqa: E402
from nsnet import bed_problem, netem_available  # noqa: E402


def run_bed(args: argparse.Namespace, guard: bool) -> list[Outcome]:
    outcomes: list[Outcome] = []
    options = {
        "proxy-partition": {"seconds": args.partition},
        "etcd-quorum": {"loss_seconds": args.quorum_loss},
        "daemon-kill": {"down_seconds": args.daemon_down},
    }
    daemon_args = () if guard else ("-panic-grace", "0")
    with tempfile.TemporaryDirectory(prefix="muster-faults-") as tmp:
        bed = Bed(Path(tmp), ttl=args.ttl, rate=args.rate, daemon_args=daemon_args)
        started = time.monotonic()
        try:
            bed.start()
            print(f"bed {bed.id} on {bed.subnet} up in {time.monotonic() - started:.1f}s", flush=True)
            for _ in range(args.runs):
                for name in args.scenarios:
                    began = time.monotonic()
                    outcome = SCENARIOS[name](bed, **options.get(name, {}))
                    if not guard:
                        outcome.scenario += " [guard off]"
                    elif name in NEEDS_GUARD:
                        outcome.scenario += " [guard on]"
                    outcomes.append(outcome)
                    print(f"  {time.monotonic() - began:5.1f}s  {outcome.describe()}", flush=True)
        finally:
            bed.close()
    return outcomes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--partition", type=float, default=60.0, help="proxy partition, seconds")
    parser.add_argument("--quorum-loss", type=float, default=10.0, help="time without quorum, seconds")
    parser.add_argument("--daemon-down", type=float, default=5.0, help="time the daemon stays dead, seconds")
    parser.add_argument("--ttl", type=int, default=5, help="the agents' lease TTL, seconds")
    parser.add_argument("--rate", type=float, default=50.0, help="requests per second per proxy")
    parser.add_argument("--runs", type=int, default=1, help="rounds of every scenario")
    parser.add_argument("--guard", choices=("on", "off", "both"), default="on")
    parser.add_argument("--scenarios", nargs="+", choices=list(SCENARIOS), default=list(SCENARIOS))
    args = parser.parse_args()
    problem = bed_problem()
    if problem is not None:
        sys.exit(f"faults: {problem}")
    print(f"tc netem: {'available' if netem_available() else 'not in this kernel (no loss/delay faults)'}")
    outcomes = []
    for guard in {"on": [True], "off": [False], "both": [True, False]}[args.guard]:
        outcomes += run_bed(args, guard)
    print()
    print(format_table(outcomes))
    print("\nconfd (the seed's stack) is not packaged for Debian and was not run. [guard off] rows:")
    print("muster's daemons with -panic-grace 0, applying every removal at once.")


if __name__ == "__main__":
    main()
