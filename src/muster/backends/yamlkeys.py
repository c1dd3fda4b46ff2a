"""YAML (and JSON) key files flattened to ``/a/b`` keys exactly as confd's file backend does.

confd decodes with ``gopkg.in/yaml.v2`` into ``map[interface{}]interface{}`` and walks
it (``nodeWalk``): mapping keys are joined with ``path.Join`` (so they are cleaned),
list items are keyed by index, and only string, int, bool and float64 leaves are kept,
formatted as Go formats them. That makes the YAML 1.1 resolution of yaml.v2 part of
the contract: plain ``yes``/``on``/``y`` are booleans (``true``), ``0x10`` and ``010``
are ints (``16``, ``8``), ``1e3`` is a float (``1000``), ``.inf`` is ``+Inf``, while
``1:30`` and dates stay strings. ``null`` and integers in (int64, uint64] are dropped.
A mapping key that does not resolve to a string makes confd panic; here it is an
error naming the file and the key's path.

Speed: a key file of thousands of services is read with libyaml's event parser (the
C library yaml.v2 was ported from) and built into a tree in one loop, with plain
scalars resolved by yaml.v2's rules. A document that uses anchors, aliases, merge
keys, explicit tags or complex keys is read again by PyYAML's constructor path,
which implements those; both give the same tree (tests/unit/confd/test_yaml_golden.py
runs every case through both).
"""

from __future__ import annotations

import io
import json
import math
import re
from typing import Any, Final

import yaml

from muster.confd.store import path_clean
from muster.golang import strconv
from muster.golang.strconv import format_float

__all__ = ["KeyFileError", "flatten", "load_json_keys", "load_yaml_keys", "resolve_plain", "yaml_tree"]

_INT64_MAX: Final = (1 << 63) - 1
_UINT64_MAX: Final = (1 << 64) - 1
_MAX_DEPTH: Final = 1000


class KeyFileError(ValueError):
    """A key file that confd could not load (or would crash on)."""


class _Dropped:
    """A yaml.v2 value confd's ``nodeWalk`` ignores (uint64)."""


_DROPPED: Final = _Dropped()

_BOOLS: Final = {
    **dict.fromkeys(("y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON"), True),
    **dict.fromkeys(("n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF"), False),
}
_SPECIAL: Final[dict[str, Any]] = {
    **_BOOLS,
    **dict.fromkeys(("", "~", "null", "Null", "NULL"), None),
    **dict.fromkeys((".nan", ".NaN", ".NAN"), math.nan),
    **dict.fromkeys((".inf", ".Inf", ".INF", "+.inf", "+.Inf", "+.INF"), math.inf),
    **dict.fromkeys(("-.inf", "-.Inf", "-.INF"), -math.inf),
}
_YAML_FLOAT: Final = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?")
# strconv.ParseFloat syntax for a string that starts with "." (decimal only); Go
# accepts single underscores between digits (underscoreOK).
_GO_DOT_FLOAT: Final = re.compile(r"\.[0-9](_?[0-9])*([eE][-+]?[0-9](_?[0-9])*)?")


def _go_parse_int(text: str) -> int | None:
    """``strconv.ParseInt(text, 0, 64)`` then ``ParseUint``: the value or None."""
    for parse in (strconv.parse_int, strconv.parse_uint):
        try:
            return parse(text)  # a uint64 above int64: the caller drops it, as confd does
        except strconv.NumError:
            continue
    return None


def _go_parse_float(text: str) -> float | None:
    value = float(text)
    return None if math.isinf(value) else value  # ParseFloat reports ErrRange


