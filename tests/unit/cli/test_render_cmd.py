"""``muster render``: one template to stdout, dot from JSON, confd functions over a key file."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from muster.cli.main import main


def _render(*args: str) -> Result:
    return CliRunner().invoke(main, ["render", *args])


def _write(path: Path, data: str | bytes) -> str:
    if isinstance(data, str):
        data = data.encode()
    path.write_bytes(data)
    return str(path)


def test_renders_with_data_and_keys(tmp_path: Path) -> None:
    tmpl = _write(
        tmp_path / "nginx.tmpl",
        '{{.port}} {{printf "%T" .port}} {{.n}}|{{range getvs "/services/web/servers/*"}}'
        '{{$d := json .}}{{$d.host}}:{{$d.port}};{{end}}|{{getv "/app/flag"}}',
    )
    data = _write(tmp_path / "data.json", '{"port": 8080, "n": 1000000}')
    keys = _write(
        tmp_path / "keys.yaml",
        'services:\n  web:\n    servers:\n      a: \'{"host":"10.0.0.1","port":80}\'\napp: {flag: yes}\n',
    )
    result = _render(tmpl, "--data", data, "--keys", keys)
    assert result.exit_code == 0, result.stderr
    assert result.stdout == "8080 float64 1e+06|10.0.0.1:80;|true"


def test_json_key_files(tmp_path: Path) -> None:
    tmpl = _write(tmp_path / "t.tmpl", '{{getv "/a/b"}} {{ls "/a"}}')
    keys = _write(tmp_path / "keys.json", '{"a": {"b": 1.5, "c": [true]}}')
    result = _render(tmpl, "--keys", keys)
    assert (result.exit_code, result.stdout) == (0, "1.5 [b c]")


def test_without_data_dot_is_nil(tmp_path: Path) -> None:
    result = _render(_write(tmp_path / "t.tmpl", "[{{.}}] [{{.x}}]"))
    assert (result.exit_code, result.stdout) == (0, "[<no value>] [<no value>]")


def test_template_is_named_after_its_file(tmp_path: Path) -> None:
    tmpl = _write(tmp_path / "site.conf.tmpl", '{{define "x"}}X{{end}}{{if eq 1 1}}{{template "x"}}{{end}}')
    assert _render(tmpl).stdout == "X"
    recursive = _write(tmp_path / "r.tmpl", '{{if .}}{{.}}{{else}}{{template "r.tmpl" "again"}}{{end}}')
    assert _render(recursive).stdout == "again"


def test_bytes_pass_through_unchanged(tmp_path: Path) -> None:
    tmpl = _write(tmp_path / "t.tmpl", b'caf\xc3\xa9 \xff\r\n{{slice "h\xc3\xa9" 0 2}}')
    result = _render(tmpl)
    assert result.exit_code == 0
    assert result.stdout_bytes == b"caf\xc3\xa9 \xff\r\nh\xc3"


def test_exec_errors_are_go_shaped_and_write_nothing(tmp_path: Path) -> None:
    tmpl = _write(tmp_path / "app.tmpl", 'before\n{{getv "/nope"}} after')
    result = _render(tmpl, "--keys", _write(tmp_path / "k.yaml", "a: b\n"))
    assert result.exit_code == 1
    assert result.stdout_bytes == b""
    assert result.stderr.startswith("template: app.tmpl:2:")
    assert "error calling getv: key does not exist: /nope" in result.stderr


def test_parse_errors(tmp_path: Path) -> None:
    result = _render(_write(tmp_path / "bad.tmpl", "{{if}}"))
    assert result.exit_code == 1 and result.stdout_bytes == b""
    assert result.stderr.startswith("template: bad.tmpl:1:")


def test_bad_inputs_name_the_file(tmp_path: Path) -> None:
    tmpl = _write(tmp_path / "t.tmpl", "x")
    bad_keys = _write(tmp_path / "keys.yaml", "1: one\n")
    result = _render(tmpl, "--keys", bad_keys)
    assert result.exit_code == 1 and "keys.yaml" in result.stderr and result.stdout_bytes == b""
    # Invalid data is a warning naming the file; dot is nil, as in the corpus's Go program.
    bad_data = _write(tmp_path / "data.json", "{nope")
    result = _render(_write(tmp_path / "d.tmpl", "{{printf `%v` .}}"), "--data", bad_data)
    assert result.exit_code == 0 and result.stdout_bytes == b"<nil>"
    assert "data.json" in result.stderr and "invalid character" in result.stderr
    result = _render(str(tmp_path / "missing.tmpl"))
    assert result.exit_code == 2 and "missing.tmpl" in result.stderr


def test_prefix_and_key_filters_act_like_a_confd_resource(tmp_path: Path) -> None:
    keys = _write(
        tmp_path / "keys.yaml",
        "production:\n  app: {name: prod}\n  db: pg\nproduction2: {x: '1'}\nstaging:\n  app: {name: stg}\n",
    )
    tmpl = _write(
        tmp_path / "t.tmpl", '{{getv "/app/name"}} {{exists "/db"}} {{ls "/app"}} {{len (gets "/*/*")}}'
    )
    result = _render(tmpl, "--keys", keys, "--prefix", "production", "--key", "/app")
    assert (result.exit_code, result.stdout) == (0, "prod false [name] 1")
    # A string prefix, as confd's file backend has it: /production also selects /production2.
    everything = _write(tmp_path / "all.tmpl", '{{range gets "/*"}}{{.Key}} {{end}}|{{getv "/2/x"}}')
    result = _render(everything, "--keys", keys, "--prefix", "/production")
    assert (result.exit_code, result.stdout) == (0, "/db |1")


def test_keys_from_directories_and_several_files(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    (conf / "sub").mkdir(parents=True)
    _write(conf / "a.yaml", "app: {name: from-a, port: '80'}\n")
    _write(conf / "sub" / "b.yaml", "app: {name: from-sub-b}\n")
    _write(conf / "notes.txt", "not: [yaml\n")
    extra = _write(tmp_path / "extra.json", '{"app": {"port": 8080}}')
    tmpl = _write(tmp_path / "t.tmpl", '{{getv "/app/name"}} {{getv "/app/port"}}')
    result = _render(tmpl, "--keys", str(conf), "--filter", "*.yaml", "--keys", extra)
    # filepath.Walk order: a.yaml, then sub/b.yaml; the JSON file comes last and wins.
    assert (result.exit_code, result.stdout) == (0, "from-sub-b 8080")
    result = _render(tmpl, "--keys", str(conf))  # the default filter reads notes.txt too
    assert result.exit_code == 1 and "notes.txt" in result.stderr
