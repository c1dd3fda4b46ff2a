from __future__ import annotations

from click.testing import CliRunner

from muster.cli.main import main


def test_nginx_lua_conf_prints_the_http_block() -> None:
    result = CliRunner().invoke(
        main, ["nginx-lua-conf", "--admin-socket", "/tmp/x/admin.sock", "--max-fails", "2"]
    )
    assert result.exit_code == 0, result.output
    assert "listen unix:/tmp/x/admin.sock;" in result.output
    assert "balancer_by_lua_block" in result.output and "max_fails = 2" in result.output


def test_nginx_lua_conf_main_prints_load_module_lines() -> None:
    result = CliRunner().invoke(main, ["nginx-lua-conf", "--main"])
    assert result.exit_code == 0
    assert result.output.count("load_module") == 2