def resolve_plain(value: str) -> Any:
    """yaml.v2's ``resolve`` of a plain (unquoted) scalar: None, bool, int, float or str.

    Integers beyond int64 come back as ``_DROPPED`` (yaml.v2 gives a uint64).
    """
    if value in _SPECIAL:
        return _SPECIAL[value]
    hint = value[:1]
    if hint == ".":
        if _GO_DOT_FLOAT.fullmatch(value):
            as_float = _go_parse_float(value)
            if as_float is not None:
                return as_float
        return value
    if hint and (hint in "+-" or hint.isdigit() and hint.isascii()):
        plain = value.replace("_", "")
        as_int = _go_parse_int(plain)
        if as_int is not None:
            return as_int if as_int <= _INT64_MAX else _DROPPED
        if _YAML_FLOAT.fullmatch(plain):
            as_float = _go_parse_float(plain)
            if as_float is not None:
                return as_float
        for sign, digits in (
            ("", plain[2:] if plain.startswith("0b") else None),
            ("-", plain[3:] if plain.startswith("-0b") else None),
        ):
            if digits and re.fullmatch(r"[01]+", digits):
                as_bin = int(sign + digits, 2)
                if as_bin <= _INT64_MAX:
                    return as_bin
                return _DROPPED
    return value


class _GoYamlLoader(yaml.SafeLoader):
    """SafeLoader whose plain scalars are resolved by yaml.v2's rules, not PyYAML's.

    Tags decode as yaml.v2 decodes them into ``interface{}``: a ``!!set`` is a
    mapping whose values are null, ``!!timestamp`` keeps its text, and unknown tags
    are ignored.
    """

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        if kind is yaml.ScalarNode and implicit[0] and value != "<<":
            return "!go-plain"
        return super().resolve(kind, value, implicit)  # type: ignore[no-untyped-call]


