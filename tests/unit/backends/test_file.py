"""confd's file backend: YAML flattening (yaml.v2 rules), file discovery, filtering, watching."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from muster.backends import BackendOptions, create
from muster.backends.base import Backend
from muster.backends.file import FileBackend, find_key_files, load_key_files
from muster.backends.yamlkeys import KeyFileError, load_json_keys, load_yaml_keys, resolve_plain
from muster.errors import BackendError, BackendUnavailable, ConfigError

SCALARS = """\
yes_: yes
y_: y
off_: Off
hex: 0x10
octal: 010
not_octal: 08
exp: 1e3
inf: .inf
ninf: -.inf
nan: .nan
nul: null
tilde: ~
max: 9223372036854775807
uint: 9223372036854775808
huge: 18446744073709551616
under: 1_000
bin: 0b101
plus: +5
frac: 0.1
tiny: 1e-7
sexa: 1:30
date: 2001-12-14
quoted: '0x10'
dot5: .5
dot: 1.
big_exp: 1e400
text: hello world
empty_str: ''
"""


def test_scalars_are_stored_as_confd_formats_them() -> None:
    keys = load_yaml_keys(SCALARS, "s.yaml")
    assert keys == {
        "/yes_": "true",
        "/y_": "true",
        "/off_": "false",
        "/hex": "16",
        "/octal": "8",
        "/not_octal": "8",
        "/exp": "1000",
        "/inf": "+Inf",
        "/ninf": "-Inf",
        "/nan": "NaN",
        "/max": "9223372036854775807",
        "/huge": "18446744073709552000",
        "/under": "1000",
        "/bin": "5",
        "/plus": "5",
        "/frac": "0.1",
        "/tiny": "0.0000001",
        "/sexa": "1:30",
        "/date": "2001-12-14",
        "/quoted": "0x10",
        "/dot5": "0.5",
        "/dot": "1",
        "/big_exp": "1e400",
        "/text": "hello world",
        "/empty_str": "",
    }  # null, ~ and the uint64 are dropped


def test_structure_is_flattened_with_path_join() -> None:
    text = """\
list:
  - one
  - {name: three, port: 3}
  - [a, b]
nested: {a: {b: deep}}
"a/b": slash
"../up": cleaned
base: &base {k: v}
merged:
  <<: *base
  other: x
