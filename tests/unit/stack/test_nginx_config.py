from __future__ import annotations

from pathlib import Path

from muster.nginxctl.shadow import find_includes
from muster.stack.nginx import NginxProcess


def test_main_config_and_its_check_twin_differ_only_in_the_rendered_include(tmp_path: Path) -> None:
    http = "lua_shared_dict muster 1m;\nmap $a $b {\n  default 1;\n}"
    proc = NginxProcess(
        tmp_path / "n", port=8081, status_port=8082, main_snippets=["load_module x.so;"], http_snippets=[http]
    )
    main = proc.main_config()
    twin = proc.main_config(rendered="muster/check/*.conf")
    assert [i.pattern for i in find_includes(main)] == ["conf.d/*.conf", "muster/rendered/*.conf"]
    assert [i.pattern for i in find_includes(twin)] == ["conf.d/*.conf", "muster/check/*.conf"]
    assert main.replace("muster/rendered/", "muster/check/") == twin
    assert main.startswith("# Written by muster.stack.nginx")
    assert "load_module x.so;\n" in main.split("events", 1)[0]  # main context
    assert "    lua_shared_dict muster 1m;\n    map $a $b {\n      default 1;\n    }\n" in main
    assert "listen 127.0.0.1:8082;" in main
    assert f"pid {tmp_path}/n/nginx.pid;" in main
    assert "daemon off;" in main


def test_fast_commands_name_this_nginx(tmp_path: Path) -> None:
    proc = NginxProcess(tmp_path / "odd dir")
    assert proc.check_cmd().startswith("ln -sfn {{.src}} ")
    assert f"'{tmp_path}/odd dir/conf/nginx-check.conf'" in proc.check_cmd()
    reload = proc.reload_cmd(timeout=3)
    assert f"m=$(cat '{tmp_path}/odd dir/nginx.pid')" in reload
    assert 'kill -HUP "$m"' in reload
    assert reload.endswith("--timeout 3; fi")


def test_server_conf_listens_on_loopback_only(tmp_path: Path) -> None:
    text = NginxProcess(tmp_path, port=9999).server_config()
    assert "listen 127.0.0.1:9999;" in text
    assert "listen 80" not in text
