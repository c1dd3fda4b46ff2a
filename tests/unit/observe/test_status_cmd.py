"""``muster status`` against an in-process status server: the table, --json, the default URL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from click.testing import CliRunner

from muster.cli.status import DEFAULT_URL, default_url, status
from muster.status import Status, StatusServer


async def test_the_table_and_the_json_show_what_the_page_shows(tmp_path: Path) -> None:
    state = Status()
    state.membership = lambda: (
        {"web": [("10.0.0.1", 80, 2)]},
        {"/services/web/servers/x": "value is not JSON"},
    )
    state.record(failures={}, changed=0, revision=7, backend_failed=False, seconds=0.0)
    state.events.add("join", "web: 10.0.0.1:80 weight 2 joined")
    server = StatusServer(state, "127.0.0.1:0")
    await server.start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        runner = CliRunner()
        table = await asyncio.to_thread(runner.invoke, status, ["--url", url])
        assert table.exit_code == 0, table.output
        assert f"muster at {url}: ready" in table.output
        assert "10.0.0.1:80" in table.output and "revision 7" in table.output
        assert "no traffic figures" in table.output, "the reload plane's lack is said, not hidden"
        assert "/services/web/servers/x: value is not JSON" in table.output
        assert "web: 10.0.0.1:80 weight 2 joined" in table.output
        raw = await asyncio.to_thread(runner.invoke, status, ["--url", url, "--json"])
        data = json.loads(raw.output)
        assert data["services"][0]["servers"][0]["addr"] == "10.0.0.1:80" and data["revision"] == 7
    finally:
        await server.aclose()
    gone = await asyncio.to_thread(CliRunner().invoke, status, ["--url", url])
    assert gone.exit_code == 1 and "no muster status server answers" in gone.output


def test_the_default_url_is_that_of_muster_up_here(tmp_path: Path) -> None:
    assert default_url(tmp_path / ".muster") == DEFAULT_URL
    (tmp_path / ".muster").mkdir()
    (tmp_path / ".muster" / "status-url").write_text("http://127.0.0.1:41234\n")
    assert default_url(tmp_path / ".muster") == "http://127.0.0.1:41234"