"""
    assert load_yaml_keys(text, "t.yaml") == {
        "/list/0": "one",
        "/list/1/name": "three",
        "/list/1/port": "3",
        "/list/2/0": "a",
        "/list/2/1": "b",
        "/nested/a/b": "deep",
        "/a/b": "slash",
        "/up": "cleaned",
        "/base/k": "v",
        "/merged/k": "v",
        "/merged/other": "x",
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("m:\n  1: one\n", "bad.yaml: mapping key 1 under /m is not a string"),
        ("on: x\n", "bad.yaml: mapping key true under / is not a string"),
        ("- a\n", "bad.yaml: cannot unmarshal !!seq"),
        ("a: [\n", 'in "bad.yaml", line 2'),
    ],
)
def test_bad_files_name_the_file(text: str, message: str) -> None:
    with pytest.raises(KeyFileError) as info:
        load_yaml_keys(text, "bad.yaml")
    assert message in str(info.value)


def test_empty_and_json_files() -> None:
    assert load_yaml_keys("", "e.yaml") == {}
    assert load_yaml_keys("# only a comment\n", "e.yaml") == {}
    assert load_json_keys(
        '{"a": 1, "b": 1.5, "c": [true, null], "d": {"/x/y": "z"}, "e": 1e400}', "k.json"
    ) == {
        "/a": "1",
        "/b": "1.5",
        "/c/0": "true",
        "/d/x/y": "z",
        "/e": "1e400",
    }
    with pytest.raises(KeyFileError, match="k.json"):
        load_json_keys("{", "k.json")


def test_resolve_plain_follows_yaml_v2() -> None:
    assert resolve_plain("") is None and resolve_plain("NULL") is None
    assert resolve_plain("-0b11") == -3 and resolve_plain("0o17") == 15
    assert resolve_plain("+.inf") == float("inf")
    assert resolve_plain("1e") == "1e" and resolve_plain("0x") == "0x"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_directories_are_walked_in_go_order_with_the_filter(tmp_path: Path) -> None:
    _write(tmp_path / "conf" / "b.yaml", "k: from-b\nb: 1\n")
    _write(tmp_path / "conf" / "a" / "z.yaml", "k: from-a-z\n")
    _write(tmp_path / "conf" / "c.txt", "k: from-txt\n")
    _write(tmp_path / "conf" / "a.yaml", "k: from-a\n")
    root = str(tmp_path / "conf")
    found = [os.path.relpath(p, root) for p in find_key_files([root], "*.yaml")]
    assert found == ["a/z.yaml", "a.yaml", "b.yaml"]  # lexical, depth first, like filepath.Walk
    assert load_key_files([root], "*.yaml") == {"/k": "from-b", "/b": "1"}  # later files win
    assert load_key_files([root], "*")["/k"] == "from-txt"
    single = str(tmp_path / "conf" / "c.txt")
    assert find_key_files([single], "*.yaml") == [single]  # a file given directly is always read


def test_missing_paths_and_bad_filters(tmp_path: Path) -> None:
    with pytest.raises(BackendUnavailable, match="nope.yaml"):
        find_key_files([str(tmp_path / "nope.yaml")])
    with pytest.raises(ConfigError, match="bad -filter pattern"):
        find_key_files([str(tmp_path)], "[")
    with pytest.raises(ConfigError):
        FileBackend(options=BackendOptions())


async def test_get_values_uses_plain_string_prefixes(tmp_path: Path) -> None:
    keys = _write(tmp_path / "keys.yaml", "app: {name: x}\napplication: {x: '2'}\nother: {x: '1'}\n")
    backend = create("file", BackendOptions(files=(str(keys),)))
    assert isinstance(backend, Backend)
    snap = await backend.get_values(["/app"])
    assert dict(snap.values) == {"/app/name": "x", "/application/x": "2"}
    assert snap.revision is None
    assert len((await backend.get_values(["/"])).values) == 3
    await backend.aclose()


async def test_bad_yaml_is_a_backend_error(tmp_path: Path) -> None:
    keys = _write(tmp_path / "keys.yaml", "1: x\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys),)))
    with pytest.raises(BackendError, match="keys.yaml"):
        await backend.get_values(["/"])


async def test_wait_changed_returns_on_a_value_change_only(tmp_path: Path) -> None:
    keys = _write(tmp_path / "keys.yaml", "app: {port: '1'}\nother: {x: '1'}\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys),)), poll_interval=0.02)
    await backend.get_values(["/app"])
    waiter = asyncio.create_task(backend.wait_changed(["/app"], None))
    await asyncio.sleep(0.1)
    keys.write_text("app: {port: '1'}\nother: {x: '2'}\n")  # outside the prefix
    await asyncio.sleep(0.1)
    assert not waiter.done()
    keys.write_text("app: {port: '1'\n")  # broken mid-edit: keep waiting
    await asyncio.sleep(0.1)
    assert not waiter.done()
    keys.write_text("app: {port: '2'}\nother: {x: '2'}\n")
    assert await asyncio.wait_for(waiter, 5) is None


async def test_wait_changed_sees_a_change_made_before_it_started(tmp_path: Path) -> None:
    keys = _write(tmp_path / "keys.yaml", "a: '1'\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys),)), poll_interval=0.02)
    await backend.get_values(["/"])
    replacement = _write(tmp_path / "new.yaml", "a: '2'\n")
    os.replace(replacement, keys)  # editors save by rename
    assert await asyncio.wait_for(backend.wait_changed(["/"], None), 5) is None


async def test_wait_changed_can_be_cancelled(tmp_path: Path) -> None:
    keys = _write(tmp_path / "d" / "keys.yaml", "a: '1'\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys.parent),)), poll_interval=0.02)
    waiter = asyncio.create_task(backend.wait_changed(["/"], None))
    await asyncio.sleep(0.05)
    _write(tmp_path / "d" / "more.yaml", "b: '1'\n")  # a new file in a watched directory
    assert await asyncio.wait_for(waiter, 5) is None
    assert (await backend.get_values(["/"])).values == {"/a": "1", "/b": "1"}
    waiter = asyncio.create_task(backend.wait_changed(["/"], None))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter


async def test_wait_on_a_union_of_prefixes_sees_changes_after_per_resource_reads(tmp_path: Path) -> None:
    # The daemon reads each resource's keys, then waits once on the union of them.
    keys = _write(tmp_path / "keys.yaml", "a: {x: '1'}\nb: {z: '1'}\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys),)), poll_interval=0.02)
    await backend.get_values(["/a"])
    await backend.get_values(["/b"])
    keys.write_text("a: {x: '1'}\nb: {z: '2'}\n")  # before the wait starts
    assert await asyncio.wait_for(backend.wait_changed(["/a", "/b"], None), 5) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
async def test_inotify_wakes_the_watch_at_once(tmp_path: Path) -> None:
    # A poll interval of a minute: only an inotify event can end this wait in time.
    keys = _write(tmp_path / "keys.yaml", "a: '1'\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys),)), poll_interval=60)
    await backend.get_values(["/"])
    waiter = asyncio.create_task(backend.wait_changed(["/"], None))
    await asyncio.sleep(0.1)
    replacement = _write(tmp_path / ".keys.yaml.swp", "a: '2'\n")
    os.replace(replacement, keys)  # saved by rename, as editors do
    assert await asyncio.wait_for(waiter, 5) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux only")
async def test_inotify_covers_directories_created_while_waiting(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    _write(conf / "a.yaml", "a: '1'\n")
    backend = FileBackend(options=BackendOptions(files=(str(conf),)), poll_interval=60)
    await backend.get_values(["/"])
    waiter = asyncio.create_task(backend.wait_changed(["/"], None))
    await asyncio.sleep(0.1)
    (conf / "sub").mkdir()  # wakes the watch, changes no key: it keeps waiting
    await asyncio.sleep(0.3)
    assert not waiter.done()
    _write(conf / "sub" / "b.yaml", "b: '1'\n")
    assert await asyncio.wait_for(waiter, 5) is None


async def test_polling_fallback(tmp_path: Path) -> None:
    keys = _write(tmp_path / "keys.yaml", "a: '1'\n")
    backend = FileBackend(options=BackendOptions(files=(str(keys),)), poll_interval=0.02, inotify=False)
    await backend.get_values(["/"])
    waiter = asyncio.create_task(backend.wait_changed(["/"], None))
    await asyncio.sleep(0.1)
    keys.write_text("a: '2'\n")
    assert await asyncio.wait_for(waiter, 5) is None
