"""The daemon against a real etcd, v3 and v2 APIs: onetime, interval and watch, bursts, failures.

Keys live under the per-test ``key_prefix`` on the shared member, used as each resource's
``prefix`` (so templates read ``/services/...``); tests that stop, compact or cluster etcd
start private members.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from daemon_it_helpers import ConfDir, TcpProxy, Writer, daemon_config, eventually, read, running

from muster.stack.etcd import EtcdProcess

BACKENDS = ["etcdv3", "etcd"]


def muster_confd(
    *args: str, env: dict[str, str] | None = None, timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """The real command line, as a confd user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "muster", "confd", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def expected_upstreams(services: dict[str, list[str]]) -> str:
    out = []
    for name in sorted(services):
        out.append(f"upstream {name} {{\n")
        out.extend(f"  server {s};\n" for s in services[name])
        out.append("}\n")
    return "".join(out)


# -- onetime, through the CLI --------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_onetime_cli(backend: str, etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    async with Writer(backend, etcd.client_url) as w:
        await w.put(f"{key_prefix}/services/web/servers/b", "10.0.0.2:80")
        await w.put(f"{key_prefix}/services/web/servers/a", "10.0.0.1:80")
        await w.put(f"{key_prefix}/services/api/servers/x", "10.0.1.1:9000")
        await w.put(f"{key_prefix}/servicesX/ignored/servers/x", "nope")
    result = await asyncio.to_thread(
        muster_confd,
        "-onetime",
        "-backend",
        backend,
        "-node",
        etcd.client_url,
        "-confdir",
        str(tmp_path),
        "-config-file",
        str(tmp_path / "none.toml"),
    )
    assert result.returncode == 0, result.stderr
    assert dest.read_text() == expected_upstreams(
        {"api": ["10.0.1.1:9000"], "web": ["10.0.0.1:80", "10.0.0.2:80"]}
    )
    assert confdir.reload_count() == 1
    assert "10.0.0.1" not in result.stderr  # values never reach the INFO log


