"""``muster confd``'s flags parse exactly as Go's ``flag`` package parses confd's."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from muster.cli.confd import FlagError, HelpRequested, main, parse_go_flags, usage
from muster.cli.main import main as cli_main


def test_single_and_double_dash_are_the_same() -> None:
    assert parse_go_flags(["-onetime", "--noop"]) == ({"onetime": True, "noop": True}, [])


def test_value_forms() -> None:
    flags, rest = parse_go_flags(["-backend=file", "--confdir", "/c", "-prefix", "-x", "--interval=0x10"])
    assert flags == {"backend": "file", "confdir": "/c", "prefix": "-x", "interval": 16}
    assert rest == []


def test_repeated_list_flags_collect() -> None:
    flags, _ = parse_go_flags(["-node", "http://a:1", "-node=http://b:2", "--file", "x.yaml", "-file", "y"])
    assert flags == {"nodes": ("http://a:1", "http://b:2"), "files": ("x.yaml", "y")}


def test_node_values_are_not_split_on_commas() -> None:
    assert parse_go_flags(["-node", "a,b"])[0] == {"nodes": ("a,b",)}


def test_bool_takes_a_value_only_with_equals() -> None:
    flags, rest = parse_go_flags(["-watch", "false", "-noop"])
    # "false" is not the value of -watch: it is the first positional and ends flag parsing.
    assert flags == {"watch": True}
    assert rest == ["false", "-noop"]
    assert parse_go_flags(["-watch=false", "-noop=T"])[0] == {"watch": False, "noop": True}


def test_parsing_stops_at_double_dash_and_lone_dash() -> None:
    assert parse_go_flags(["-noop", "--", "-watch"]) == ({"noop": True}, ["-watch"])
    assert parse_go_flags(["-", "-watch"]) == ({}, ["-", "-watch"])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-bogus"], "flag provided but not defined: -bogus"),
        (["--bogus=1"], "flag provided but not defined: -bogus"),
        (["-interval"], "flag needs an argument: -interval"),
        (["-interval", "ten"], 'invalid value "ten" for flag -interval: parse error'),
        (["-interval=1.5"], 'invalid value "1.5" for flag -interval: parse error'),
        (["-watch=yes"], 'invalid boolean value "yes" for -watch: parse error'),
        (["---watch"], "bad flag syntax: ---watch"),
        (["-=x"], "bad flag syntax: -=x"),
    ],
)
def test_go_errors(args: list[str], message: str) -> None:
    with pytest.raises(FlagError) as info:
        parse_go_flags(args)
    assert str(info.value) == message


def test_help() -> None:
    for arg in ("-h", "--help", "-help"):
        with pytest.raises(HelpRequested):
            parse_go_flags([arg])


def test_usage_looks_like_go() -> None:
    text = usage()
    assert text.startswith("Usage of muster confd:\n")
    assert (
        '  -backend string\n    \tbackend to use: etcdv3, etcd (v2 API), file, env (default "etcdv3")\n'
        in text
    )
    assert "  -onetime\n    \trun once and exit\n" in text
    assert "  -interval int\n    \tbackend polling interval (default 600)\n" in text
    assert "  -node value\n" in text


def test_main_unknown_flag_exits_2_with_usage() -> None:
    err = io.StringIO()
    assert main(["-onetime", "-nope"], stderr=err, environ={}) == 2
    assert err.getvalue().startswith("flag provided but not defined: -nope\nUsage of muster confd:")


def test_main_help_exits_0() -> None:
    err = io.StringIO()
    assert main(["-h"], stderr=err) == 0
    assert "Usage of muster confd" in err.getvalue()


def test_main_version() -> None:
    out = io.StringIO()
    assert main(["-version", "-bogus-after-version-is-still-an-error"], stdout=out, stderr=io.StringIO()) == 2
    assert main(["-version"], stdout=out) == 0
    assert "confd" in out.getvalue()


def test_main_config_error_exits_2(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(
        ["-onetime", "-backend", "consul", "-config-file", str(tmp_path / "none")], stderr=err, environ={}
    )
    assert code == 2
    assert "unsupported backend 'consul'" in err.getvalue()


def test_main_missing_confdir_exits_2(tmp_path: Path) -> None:
    err = io.StringIO()
    code = main(
        [
            "-onetime",
            "-backend",
            "env",
            "-confdir",
            str(tmp_path / "nope"),
            "-config-file",
            str(tmp_path / "none"),
            "-log-level",
            "error",
        ],
        stderr=err,
        environ={},
    )
    assert code == 2
    assert "conf.d is not a directory" in err.getvalue()


def test_cli_passes_raw_go_flags_through_click() -> None:
    result = CliRunner().invoke(cli_main, ["confd", "--bogus"])
    assert result.exit_code == 2
    assert "flag provided but not defined: -bogus" in result.output
    result = CliRunner().invoke(cli_main, ["confd", "-version"])
    assert result.exit_code == 0, result.output
    assert "muster" in result.output


def test_muster_run_is_the_same_daemon(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "t.tmpl").write_text('{{getv "/muster/run/test"}}')
    dest = tmp_path / "out.txt"
    (tmp_path / "conf.d" / "t.toml").write_text(
        f'[template]\nsrc = "t.tmpl"\ndest = "{dest}"\nkeys = ["/muster/run/test"]\n'
    )
    args = [
        "run",
        "--mode",
        "once",
        "--backend",
        "env",
        "--confdir",
        str(tmp_path),
        "--config-file",
        str(tmp_path / "none.toml"),
        "--log-level",
        "error",
    ]
    result = CliRunner().invoke(cli_main, args, env={"MUSTER_RUN_TEST": "hello"})
    assert result.exit_code == 0, result.output
    assert dest.read_text() == "hello"
    result = CliRunner().invoke(cli_main, [*args, "--debounce-window", "soon"])
    assert result.exit_code == 2
    assert "--debounce-window" in result.output
