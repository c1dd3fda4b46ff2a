"""``python -m muster.nginxctl check|reload ...``: the nginx helpers with nothing but the stdlib.

The same as ``muster nginx-check`` / ``muster nginx-reload``, for generated resources that
run them on every change: without click and the CLI it starts in a fraction of the time,
and every millisecond here is a millisecond before a new server gets traffic.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from muster.errors import Error
from muster.nginxctl.control import NGINX_BINARY, check_with_replacement, reload


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m muster.nginxctl")
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="nginx -t on the whole config with a staged file in place")
    check.add_argument("--conf", type=Path, required=True)
    check.add_argument("--replace", type=Path, required=True)
    check.add_argument("--with", dest="staged", type=Path, required=True)
    check.add_argument("--prefix", type=Path, default=None)
    check.add_argument("--nginx", default=NGINX_BINARY)
    check.add_argument("--timeout", type=float, default=30.0)
    rel = sub.add_parser("reload", help="signal nginx's master and wait for its new workers")
    rel.add_argument("--pid-file", type=Path, required=True)
    rel.add_argument("--timeout", type=float, default=10.0)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            check_with_replacement(
                args.conf,
                args.replace,
                args.staged,
                binary=args.nginx,
                prefix=args.prefix,
                timeout=args.timeout,
            )
        else:
            reload(args.pid_file, timeout=args.timeout)
    except Error as exc:
        print(f"muster nginx-{args.command}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
