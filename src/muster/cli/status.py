"""``muster status``: the dashboard's data as a table in a terminal (or as JSON for scripts).

It reads the daemon's status server (``/api/dashboard``, the very document the page
draws), so the terminal and the page never disagree. The default URL is that of a
``muster up`` running in ``./.muster`` (it writes ``.muster/status-url``), else
``http://127.0.0.1:9101`` (the systemd unit's ``-status-addr``).
"""

from __future__ import annotations

import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import click

from muster.stack.up import UP_STATUS_FILE  # muster status reads what muster up writes

__all__ = ["DEFAULT_URL", "UP_STATUS_FILE", "default_url", "fetch", "render_table", "status"]

DEFAULT_URL = "http://127.0.0.1:9101"
#: Written by ``muster up`` into its state directory while it runs.


def default_url(state_dir: Path = Path(".muster")) -> str:
    """The status server of ``muster up`` in ``state_dir`` if one is running there, else the default."""
    try:
        url = (state_dir / UP_STATUS_FILE).read_text().strip()
    except OSError:
        return DEFAULT_URL
    return url or DEFAULT_URL


def fetch(url: str, token: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
    """``/api/dashboard`` of the status server at ``url``; ``click.ClickException`` saying why not."""
    request = urllib.request.Request(url.rstrip("/") + "/api/dashboard")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            data: dict[str, Any] = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        hint = " (give --token-file)" if exc.code == 401 else ""
        raise click.ClickException(f"{url}: {exc.code} {exc.reason}{hint}") from exc
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise click.ClickException(f"no muster status server answers at {url}: {reason}") from exc
    except ValueError as exc:
        raise click.ClickException(f"{url}: not muster's status server (bad JSON: {exc})") from exc
    return data


def _ms(seconds: float | None) -> str:
    return (
        "-"
        if seconds is None
        else f"{seconds * 1000:.0f} ms"
        if seconds >= 0.01
        else f"{seconds * 1000:.1f} ms"
    )


def _spark(points: list[float]) -> str:
    bars = " ▁▂▃▄▅▆▇█"
    if not points:
        return ""
    top = max(points) or 1.0
    return "".join(bars[round(p / top * 8)] for p in points[-20:])


def render_table(data: dict[str, Any], url: str) -> str:
    """The terminal view: a header line, a table of services and servers, rejects, events."""
    info = data.get("info", {})
    ready = "ready" if data.get("ready") else f"NOT READY: {data.get('reason')}"
    endpoints = ", ".join(info.get("endpoints", []))
    head = [
        f"muster at {url}: {ready}",
        f"  backend {info.get('backend', '?')} ({endpoints})  revision {data.get('revision')}  "
        f"data plane {info.get('dataplane', '?')}",
    ]
    if not data.get("traffic", {}).get("available"):
        head.append("  no traffic figures (the reload data plane counts none; see README)")
    rows = [("SERVICE / SERVER", "STATE", "WEIGHT", "REQ/S", "REQUESTS", "ERR%", "P50", "P95", "HISTORY")]
    for svc in data.get("services", []):
        held = f" (guard holds {svc['held']})" if svc.get("held") else ""
        rows.append((svc["name"] + held, "", "", f"{svc['rps']:.1f}", str(svc["requests"]), "", "", "", ""))
        for s in svc["servers"]:
            rate = s.get("error_rate")
            rows.append(
                (
                    "  " + s["addr"],
                    s["state"],
                    "-" if s.get("weight") is None else str(s["weight"]),
                    "-" if s.get("rps") is None else f"{s['rps']:.1f}",
                    str(s.get("requests", "-")),
                    "-" if rate is None else f"{rate * 100:.1f}%",
                    _ms(s.get("p50")),
                    _ms(s.get("p95")),
                    _spark(s.get("spark") or []),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    table = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    rejected = data.get("rejected", [])
    tail = [f"rejected registry entries: {len(rejected)}"]
    tail += [f"  {r['key']}: {r['reason']}" for r in rejected[:20]]
    events = data.get("events", [])[-8:]
    if events:
        tail.append("recent events:")
        for e in events:
            tail.append(
                f"  {time.strftime('%H:%M:%S', time.localtime(e['time']))} {e['kind']:<7} {e['text']}"
            )
    return "\n".join(head + [""] + table + [""] + tail)


@click.command("status")
@click.option(
    "--url", default=None, help="The daemon's status server (default: ./.muster's muster up, else :9101)."
)
@click.option("--watch", is_flag=True, help="Redraw every 2 s until Ctrl-C.")
@click.option("--json", "as_json", is_flag=True, help="Print the dashboard's JSON (for scripts).")
@click.option(
    "--token-file", type=click.Path(dir_okay=False, path_type=Path), default=None,
    help="The status server's token (needed when it listens off loopback).",
)  # fmt: skip
def status(url: str | None, watch: bool, as_json: bool, token_file: Path | None) -> None:
    """Show what the daemon and nginx are doing: services, servers, traffic, rejects, events."""
    found = url is None and default_url() != DEFAULT_URL
    url = url or default_url()
    token = token_file.read_text().strip() if token_file is not None else None
    try:
        while True:
            try:
                data = fetch(url, token)
            except click.ClickException as exc:
                if not found:
                    raise
                # A muster up killed without its cleanup leaves the file behind.
                hint = f" (named by ./.muster/{UP_STATUS_FILE}: is muster up still running?)"
                raise click.ClickException(exc.message + hint) from exc
            if as_json:
                click.echo(json.dumps(data, indent=1))
            else:
                if watch and sys.stdout.isatty():
                    click.echo("\x1b[H\x1b[2J", nl=False)
                click.echo(render_table(data, url))
            if not watch:
                return
            time.sleep(2.0)
    except KeyboardInterrupt:  # --watch ends with Ctrl-C, without a traceback
        return
