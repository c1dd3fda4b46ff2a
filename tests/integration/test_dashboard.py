"""The dashboard and ``muster status`` against a running ``muster up``: a real browser
(Debian's chromium, headless, driven by selenium through Debian's chromedriver; nothing
is downloaded) sees the demo servers, a new server, traffic and a rejected value."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from daemon_it_helpers import Writer
from test_nginx_up import end, read_until

from muster.dataplane.nginx.conf import lua_available
from muster.errors import BackendUnavailable
from muster.stack.etcd import etcd_available, free_port
from muster.stack.nginx import nginx_available

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not (nginx_available() and etcd_available()), reason="needs nginx and etcd"),
    pytest.mark.skipif(not lua_available(), reason="traffic figures need libnginx-mod-http-lua"),
]


@dataclass
class Up:
    proc: subprocess.Popen[str]
    cwd: Path
    port: int
    etcd: str
    status_url: str

    def put(self, key: str, value: str) -> None:
        async def write() -> None:
            writer = Writer("etcdv3", self.etcd)
            assert writer.v3 is not None
            try:
                # A loaded CI machine can miss the client's connect timeout once or twice.
                for attempt in range(5):
                    try:
                        await writer.put(key, value)
                        return
                    except BackendUnavailable:
                        if attempt == 4:
                            raise
                        await asyncio.sleep(1.0)
            finally:
                await writer.v3.aclose()

        asyncio.run(write())

    def dashboard(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"{self.status_url}/api/dashboard", timeout=10) as resp:
            data: dict[str, Any] = json.loads(resp.read())
        return data

    def hit(self, n: int) -> None:
        for _ in range(n):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/hello/", timeout=10) as resp:
                resp.read()


@pytest.fixture(scope="module")
def up(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """``muster up`` with three demo servers, run where ``muster status`` finds it (./.muster)."""
    cwd = tmp_path_factory.mktemp("up")
    port, etcd_port = free_port(), free_port()
    cmd = [sys.executable, "-m", "muster", "up", "--port", str(port), "--etcd-port", str(etcd_port),
           "--demo", "3", "--dataplane", "lua"]  # fmt: skip
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = read_until(proc, "Ctrl-C stops everything", timeout=120)
        found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+)/", banner)
        assert found is not None, f"the banner names the dashboard:\n{banner}"
        running = Up(proc, cwd, port, f"http://127.0.0.1:{etcd_port}", found.group(1))
        wait_until(lambda: (cwd / ".muster" / "status-url").exists(), "muster up writes .muster/status-url")
        yield running
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
    finally:
        end(proc)


def wait_until(check: Callable[[], object], what: str, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting until {what}")
        time.sleep(0.2)


def hello_servers(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    for svc in data["services"]:
        if svc["name"] == "hello":
            return {s["addr"]: s for s in svc["servers"] if s["registered"]}
    return {}


def test_muster_status_prints_the_table_and_the_page_s_json(up: Up) -> None:
    servers = wait_until(lambda: len(hello_servers(up.dashboard())) == 3 and hello_servers(up.dashboard()),
                         "the three demo servers are listed")  # fmt: skip
    up.hit(30)
    run = [sys.executable, "-m", "muster", "status"]
    # No --url: found through ./.muster/status-url, as an operator in that directory would.
    table = subprocess.run(run, cwd=up.cwd, capture_output=True, text=True, timeout=60, check=True).stdout
    assert f"muster at {up.status_url}: ready" in table
    assert "hello" in table and all(addr in table for addr in servers), table
    raw = subprocess.run([*run, "--json"], cwd=up.cwd, capture_output=True, text=True, timeout=60, check=True)
    printed = json.loads(raw.stdout)
    page = up.dashboard()
    assert set(printed) == set(page)
    assert hello_servers(printed).keys() == hello_servers(page).keys()
    assert printed["rejected"] == page["rejected"] and printed["info"] == page["info"]
    elsewhere = [*run, "--url", f"http://127.0.0.1:{free_port()}"]
    nowhere = subprocess.run(elsewhere, capture_output=True, text=True, timeout=60)
    assert nowhere.returncode == 1 and "no muster status server answers" in nowhere.stderr


@pytest.fixture
def browser() -> Iterator[Any]:
    webdriver = pytest.importorskip("selenium.webdriver")
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (scripts/install-deps --tests)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1200,1100"):  # fmt: skip
        options.add_argument(arg)
    # Both paths given: selenium's manager is never asked to find or fetch anything.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_the_page_follows_the_registry_and_the_traffic(up: Up, browser: Any, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By

    # The page redraws every 2 s: read it in one script, never through elements kept across.
    read_rows = """return Array.from(document.querySelectorAll('tr.server[data-service="hello"]')).map(r =>
        [r.dataset.addr, r.dataset.state, r.querySelector('td.requests').textContent]);"""
    read_rejected = """return Array.from(document.querySelectorAll('#rejected li.rejected')).map(li =>
        [li.dataset.key, li.querySelector('.why').textContent]);"""

    def rows(state: str | None = None) -> dict[str, int]:
        found = browser.execute_script(read_rows)
        return {a: int(n) if n.isdigit() else 0 for a, st, n in found if state is None or st == state}

    def requests_shown() -> int:
        return sum(rows("up").values())

    browser.get(f"{up.status_url}/")
    wait_until(lambda: len(rows("up")) >= 3, "the page lists the three demo servers as up")
    assert browser.find_element(By.ID, "ready").text == "ready"
    browser.execute_script("window.musterMark = 42;")  # gone if the page reloads

    # A new server: registered by muster's agent, shown without reloading the page.
    demo_port = free_port()
    demo = subprocess.Popen([sys.executable, "-m", "muster.stack.demo", f"extra:{demo_port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    agent = subprocess.Popen(
        [sys.executable, "-m", "muster", "register", "--service", "hello", "--host", "127.0.0.1",
         "--port", str(demo_port), "--node", up.etcd, "--id", "extra"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        new = f"127.0.0.1:{demo_port}"
        wait_until(lambda: new in rows(), f"the page shows the new server {new}")
        assert browser.execute_script("return window.musterMark;") == 42, "updated in place, no reload"

        # Traffic: the page's request counts move by what was sent.
        before = requests_shown()
        up.hit(40)
        wait_until(lambda: requests_shown() >= before + 40, "the request counts rise by 40")
        wait_until(lambda: rows().get(new, 0) > 0, "the new server has taken requests")

        # A hostile value: listed as rejected with its reason, shown as text, never as markup.
        hostile = '{"host": "<img src=x onerror=alert(1)>; include /etc/passwd", "port": 80}'
        up.put("/services/hello/servers/evil", hostile)
        key = "/services/hello/servers/evil"

        def rejected() -> str:
            return str(dict(browser.execute_script(read_rejected)).get(key, ""))

        reason = wait_until(rejected, "the hostile entry is listed as rejected")
        assert "host" in reason, reason
        assert browser.find_elements(By.CSS_SELECTOR, "img") == [], "no markup from the registry"
        events = browser.find_element(By.ID, "events").text
        assert "joined" in events and "rejected" in events

        shot = tmp_path / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        data = shot.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, "a real picture of the page"
        keep = os.environ.get("MUSTER_SCREENSHOT_DIR")
        if keep:
            shutil.copy(shot, Path(keep) / "dashboard.png")
        # Phone-sized: the page still lays out (no horizontal page scroll beyond the table's own).
        browser.set_window_size(390, 844)
        time.sleep(0.5)
        width = browser.execute_script("return document.documentElement.scrollWidth;")
        assert width <= 420, f"the page is {width}px wide on a phone"
        if keep:
            browser.save_screenshot(str(Path(keep) / "dashboard-phone.png"))
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(timeout=30)
        demo.terminate()
        demo.wait(timeout=30)
