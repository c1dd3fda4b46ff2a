"""confd's template functions: Go signatures, Go results, Go errors.

Where the answer comes from Go's standard library, it is checked against goldens
produced by Go 1.19 itself (scripts/confd_golden); the rest restates confd's code.
"""

from __future__ import annotations

import binascii
import math
import os
import socket
import struct
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from muster.confd.dns import lookup_srv
from muster.confd.funcs import GoError, func_map, helper_funcs
from muster.confd.store import KeyNotFound, KVPair, KVPairs, KVStore
from muster.golang import path as gopath
from muster.golang.json import JSONError, decode as go_json_decode
from muster.golang.time import GoTime
from muster.golang.values import GoFunc, GoSlice, go_type_name

STORE = KVStore({"/app/name": "muster", "/app/port": "8080", "/s/ccc": "3", "/s/a": "1", "/s/bb": "2"})
FUNCS = func_map(STORE)

ALL_NAMES = (
    "exists get gets getv getvs ls lsdir base dir split join json jsonArray map getenv datetime "
    "toUpper toLower contains replace trimSuffix lookupIP lookupIPV4 lookupIPV6 lookupSRV "
    "fileExists base64Encode base64Decode parseBool reverse sortByLength sortKVByLength add sub mul "
    "div mod seq atoi"
).split()


def call(name: str, *args: Any) -> Any:
    return FUNCS[name].fn(*args)


def test_every_confd_function_is_there_with_its_go_signature() -> None:
    assert sorted(FUNCS) == sorted(ALL_NAMES)
    signatures = {name: fn.signature for name, fn in FUNCS.items()}
    assert signatures["getv"] == "func(string, ...string)"
    assert signatures["getenv"] == "func(string, ...string)"
    assert signatures["map"] == "func(...interface {})"
    assert signatures["replace"] == "func(string, string, string, int)"
    assert signatures["join"] == "func([]string, string)"
    assert signatures["sortKVByLength"] == "func([]memkv.KVPair)"
    assert signatures["reverse"] == "func(interface {})"
    assert signatures["datetime"] == "func()"
    assert all(isinstance(f, GoFunc) and f.name == n for n, f in FUNCS.items())


def test_store_functions_win_over_helpers() -> None:
    assert set(helper_funcs()).isdisjoint({"get", "gets", "getv", "getvs", "ls", "lsdir", "exists"})


# -- store functions --------------------------------------------------------------


def test_store_function_results_and_errors() -> None:
    assert call("exists", "/app/name") is True
    assert call("get", "/app/name") == KVPair("/app/name", "muster")
    assert go_type_name(call("gets", "/s/*")) == "memkv.KVPairs"
    assert call("getv", "/nope", "d") == "d"
    with pytest.raises(KeyNotFound, match="^key does not exist: /nope$"):
        call("getv", "/nope")
    with pytest.raises(KeyNotFound, match="^key does not exist: /app$"):
        call("get", "/app")
    with pytest.raises(gopath.BadPattern, match="^syntax error in pattern$"):
        call("getvs", "/app/[")
    assert go_type_name(call("ls", "/app")) == "[]string"
    assert go_type_name(call("lsdir", "/")) == "[]string"


# -- path, strings ----------------------------------------------------------------


@pytest.mark.parametrize("name", ["base", "dir"])
def test_path_functions_match_go(name: str, go_golden: dict[str, Any]) -> None:
    for case in go_golden[name]:
        assert call(name, case["in"]) == case["out"], case


def test_split_matches_go(go_golden: dict[str, Any]) -> None:
    for case in go_golden["split"]:
        out = call("split", case["s"], case["sep"])
        assert out == (case["out"] or []) and out.elem == "string", case


def test_split_explodes_invalid_bytes_like_go() -> None:
    raw = b"a\xffb\xff".decode("utf-8", "surrogateescape")
    assert call("split", raw, "") == ["a", "\ufffd", "b", "\udcff"]  # the last piece stays raw