def _construct_plain(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    return resolve_plain(str(loader.construct_scalar(node)))


def _construct_set(loader: yaml.SafeLoader, node: yaml.MappingNode) -> Any:
    return loader.construct_mapping(node)


def _construct_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> Any:
    # yaml.v2 hands an explicit !!timestamp to interface{} as the original text.
    return str(loader.construct_scalar(node))


def _construct_unknown(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    # yaml.v2 ignores tags it does not know and decodes the node by its kind.
    if isinstance(node, yaml.ScalarNode):
        return str(loader.construct_scalar(node))
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return None


_GoYamlLoader.add_constructor("!go-plain", _construct_plain)
_GoYamlLoader.add_constructor("tag:yaml.org,2002:set", _construct_set)
_GoYamlLoader.add_constructor("tag:yaml.org,2002:timestamp", _construct_text)
_GoYamlLoader.add_constructor(None, _construct_unknown)


def _go_scalar(value: Any) -> str | None:
    """How nodeWalk stores a leaf, or None when it skips it."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -_INT64_MAX - 1 <= value <= _INT64_MAX else None
    if isinstance(value, float):
        return format_float(value, "f", -1)
    if isinstance(value, bytes):  # !!binary decodes to a Go string
        return value.decode("utf-8", "surrogateescape")
    return None


def _path_join(base: str, elem: str) -> str:
    if elem and "/" not in elem and elem != "." and elem != ".." and base:
        # Already clean (base always is): what path.Join would return, without the scan.
        return base + elem if base == "/" else base + "/" + elem
    parts = [p for p in (base, elem) if p]
    return path_clean("/".join(parts)) if parts else ""


_YAML_KINDS: Final = ((list, "!!seq"), (bool, "!!bool"), (int, "!!int"), (float, "!!float"))


def flatten(tree: Any, source: str) -> dict[str, str]:
    """nodeWalk over a decoded document: ``{"/a/b": "value", "/list/0": ...}``."""
    out: dict[str, str] = {}
    if tree is None:
        return out
    if not isinstance(tree, dict):
        kind = next((k for t, k in _YAML_KINDS if isinstance(tree, t)), "!!str")
        raise KeyFileError(f"{source}: cannot unmarshal {kind} into map[interface {{}}]interface {{}}")
    _walk(tree, "/", out, source, 0)
    return out


def _walk(node: Any, key: str, out: dict[str, str], source: str, depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise KeyFileError(f"{source}: nesting deeper than {_MAX_DEPTH} levels at {key}")
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, _path_join(key, str(i)), out, source, depth + 1)
    elif isinstance(node, dict):
        for k, v in node.items():
            if not isinstance(k, str):
                shown = "<nil>" if k is None else _go_scalar(k) or repr(k)
                raise KeyFileError(
                    f"{source}: mapping key {shown} under {key} is not a string (confd requires string keys)"
                )
            _walk(v, _path_join(key, k), out, source, depth + 1)
    else:
        text = _go_scalar(node)
        if text is not None:
            out[key] = text


class _NeedsConstructor(Exception):
    """The document uses a feature the event loop leaves to PyYAML's constructor."""


_LIBYAML: Final = bool(getattr(yaml, "__with_libyaml__", False))


class _NamedBytes(io.BytesIO):
    # libyaml's parser takes the stream's ``name`` for the marks in its errors.
    def __init__(self, data: bytes, name: str) -> None:
        super().__init__(data)
        self.name = name


def _events_tree(data: bytes, source: str) -> Any:
    """The first document's tree from libyaml events, or ``_NeedsConstructor``."""
    loader = yaml.CBaseLoader(_NamedBytes(data, source))
    get: Any = loader.get_event  # events typed loosely: attributes read by kind below
    scalar, map_start, seq_start = yaml.ScalarEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent
    ends = (yaml.MappingEndEvent, yaml.SequenceEndEvent)
    get()  # StreamStart
    event = get()
    if type(event) is yaml.StreamEndEvent:
        return None
    # Each open collection: [container, key read, key]; a mapping alternates key and value.
    stack: list[list[Any]] = []
    root: Any = None
    while True:
        event = get()
        kind = type(event)
        if kind is scalar:
            if event.anchor is not None or event.tag is not None:
                raise _NeedsConstructor
            text = event.value
            if event.implicit[0]:
                if text == "<<":
                    raise _NeedsConstructor  # a merge key
                value = resolve_plain(text)
            else:
                value = text
        elif kind is map_start or kind is seq_start:
            if event.anchor is not None or event.tag is not None:
                raise _NeedsConstructor
            if stack and type(stack[-1][0]) is dict and not stack[-1][1]:
                raise _NeedsConstructor  # a complex (collection) key
            value = {} if kind is map_start else []
            if stack:
                _add(stack[-1], value)
            else:
                root = value
            stack.append([value, False, None])
            continue
        elif kind in ends:
            stack.pop()
            continue
        elif kind is yaml.DocumentEndEvent:
            return root
        else:  # an alias
            raise _NeedsConstructor
        if stack:
            _add(stack[-1], value)
        else:
            root = value


def _add(top: list[Any], value: Any) -> None:
    container, has_key, key = top
    if type(container) is list:
        container.append(value)
    elif has_key:
        container[key] = value  # a later duplicate wins, as in PyYAML's construct_mapping
        top[1] = False
    else:
        top[1], top[2] = True, value


def _constructed_tree(data: bytes | str, source: str) -> Any:
    loader = _GoYamlLoader(data)
    loader.name = source  # marks in error messages name the file
    try:
        return loader.get_data() if loader.check_data() else None  # type: ignore[no-untyped-call]
    finally:
        loader.dispose()


def yaml_tree(data: bytes | str, source: str, *, fast: bool = True) -> Any:
    """The first document decoded as yaml.v2 decodes into ``interface{}``.

    ``fast=False`` skips the libyaml event loop (the tests compare the two paths).
    """
    try:
        if fast and _LIBYAML:
            raw = data.encode("utf-8") if isinstance(data, str) else data
            try:
                return _events_tree(raw, source)
            except _NeedsConstructor:
                pass
        return _constructed_tree(data, source)
    except yaml.YAMLError as exc:
        raise KeyFileError(f"{source}: {exc}") from exc
    except RecursionError:
        raise KeyFileError(f"{source}: document nests too deeply") from None


def load_yaml_keys(data: bytes | str, source: str, *, fast: bool = True) -> dict[str, str]:
    """Flatten a YAML key file's first document; ``KeyFileError`` names ``source``."""
    return flatten(yaml_tree(data, source, fast=fast), source)


def load_json_keys(data: bytes | str, source: str) -> dict[str, str]:
    """Flatten a JSON key file as if it were YAML (numbers resolve as yaml.v2 would)."""
    try:
        tree = json.loads(
            data, parse_int=resolve_plain, parse_float=resolve_plain, parse_constant=resolve_plain
        )
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{source}: {exc}") from exc
    except RecursionError:
        raise KeyFileError(f"{source}: document nests too deeply") from None
    return flatten(tree, source)