async def test_onetime_cli_seed_post_v2_workflow(etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    """The seed post's ``curl -XPUT .../v2/keys/... -d value=... -d ttl=60``, then confd -onetime."""
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    async with aiohttp.ClientSession() as http:
        url = f"{etcd.client_url}/v2/keys{key_prefix}/services/blog/servers/1"
        async with http.put(url, data={"value": "127.0.0.1:8080", "ttl": "60"}) as resp:
            assert resp.status in (200, 201)
    result = await asyncio.to_thread(
        muster_confd,
        "-onetime",
        "-backend",
        "etcd",
        "-node",
        etcd.client_url,
        "-confdir",
        str(tmp_path),
        env={"CONFD_CONFIG_FILE": str(tmp_path / "none.toml")},
    )
    assert result.returncode == 0, result.stderr
    assert dest.read_text() == "upstream blog {\n  server 127.0.0.1:8080;\n}\n"


async def test_onetime_cli_reports_every_failure(etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    good = confdir.add("good", prefix=key_prefix)
    bad = confdir.add("bad", '{{getv "/services/missing"}}', prefix=key_prefix)
    checked = confdir.add("checked", prefix=key_prefix, extra='check_cmd = "echo nope >&2; exit 4"\n')
    async with Writer("etcdv3", etcd.client_url) as w:
        await w.put(f"{key_prefix}/services/web/servers/a", "10.0.0.1:80")
    result = await asyncio.to_thread(
        muster_confd,
        "-onetime",
        "-node",
        etcd.client_url,
        "-confdir",
        str(tmp_path),
        "-config-file",
        str(tmp_path / "none.toml"),
    )
    assert result.returncode == 1
    assert good.exists() and not bad.exists() and not checked.exists()
    failed = [line for line in result.stderr.splitlines() if "resource.failed" in line]
    assert len(failed) == 2
    assert "key does not exist: /services/missing" in result.stderr
    assert "nope" in result.stderr  # the check's output explains its failure


# -- interval ----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_interval_mode(backend: str, etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    cfg = replace(daemon_config(confdir, backend, etcd.client_url), watch=False, interval=1)
    async with Writer(backend, etcd.client_url) as w, running(cfg, mode="interval"):
        await w.put(f"{key_prefix}/services/web/servers/a", "10.0.0.1:80")
        await eventually(lambda: "10.0.0.1:80" in read(dest), timeout=5)
        late = confdir.add("late", prefix=key_prefix)  # conf.d is re-read each cycle
        await w.put(f"{key_prefix}/services/web/servers/b", "10.0.0.2:80")
        await eventually(lambda: "10.0.0.2:80" in read(dest) and "10.0.0.2:80" in read(late), timeout=5)


# -- watch -------------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_watch_applies_changes_quickly(
    backend: str, etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    cfg = daemon_config(confdir, backend, etcd.client_url)
    async with Writer(backend, etcd.client_url) as w, running(cfg) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        latencies = []
        for i in range(5):
            await asyncio.sleep(0.2)  # a lone change each time
            await w.put(f"{key_prefix}/services/web/servers/{i}", f"10.0.0.{i}:80")
            latencies.append(await eventually(lambda i=i: f"10.0.0.{i}:80" in read(dest), timeout=5))
        await w.delete(f"{key_prefix}/services/web/servers/0")
        await eventually(lambda: "10.0.0.0:80" not in read(dest), timeout=5)
        assert max(latencies) < 0.5, latencies
        await eventually(lambda: confdir.reload_count() == 7)  # one per change, plus the first


async def test_v2_ttl_refresh_costs_no_render(etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    key = f"{key_prefix}/services/web/servers/a"
    async with Writer("etcd", etcd.client_url) as w:
        await w.put(key, "10.0.0.1:80", ttl=60)
        async with running(daemon_config(confdir, "etcd", etcd.client_url)) as daemon:
            await eventually(lambda: "10.0.0.1" in read(dest))
            await asyncio.sleep(0.3)
            batches = daemon.batches
            for _ in range(5):
                await w.refresh(key, ttl=60)
            await asyncio.sleep(0.5)
            assert daemon.batches == batches
            await w.put(f"{key_prefix}/services/web/servers/b", "10.0.0.2:80", ttl=60)
            await eventually(lambda: "10.0.0.2" in read(dest), timeout=5)


@pytest.mark.parametrize("backend", BACKENDS)
async def test_burst_of_200_keys_reloads_at_most_3_times(
    backend: str, etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    cfg = daemon_config(confdir, backend, etcd.client_url)
    async with Writer(backend, etcd.client_url) as w, running(cfg) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        await asyncio.sleep(0.3)
        before = confdir.reload_count()
        for i in range(200):
            await w.put(f"{key_prefix}/services/web/servers/{i:03d}", f"10.0.{i // 250}.{i % 250}:80")
        await eventually(lambda: read(dest).count("server ") == 200, timeout=10)
        await asyncio.sleep(1.0)  # nothing more may follow
        reloads = confdir.reload_count() - before
    assert 1 <= reloads <= 3, reloads
    assert dest.read_text() == expected_upstreams(
        {"web": [f"10.0.{i // 250}.{i % 250}:80" for i in range(200)]}
    )


@pytest.mark.parametrize("backend", BACKENDS)
async def test_etcd_restart_mid_watch(
    backend: str, etcd_server_factory: Callable[..., EtcdProcess], tmp_path: Path
) -> None:
    proc = etcd_server_factory()
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    async with running(daemon_config(confdir, backend, proc.client_url)) as daemon:
        await eventually(lambda: daemon.batches >= 1)
        await asyncio.sleep(0.2)
        await asyncio.to_thread(proc.stop)
        await asyncio.sleep(2.0)  # an outage the daemon must ride out
        await asyncio.to_thread(proc.start)
        async with Writer(backend, proc.client_url) as w:
            await w.put("/services/web/servers/a", "10.0.0.9:80")
            t_write = time.monotonic()
        await eventually(lambda: "10.0.0.9:80" in read(dest), timeout=5)
        latency = time.monotonic() - t_write
    assert latency < 1.0, f"change after restart applied after {latency:.3f}s"


async def test_compaction_past_the_watched_revision(
    etcd_server_factory: Callable[..., EtcdProcess], tmp_path: Path
) -> None:
    proc = etcd_server_factory()
    proxy = TcpProxy("127.0.0.1", proc.client_port)
    await proxy.start()
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx")
    try:
        async with Writer("etcdv3", proc.client_url) as w:
            await w.put("/services/web/servers/a", "10.0.0.1:80")
            async with running(daemon_config(confdir, "etcdv3", proxy.url)) as daemon:
                await eventually(lambda: "10.0.0.1" in read(dest))
                await asyncio.sleep(0.2)
                proxy.cut()  # the daemon loses etcd; the world moves on and history is compacted
                await w.delete("/services/web/servers/a")
                await w.put("/services/web/servers/b", "10.0.0.2:80")
                last = await w.put("/services/other/servers/c", "10.0.0.3:80")
                assert w.v3 is not None
                await w.v3.client.compact(last)
                batches = daemon.batches
                proxy.restore()
                await eventually(lambda: daemon.batches > batches, timeout=15)
                await eventually(
                    lambda: (
                        read(dest) == expected_upstreams({"other": ["10.0.0.3:80"], "web": ["10.0.0.2:80"]})
                    ),
                    timeout=5,
                )
    finally:
        await proxy.aclose()


async def test_failing_check_keeps_the_last_good_file(
    etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    # The "config check" refuses any upstream without servers on port 80.
    dest = confdir.add("nginx", prefix=key_prefix, extra='check_cmd = "! grep -q \\":81\\" {{.src}}"\n')
    async with Writer("etcdv3", etcd.client_url) as w:
        await w.put(f"{key_prefix}/services/web/servers/a", "10.0.0.1:80")
        async with running(daemon_config(confdir, "etcdv3", etcd.client_url)) as daemon:
            await eventually(lambda: "10.0.0.1:80" in read(dest))
            good = read(dest)
            batches = daemon.batches
            await w.put(f"{key_prefix}/services/web/servers/b", "10.0.0.2:81")
            await eventually(lambda: daemon.batches > batches)
            assert read(dest) == good
            await w.put(f"{key_prefix}/services/web/servers/b", "10.0.0.2:80")
            await eventually(lambda: "10.0.0.2:80" in read(dest), timeout=5)
    assert [p.name for p in dest.parent.iterdir() if p.name.startswith(".")] == []


async def test_hanging_and_failing_reloads(etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    log = tmp_path / "reload-runs"
    # Hangs when the file mentions "hang", fails when it mentions "fail", works otherwise.
    reload_cmd = f"echo run >> {log}; grep -q hang {{{{.dest}}}} && sleep 60; ! grep -q fail {{{{.dest}}}}"
    dest = confdir.add("nginx", prefix=key_prefix, reload_cmd=reload_cmd, extra='reload_timeout = "0.5s"\n')
    async with Writer("etcdv3", etcd.client_url) as w:
        await w.put(f"{key_prefix}/services/web/servers/a", "ok:80")
        async with running(daemon_config(confdir, "etcdv3", etcd.client_url)) as daemon:
            await eventually(lambda: "ok:80" in read(dest))
            good = read(dest)
            for bad in ("hang", "fail"):
                batches = daemon.batches
                t0 = time.monotonic()
                await w.put(f"{key_prefix}/services/web/servers/b", f"{bad}:80")
                await eventually(lambda b=batches: daemon.batches > b, timeout=10)
                assert read(dest) == good, f"{bad}: the previous file must be back"
                assert time.monotonic() - t0 < 5
                await w.delete(f"{key_prefix}/services/web/servers/b")
                await asyncio.sleep(0.3)
            # The daemon is still alive and applies the next good change.
            await w.put(f"{key_prefix}/services/web/servers/c", "ok2:80")
            await eventually(lambda: "ok2:80" in read(dest), timeout=5)


async def test_template_error_keeps_old_file(etcd: EtcdProcess, key_prefix: str, tmp_path: Path) -> None:
    confdir = ConfDir(tmp_path)
    template = '{{range gets "/services/*"}}{{$v := json .Value}}server {{$v.host}};\n{{end}}'
    dest = confdir.add("nginx", template, prefix=key_prefix)
    async with Writer("etcdv3", etcd.client_url) as w:
        await w.put(f"{key_prefix}/services/a", json.dumps({"host": "h1"}))
        async with running(daemon_config(confdir, "etcdv3", etcd.client_url)) as daemon:
            await eventually(lambda: read(dest) == "server h1;\n")
            batches = daemon.batches
            await w.put(f"{key_prefix}/services/b", "{not json")
            await eventually(lambda: daemon.batches > batches)
            assert read(dest) == "server h1;\n"
            await w.put(f"{key_prefix}/services/b", json.dumps({"host": "h2"}))
            await eventually(lambda: read(dest) == "server h1;\nserver h2;\n", timeout=5)


# -- the real command line, as a service manager runs it ----------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
async def test_cli_watch_process_sighup_and_sigterm(
    backend: str, etcd: EtcdProcess, key_prefix: str, tmp_path: Path
) -> None:
    confdir = ConfDir(tmp_path)
    dest = confdir.add("nginx", prefix=key_prefix)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "muster",
                "confd",
                "-watch",
                "-backend",
                backend,
                "-node",
                etcd.client_url,
                "-confdir",
                str(tmp_path),
                "-config-file",
                str(tmp_path / "none.toml"),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        await eventually(dest.exists, timeout=15, what="the first render")
        async with Writer(backend, etcd.client_url) as w:
            await w.put(f"{key_prefix}/services/web/servers/a", "10.0.0.1:80")
            await eventually(lambda: "10.0.0.1:80" in read(dest), timeout=5)
            late = confdir.add("late", prefix=key_prefix)
            proc.send_signal(signal.SIGHUP)  # re-read conf.d without a restart
            await eventually(lambda: "10.0.0.1:80" in read(late), timeout=5)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "daemon.stopped" in text
    assert "10.0.0.1" not in text  # values never reach the INFO log