def test_string_helpers() -> None:
    assert call("join", GoSlice(["a", "b"], "string"), "-") == "a-b"
    assert call("toUpper", "abcé") == "ABCÉ" and call("toLower", "ABCÉ") == "abcé"
    assert call("toUpper", "ß") == "ß"  # Go maps rune by rune: no "SS"
    assert call("toLower", "İ") == "i"
    assert call("toUpper", "ᾳ") == "ᾼ"
    assert call("toUpper", b"\xffa\xc3\xa9".decode("utf-8", "surrogateescape")) == "\ufffdAÉ"
    assert call("contains", "seafood", "foo") and call("contains", "", "")
    assert call("replace", "aaaa", "a", "b", 2) == "bbaa"
    assert call("replace", "ab", "", "-", -1) == "-a-b-"
    assert call("replace", "aaaa", "a", "b", 0) == "aaaa"
    assert call("trimSuffix", "file.tmpl", ".tmpl") == "file"
    assert call("trimSuffix", "file.tmpl", ".x") == "file.tmpl"


def test_getenv(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSTER_T_SET", "v")
    monkeypatch.setenv("MUSTER_T_EMPTY", "")
    monkeypatch.delenv("MUSTER_T_UNSET", raising=False)
    assert call("getenv", "MUSTER_T_SET") == "v"
    assert call("getenv", "MUSTER_T_UNSET") == ""
    assert call("getenv", "MUSTER_T_UNSET", "d", "e") == "d"
    assert call("getenv", "MUSTER_T_EMPTY", "was-empty") == "was-empty"


# -- json, map ----------------------------------------------------------------------


def test_json_decodes_like_go() -> None:
    obj = call("json", '{"a": 8080, "b": [1, "x", null, true], "c": {"d": 1e6}}')
    assert obj == {"a": 8080.0, "b": [1.0, "x", None, True], "c": {"d": 1e6}}
    assert isinstance(obj["a"], float) and go_type_name(obj) == "map[string]interface {}"
    assert call("json", "null") == {}
    assert call("jsonArray", '[1, {"k": "v"}]') == [1.0, {"k": "v"}]
    assert call("jsonArray", "null") == []
    assert go_json_decode('"\\ud800"') == "\ufffd"  # Go repairs a lone surrogate
    assert go_json_decode('"a\\u00e9"') == "aé"


def test_json_errors_match_go(go_golden: dict[str, Any]) -> None:
    mismatches = []
    for case in go_golden["jsonDecode"]:
        try:
            go_json_decode(case["in"])
            err = ""
        except JSONError as exc:
            err = str(exc)
        if err != case.get("errmsg", ""):
            mismatches.append((case["in"][:60], err, case.get("errmsg")))
    assert len(go_golden["jsonDecode"]) > 40
    assert mismatches == []


@pytest.mark.parametrize(
    ("fn", "text", "message"),
    [
        ("json", "[1,2]", "json: cannot unmarshal array into Go value of type map[string]interface {}"),
        ("jsonArray", '{"a":1}', "json: cannot unmarshal object into Go value of type []interface {}"),
        ("json", '"s"', "json: cannot unmarshal string into Go value of type map[string]interface {}"),
        ("json", "not json", "invalid character 'o' in literal null (expecting 'u')"),
        ("json", '{"a": 1e400}', "json: cannot unmarshal number 1e400 into Go value of type float64"),
    ],
)
def test_json_type_errors(fn: str, text: str, message: str) -> None:
    with pytest.raises(JSONError) as info:
        call(fn, text)
    assert str(info.value) == message


def test_map() -> None:
    assert call("map") == {}
    assert call("map", "a", 1, "b", None) == {"a": 1, "b": None}
    with pytest.raises(GoError, match="^invalid map call$"):
        call("map", "a", 1, "b")
    with pytest.raises(GoError, match="^map keys must be strings$"):
        call("map", 1, 2)


# -- strconv, base64 ----------------------------------------------------------------


def test_parse_bool_matches_go(go_golden: dict[str, Any]) -> None:
    for case in go_golden["parseBool"]:
        if case["err"]:
            with pytest.raises(GoError) as info:
                call("parseBool", case["in"])
            assert str(info.value) == case["errmsg"]
        else:
            assert call("parseBool", case["in"]) is (case["out"] == "true"), case


def test_atoi_matches_go(go_golden: dict[str, Any]) -> None:
    for case in go_golden["atoi"]:
        if case["err"]:
            with pytest.raises(GoError) as info:
                call("atoi", case["in"])
            assert str(info.value) == case["errmsg"]
        else:
            assert call("atoi", case["in"]) == int(case["out"]), case
    with pytest.raises(GoError, match="value out of range"):
        call("atoi", "9223372036854775808")


def test_base64_matches_go(go_golden: dict[str, Any]) -> None:
    for case in go_golden["base64Decode"]:
        if case["err"]:
            with pytest.raises(GoError) as info:
                call("base64Decode", case["in"])
            assert str(info.value) == case["errmsg"]
        else:
            out = call("base64Decode", case["in"]).encode("utf-8", "surrogateescape")
            assert binascii.hexlify(out).decode() == case["out"], case
    assert call("base64Encode", "hello") == "aGVsbG8="
    assert call("base64Encode", b"\xff".decode("utf-8", "surrogateescape")) == "/w=="


# -- lists ----------------------------------------------------------------------------


def test_reverse_only_touches_string_and_kvpair_slices() -> None:
    strings = GoSlice(["a", "b", "c"], "string")
    assert call("reverse", strings) is strings and strings == ["c", "b", "a"]
    pairs = call("gets", "/s/*")
    assert isinstance(pairs, KVPairs)
    assert [p.Key for p in call("reverse", pairs)] == ["/s/a", "/s/bb", "/s/ccc"]  # memkv.KVPairs: as is
    kv_slice = call("sortKVByLength", call("gets", "/s/*"))
    assert go_type_name(kv_slice) == "[]memkv.KVPair"
    assert [p.Key for p in call("reverse", kv_slice)] == ["/s/ccc", "/s/bb", "/s/a"]
    ints = call("seq", 1, 3)
    assert call("reverse", ints) == [1, 2, 3]
    plain = [1, 2]
    assert call("reverse", plain) == [1, 2]
    assert call("reverse", None) is None


def test_sort_by_length_reproduces_gos_unstable_sort(go_golden: dict[str, Any]) -> None:
    for case in go_golden["sortByLength"]:
        values = GoSlice(case["in"] or [], "string")
        assert call("sortByLength", values) == (case["out"] or []), case["in"]
    assert call("sortByLength", GoSlice("bb aa c dd e".split(), "string")) == ["c", "e", "bb", "aa", "dd"]


def test_sort_kv_by_length_sorts_in_place() -> None:
    pairs = call("gets", "/s/*")
    out = call("sortKVByLength", pairs)
    assert [p.Key for p in out] == ["/s/a", "/s/bb", "/s/ccc"]
    assert [p.Key for p in pairs] == ["/s/a", "/s/bb", "/s/ccc"]


# -- arithmetic -------------------------------------------------------------------------


def test_arithmetic_is_go_int() -> None:
    assert call("add", 1, 2) == 3 and call("sub", 1, 2) == -1 and call("mul", -3, 4) == -12
    assert call("div", -7, 2) == -3 and call("mod", -7, 2) == -1 and call("mod", 7, -2) == 1
    assert call("add", 2**63 - 1, 1) == -(2**63)  # wraps around like int64
    assert call("div", -(2**63), -1) == -(2**63)
    for name in ("div", "mod"):
        with pytest.raises(GoError, match="^runtime error: integer divide by zero$"):
            call(name, 1, 0)
    seq = call("seq", 3, 5)
    assert seq == [3, 4, 5] and go_type_name(seq) == "[]int"
    assert call("seq", 5, 3) == []


# -- system -------------------------------------------------------------------------------


def test_file_exists(tmp_path: Any) -> None:
    (tmp_path / "f").write_text("x")
    assert call("fileExists", str(tmp_path / "f")) and call("fileExists", "/")
    assert not call("fileExists", str(tmp_path / "missing"))
    assert not call("fileExists", "")
    assert call("fileExists", str(tmp_path / "f" / "x"))  # ENOTDIR is not "does not exist" in Go


def test_datetime_is_a_time_time() -> None:
    now = call("datetime")
    assert isinstance(now, GoTime) and go_type_name(now) == "time.Time"
    assert now.Year() > 2000 and len(now.Format("2006-01-02")) == 10


def test_lookup_ip_localhost() -> None:
    ips = call("lookupIP", "localhost")
    assert "127.0.0.1" in ips and ips == sorted(ips) and go_type_name(ips) == "[]string"
    assert call("lookupIPV4", "localhost") == [ip for ip in ips if "." in ip]
    assert all(":" in ip for ip in call("lookupIPV6", "localhost"))
    assert call("lookupIP", "bad\x00name") == []  # rejected before any query is sent


@pytest.fixture
def dns_server() -> Iterator[tuple[str, int]]:
    """A one-zone DNS server on loopback answering SRV queries for _http._tcp.example."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def encode(name: str) -> bytes:
        return b"".join(bytes([len(p)]) + p.encode() for p in name.split(".")) + b"\x00"

    def serve() -> None:
        while not stop.is_set():
            try:
                query, peer = sock.recvfrom(512)
            except TimeoutError:
                continue
            qid = struct.unpack("!H", query[:2])[0]
            end = query.index(b"\x00", 12) + 5
            question = query[12:end]
            if question[:-4] != encode("_http._tcp.example"):
                sock.sendto(struct.pack("!HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question, peer)
                continue
            answers = b""
            for prio, weight, port, target in [(10, 5, 8080, "b.example"), (10, 5, 80, "a.example")]:
                rdata = struct.pack("!HHH", prio, weight, port) + encode(target)
                answers += b"\xc0\x0c" + struct.pack("!HHIH", 33, 1, 60, len(rdata)) + rdata
            sock.sendto(struct.pack("!HHHHHH", qid, 0x8180, 1, 2, 0, 0) + question + answers, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()
    stop.set()
    thread.join()
    sock.close()


def test_lookup_srv_against_a_loopback_dns_server(dns_server: tuple[str, int]) -> None:
    records = lookup_srv("http", "tcp", "example", nameservers=[dns_server], timeout=1)
    assert [(r.Target, r.Port, r.Priority, r.Weight) for r in records] == [
        ("b.example.", 8080, 10, 5),
        ("a.example.", 80, 10, 5),
    ]
    assert go_type_name(records[0]) == "*net.SRV"
    assert lookup_srv("http", "tcp", "missing", nameservers=[dns_server], timeout=1) == []


def test_lookup_srv_sorts_like_confd(dns_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    import muster.confd.dns as dnslookup

    monkeypatch.setattr(dnslookup, "resolv_conf_nameservers", lambda path="": [dns_server])
    records = call("lookupSRV", "http", "tcp", "example")
    assert [r.Target for r in records] == ["a.example.", "b.example."]  # by "target port prio weight"
    assert go_type_name(records) == "[]*net.SRV"


def test_float_formatting_of_yaml_numbers_matches_go(go_golden: dict[str, Any]) -> None:
    from muster.golang.strconv import format_float

    for case in go_golden["formatFloat"]:
        value = struct.unpack("<d", struct.pack("<Q", case["bits"]))[0]
        assert format_float(value, "f", -1) == case["out"], case
    assert math.isnan(float("nan")) and os.sep == "/"


def test_case_mapping_matches_go_for_every_rune(go_golden: dict[str, Any]) -> None:
    changed = {r: (u, lo) for r, u, lo in go_golden["caseMap"]}
    assert len(changed) > 2500
    mismatches = []
    for r in range(0x110000):
        if 0xD800 <= r <= 0xDFFF:
            continue
        ch = chr(r)
        want = changed.get(r, (r, r))
        got = (call("toUpper", ch), call("toLower", ch))
        if got != (chr(want[0]), chr(want[1])):
            mismatches.append((hex(r), got, want))
    assert mismatches == []
