"""The nginx driver, the whole-config check and the confirmed reload, against a real nginx."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from muster.confd.store import KVStore
from muster.errors import CommandFailed, ResourceError
from muster.nginxctl.control import check_with_replacement, children, reload
from muster.resources.render import TemplateCache
from muster.stack.nginx import NGINX_BINARY, NginxProcess, nginx_available
from muster.stack.stock import STOCK_TEMPLATE, stock_dir

pytestmark = pytest.mark.skipif(not nginx_available(), reason=f"nginx is not installed at {NGINX_BINARY}")


@pytest.fixture
def nginx(tmp_path: Path) -> Iterator[NginxProcess]:
    with NginxProcess(tmp_path / "nginx", worker_processes=2) as proc:
        yield proc


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as resp:
        return str(resp.read().decode())


def status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        with exc:  # an unclosed error response leaks its socket
            return exc.code


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_start_answers_and_stop_leaves_no_process(tmp_path: Path) -> None:
    proc = NginxProcess(tmp_path / "nginx", worker_processes=2)
    proc.start()
    try:
        assert get(f"{proc.status_url}/.muster/ping").startswith("pong ")
        master = proc.pid
        assert master is not None
        workers = proc.worker_pids()
        assert len(workers) == 2
        assert int(proc.pid_path.read_text()) == master
    finally:
        proc.stop()
    assert not any(alive(pid) for pid in [master, *workers])
    assert not proc.running


def test_stop_also_ends_workers_orphaned_by_a_killed_master(nginx: NginxProcess) -> None:
    workers = nginx.worker_pids()
    assert nginx.pid is not None
    os.kill(nginx.pid, signal.SIGKILL)  # the workers lose their master and keep serving
    nginx.stop()
    assert not any(alive(pid) for pid in workers)


def test_stop_works_when_the_config_on_disk_is_broken(nginx: NginxProcess) -> None:
    nginx.conf_path.write_text("this is not nginx config")
    workers = nginx.worker_pids()
    nginx.stop()  # by pid: `nginx -s stop` would parse the broken file and fail
    assert not any(alive(pid) for pid in workers)


def test_reload_returns_new_workers_once_they_serve(nginx: NginxProcess) -> None:
    before = nginx.worker_pids()
    (nginx.include_dir / "x.conf").write_text("server { include muster/server.conf; }\n")
    after = nginx.reload()
    assert set(after).isdisjoint(before)
    assert nginx.worker_pids() == after
    assert "muster" in get(f"{nginx.url}/")
    # Every answer now comes from a new worker.
    assert {int(get(f"{nginx.status_url}/.muster/ping").split()[1]) for _ in range(10)} <= set(after)


def test_reload_of_a_config_nginx_rejects_fails_and_keeps_serving(nginx: NginxProcess) -> None:
    before = nginx.worker_pids()
    (nginx.include_dir / "x.conf").write_text("server { no_such_directive; }\n")
    with pytest.raises(ResourceError, match="kept its old workers"):
        reload(nginx.pid_path, timeout=1.0)
    assert nginx.worker_pids() == before
    assert get(f"{nginx.status_url}/.muster/ping").startswith("pong")


def test_reload_needs_a_running_master(tmp_path: Path) -> None:
    pid_file = tmp_path / "nginx.pid"
    pid_file.write_text("999999999\n")
    with pytest.raises(ResourceError, match="not running"):
        reload(pid_file)
    with pytest.raises(ResourceError, match="cannot read"):
        reload(tmp_path / "missing.pid")


def test_check_runs_the_whole_config_with_the_staged_file(nginx: NginxProcess, tmp_path: Path) -> None:
    dest = nginx.include_dir / "muster.conf"
    staged = nginx.include_dir / ".muster.conf.staged"
    # Valid alone, but it clashes with an upstream defined elsewhere in the config.
    (nginx.include_dir / "other.conf").write_text("upstream svc_a { server 127.0.0.1:1; }\n")
    staged.write_text("upstream svc_a { server 127.0.0.1:2; }\n")
    with pytest.raises(CommandFailed) as info:
        check_with_replacement(nginx.conf_path, dest, staged, prefix=nginx.prefix)
    assert 'duplicate upstream "svc_a" in ' + str(nginx.include_dir / "other.conf") in info.value.output
    assert ".muster-check" not in info.value.output  # shadow names are mapped back
    staged.write_text("upstream svc_b { server 127.0.0.1:2; }\n")
    check_with_replacement(nginx.conf_path, dest, staged, prefix=nginx.prefix)
    assert not dest.exists()  # the check never writes dest...
    # ...nor leaves shadow files behind
    assert not [p for p in nginx.conf_dir.iterdir() if p.name.startswith(".muster-check")]


def test_check_replaces_an_existing_file_rather_than_adding_to_it(nginx: NginxProcess) -> None:
    dest = nginx.include_dir / "muster.conf"
    dest.write_text("upstream svc_a { server 127.0.0.1:1; }\n")
    staged = nginx.include_dir / ".staged"
    staged.write_text("upstream svc_a { server 127.0.0.1:2; }\n")  # would clash if both were loaded
    check_with_replacement(nginx.conf_path, dest, staged, prefix=nginx.prefix)


def test_check_refuses_a_dest_nginx_never_loads(nginx: NginxProcess, tmp_path: Path) -> None:
    staged = tmp_path / "staged"
    staged.write_text("")
    with pytest.raises(ResourceError, match="never includes"):
        check_with_replacement(nginx.conf_path, tmp_path / "elsewhere.conf", staged, prefix=nginx.prefix)


def test_check_command_line_exit_status(nginx: NginxProcess) -> None:
    dest = nginx.include_dir / "muster.conf"
    staged = nginx.include_dir / ".staged"
    base = [sys.executable, "-m", "muster", "nginx-check", "--conf", str(nginx.conf_path)]
    args = [*base, "--prefix", str(nginx.prefix), "--replace", str(dest), "--with", str(staged)]
    staged.write_text("server { listen 127.0.0.1:1; bogus; }\n")
    bad = subprocess.run(args, capture_output=True, text=True)
    assert bad.returncode == 1
    assert f'unknown directive "bogus" in {staged}:1' in bad.stderr
    staged.write_text("server { listen 127.0.0.1:1; }\n")
    assert subprocess.run(args, capture_output=True, text=True).returncode == 0


def stock_render(values: dict[str, str]) -> str:
    """The stock template rendered as the daemon renders it (its function map, reload mode)."""
    source = (stock_dir() / "templates" / STOCK_TEMPLATE).read_bytes()
    template, slot = TemplateCache().get(STOCK_TEMPLATE, source)
    slot.store = KVStore(values)
    return template.execute(None)


def test_stock_template_output_passes_nginx_check_at_scale(nginx: NginxProcess) -> None:
    values = {}
    for i in range(500):
        for j in range(3):
            server = {"host": f"10.{i // 250}.{i % 250}.{j + 1}", "port": 8000 + j, "weight": j + 1}
            values[f"/services/svc{i}/servers/s{j}"] = json.dumps(server)
    values["/services/empty/servers/bad"] = "not json"
    staged = nginx.include_dir / ".staged"
    staged.write_text(stock_render(values))
    check_with_replacement(nginx.conf_path, nginx.include_dir / "services.conf", staged, prefix=nginx.prefix)


def test_stock_template_routes_strips_the_prefix_and_answers_503(nginx: NginxProcess) -> None:
    values = {
        "/services/st/servers/a": json.dumps({"host": "127.0.0.1", "port": nginx.status_port}),
        "/services/gone/servers/a": json.dumps({"host": "127.0.0.1", "port": 0}),
    }
    (nginx.include_dir / "services.conf").write_text(stock_render(values))
    nginx.reload()
    # /st/.muster/ping reaches the status server as /.muster/ping: the prefix is stripped.
    assert get(f"{nginx.url}/st/.muster/ping").startswith("pong")
    assert status(f"{nginx.url}/gone/") == 503
    assert status(f"{nginx.url}/unknown/") == 404


def test_children_lists_workers_with_titles(nginx: NginxProcess) -> None:
    assert nginx.pid is not None
    kids = children(nginx.pid)
    assert sorted(c.pid for c in kids if c.active_worker) == nginx.worker_pids()
    assert all(c.title.startswith("nginx: ") for c in kids)


def sh(cmd: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/sh", "-c", cmd], capture_output=True, text=True, timeout=60)


def test_own_check_cmd_checks_the_staged_file_in_place_of_dest(nginx: NginxProcess) -> None:
    nginx.dest.write_text("upstream svc_a { server 127.0.0.1:1; }\n")
    staged = nginx.rendered_dir / ".services.conf.staged"
    staged.write_text("upstream svc_a { server 127.0.0.1:2; }\n")  # replaces dest: no clash
    cmd = nginx.check_cmd().replace("{{.src}}", str(staged))
    assert sh(cmd).returncode == 0, sh(cmd).stderr
    staged.write_text("upstream svc_a { server 127.0.0.1:2; } bogus;\n")
    bad = sh(cmd)
    assert bad.returncode != 0
    assert 'unknown directive "bogus"' in bad.stderr
    # A clash with a file nginx also loads is caught: the whole config is checked.
    (nginx.include_dir / "other.conf").write_text("upstream svc_b { server 127.0.0.1:1; }\n")
    staged.write_text("upstream svc_b { server 127.0.0.1:2; }\n")
    assert 'duplicate upstream "svc_b"' in sh(cmd).stderr


def test_own_reload_cmd_confirms_new_workers_or_fails(nginx: NginxProcess) -> None:
    before = nginx.worker_pids()
    nginx.dest.write_text("server { include muster/server.conf; }\n")
    result = sh(nginx.reload_cmd())
    assert result.returncode == 0, result.stderr
    after = nginx.worker_pids()
    assert set(after).isdisjoint(before)
    assert "muster" in get(f"{nginx.url}/")
    nginx.dest.write_text("server { bogus; }\n")
    failed = sh(nginx.reload_cmd(timeout=1))
    assert failed.returncode != 0
    assert "kept its old workers" in failed.stderr
    assert nginx.worker_pids() == after


def test_own_reload_cmd_without_the_children_file_falls_back_to_python(nginx: NginxProcess) -> None:
    before = nginx.worker_pids()
    cmd = nginx.reload_cmd().replace("/task/$m/children", "/task/$m/no-such-file")
    result = sh(cmd)
    assert result.returncode == 0, result.stderr
    assert set(nginx.worker_pids()).isdisjoint(before)
