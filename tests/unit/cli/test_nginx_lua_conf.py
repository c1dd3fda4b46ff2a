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


def test_traffic_counting_is_on_by_default_and_can_be_left_out() -> None:
    on = CliRunner().invoke(main, ["nginx-lua-conf"]).output
    assert 'log_by_lua_block { require("muster_traffic").log() }' in on
    assert 'require("muster_traffic").start()' in on and "lua_shared_dict muster_traffic 16m;" in on
    off = CliRunner().invoke(main, ["nginx-lua-conf", "--no-traffic", "--traffic-dict-size", "4m"]).output
    assert "log_by_lua" not in off and 'muster_traffic").start' not in off
    assert "lua_shared_dict muster_traffic 4m;" in off, "the admin endpoint still answers, with nothing"
