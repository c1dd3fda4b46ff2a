"""``python -m muster.nginxctl check|reload ...``: the nginx helpers, starting as fast as Python can.

The same as ``muster nginx-check`` / ``muster nginx-reload``, for generated resources that
run them on every change: every millisecond of start-up here is a millisecond before a
new server gets traffic, so this parses its few options by hand (no click, no argparse)
and imports the check machinery only for ``check``.

    check  --conf MAIN --replace DEST --with STAGED [--prefix DIR] [--nginx BIN] [--timeout S]
    reload --pid-file FILE [--timeout S]
    confirm --pid-file FILE --before 'PID ...' [--timeout S]   (after a `kill -HUP` of your own)
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from muster.errors import Error
from muster.nginxctl.control import NGINX_BINARY, check_with_replacement
from muster.nginxctl.procs import confirm_reload, reload

_OPTIONS = {
    "check": ({"--conf", "--replace", "--with"}, {"--prefix", "--nginx", "--timeout"}),
    "reload": ({"--pid-file"}, {"--timeout"}),
    "confirm": ({"--pid-file", "--before"}, {"--timeout"}),
}


def _parse(argv: Sequence[str]) -> tuple[str, dict[str, str]]:
    if not argv or argv[0] not in _OPTIONS:
        raise SystemExit(f"usage: python -m muster.nginxctl check|reload|confirm OPTIONS (see {__file__})")
    command, rest = argv[0], list(argv[1:])
    required, optional = _OPTIONS[command]
    opts: dict[str, str] = {}
    while rest:
        flag = rest.pop(0)
        if flag not in required | optional or not rest:
            raise SystemExit(f"muster nginx-{command}: unknown option or missing value: {flag}")
        opts[flag] = rest.pop(0)
    missing = required - opts.keys()
    if missing:
        raise SystemExit(f"muster nginx-{command}: missing {', '.join(sorted(missing))}")
    return command, opts


def main(argv: Sequence[str] | None = None) -> int:
    command, opts = _parse(sys.argv[1:] if argv is None else argv)
    try:
        if command == "check":
            prefix = opts.get("--prefix")
            check_with_replacement(
                Path(opts["--conf"]),
                Path(opts["--replace"]),
                Path(opts["--with"]),
                binary=opts.get("--nginx", NGINX_BINARY),
                prefix=Path(prefix) if prefix else None,
                timeout=float(opts.get("--timeout", "30")),
            )
        elif command == "confirm":
            before = {int(pid) for pid in opts["--before"].split()}
            confirm_reload(opts["--pid-file"], before, timeout=float(opts.get("--timeout", "10")))
        else:
            reload(opts["--pid-file"], timeout=float(opts.get("--timeout", "10")))
    except Error as exc:
        print(f"muster nginx-{command}: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
