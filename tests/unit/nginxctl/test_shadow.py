from __future__ import annotations

from pathlib import Path

import pytest

from muster.nginxctl.shadow import ShadowError, find_includes, nginx_quote, plan_shadow


def includes(text: str) -> list[str]:
    return [s.pattern for s in find_includes(text)]


def test_finds_includes_in_every_context() -> None:
    text = "include a.conf;\nhttp { include  b/*.conf ; server { include 'c d.conf'; } }\n"
    assert includes(text) == ["a.conf", "b/*.conf", "c d.conf"]
    spans = [text[s.start : s.end] for s in find_includes(text)]
    assert spans[1] == "include  b/*.conf ;"


def test_ignores_comments_strings_and_arguments() -> None:
    text = (
        "# include x.conf;\n"
        'set $v "include y.conf;";\n'
        "log_format include z;\n"  # "include" as an argument, not a directive
        "include ok.conf; # trailing include w;\n"
    )
    assert includes(text) == ["ok.conf"]


def test_variables_with_braces_do_not_open_blocks() -> None:
    assert includes("set $a ${b}c; include ok.conf;") == ["ok.conf"]


def test_lua_blocks_are_skipped_like_the_lua_module_does() -> None:
    text = """
    init_by_lua_block {
        local s = "}"  -- a brace in a string }
        local t = [[ include nope.conf; } ]]
        --[==[ long comment } ]==]
        if #s > 0 then x = { y = { } } end
    }
    include after.conf;
    """
    assert includes(text) == ["after.conf"]


def test_escaped_quotes() -> None:
    assert includes(r'include "a\"b.conf";') == ['a"b.conf']


@pytest.mark.parametrize("text", ['include "open;', "init_by_lua_block { x = 1"])
def test_unterminated_input_is_an_error(text: str) -> None:
    with pytest.raises(ShadowError):
        find_includes(text)


def test_quote_round_trips() -> None:
    path = 'a "b" \\c;{}.conf'
    assert includes(f"include {nginx_quote(path)};") == [path]


def tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path / "nginx.conf"


def test_glob_include_lists_each_file_with_the_staged_one_in_place(tmp_path: Path) -> None:
    main = tree(
        tmp_path,
        {
            "nginx.conf": "events {}\nhttp {\n    include conf.d/*.conf;\n}\n",
            "conf.d/a.conf": "",
            "conf.d/muster.conf": "old",
            "conf.d/z.conf": "",
        },
    )
    staged = tmp_path / "conf.d" / ".muster.conf123"
    plan = plan_shadow(main, tmp_path / "conf.d/muster.conf", staged, shadow_name=lambda p: p.with_name("S"))
    assert list(plan.files) == [main]
    d = tmp_path / "conf.d"
    assert plan.files[main] == (
        f'events {{}}\nhttp {{\n    include "{d}/a.conf"; include "{staged}"; include "{d}/z.conf";\n}}\n'
    )
    assert plan.names[main] == tmp_path / "S"


def test_a_dest_that_does_not_exist_yet_joins_the_glob(tmp_path: Path) -> None:
    main = tree(tmp_path, {"nginx.conf": "include conf.d/*.conf;\n", "conf.d/b.conf": ""})
    plan = plan_shadow(main, tmp_path / "conf.d/a.conf", tmp_path / "staged")
    assert plan.files[main] == f'include "{tmp_path}/staged"; include "{tmp_path}/conf.d/b.conf";\n'


def test_nested_includes_are_shadowed_on_the_path_only(tmp_path: Path) -> None:
    main = tree(
        tmp_path,
        {
            "nginx.conf": "include mime.types;\nhttp { include http.conf; }\n",
            "mime.types": "types {}",
            "http.conf": "include /abs/not/there.conf;\ninclude sites/*;\n",
            "sites/muster": "old",
        },
    )
    names = {main: tmp_path / "S-main", tmp_path / "http.conf": tmp_path / "S-http"}
    plan = plan_shadow(main, tmp_path / "sites/muster", tmp_path / "new", shadow_name=names.__getitem__)
    assert plan.files[main] == f'include mime.types;\nhttp {{ include "{tmp_path}/S-http"; }}\n'
    assert plan.files[tmp_path / "http.conf"] == (
        f'include /abs/not/there.conf;\ninclude "{tmp_path}/new";\n'
    )
    assert list(plan.files) == [tmp_path / "http.conf", main]  # written deepest first


def test_not_included_is_an_error(tmp_path: Path) -> None:
    main = tree(tmp_path, {"nginx.conf": "include other/*.conf;\n"})
    with pytest.raises(ShadowError, match="never includes"):
        plan_shadow(main, tmp_path / "conf.d/muster.conf", tmp_path / "staged")


def test_include_cycles_terminate(tmp_path: Path) -> None:
    main = tree(tmp_path, {"nginx.conf": "include a.conf;\n", "a.conf": "include nginx.conf;\n"})
    with pytest.raises(ShadowError, match="never includes"):
        plan_shadow(main, tmp_path / "conf.d/muster.conf", tmp_path / "staged")
