"""Template resources: the ``[template]`` tables of ``conf.d/**/*.toml``, values read strictly.

confd drops unknown keys silently (so the quick-start's ``owner`` never worked) and reports a
missing ``[template]`` header as "empty src template". muster reads the same files but names
the file and the key in every error, ignores an unknown key as confd does but with a warning
naming the file and the key, accepts ``owner``/``group`` by name and per-resource command
timeouts, and reads ``mode = "644"`` as the octal the user meant (with a warning).
"""

from __future__ import annotations

import difflib
import fnmatch
import grp
import logging
import os
import pwd
import re
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from muster.errors import ConfigError
from muster.golang import path as gopath
from muster.golang.duration import parse_duration
from muster.log import kv

__all__ = [
    "ResourceSpec",
    "find_resource_files",
    "go_clean",
    "go_join",
    "load_resource",
    "load_resources",
    "require_dir",
]

logger = logging.getLogger(__name__)

KNOWN_KEYS = frozenset(
    {
        "src",
        "dest",
        "keys",
        "prefix",
        "mode",
        "uid",
        "gid",
        "owner",
        "group",
        "check_cmd",
        "reload_cmd",
        "check_timeout",
        "reload_timeout",
    }
)
# The maintained confd fork (abtreece/confd) names the timeouts this way; accept its files too.
ALIASES = {"check_cmd_timeout": "check_timeout", "reload_cmd_timeout": "reload_timeout"}


# Go's path functions under the names this module has always exported.
go_clean = gopath.clean
go_join = gopath.join


@dataclass(frozen=True, slots=True)
class ResourceSpec:
    """One template resource, resolved: absolute paths, effective prefix, numeric owner.

    ``prefix`` already has confd's rules applied (a global ``-prefix`` replaces it; a leading
    ``/`` is forced). ``mode``/``uid``/``gid`` are ``None`` when unset: mode then follows the
    existing dest (else 0644) and the owner is the daemon's effective uid/gid, as in confd.
    Timeouts are ``None`` to use the daemon's defaults.
    """

    name: str
    src: Path
    dest: Path
    keys: tuple[str, ...]
    prefix: str = "/"
    mode: int | None = None
    uid: int | None = None
    gid: int | None = None
    check_cmd: str = ""
    reload_cmd: str = ""
    check_timeout: float | None = None
    reload_timeout: float | None = None
    #: The backend keys to read: confd's ``util.AppendPrefix`` (``path.Join(prefix, key)``).
    #: Worked out once: the daemon asks several times per batch, a batch per change.
    prefixed_keys: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefixed_keys", tuple(go_join(self.prefix, key) for key in self.keys))


def find_resource_files(resource_dir: Path) -> list[Path]:
    """Every ``*toml`` file below ``resource_dir``, recursively, in confd's (lexical walk) order."""
    found: list[Path] = []
    for root, dirs, files in os.walk(resource_dir):
        dirs.sort()
        for name in sorted(files):
            if fnmatch.fnmatchcase(name, "*toml"):
                found.append(Path(root) / name)
    return found


def require_dir(resource_dir: Path) -> None:
    """``ConfigError`` unless ``resource_dir`` (``<confdir>/conf.d``) is a directory."""
    if not resource_dir.is_dir():
        raise ConfigError(f"cannot load template resources: {resource_dir} is not a directory")


def load_resources(
    resource_dir: Path, template_dir: Path, *, global_prefix: str = ""
) -> tuple[list[ResourceSpec], list[ConfigError]]:
    """Load every resource under ``resource_dir``; bad files are returned as errors, not raised.

    One bad file must not stop the others from being kept up to date. A missing
    ``resource_dir`` is a ``ConfigError`` raised at once.
    """
    require_dir(resource_dir)
    specs: list[ResourceSpec] = []
    errors: list[ConfigError] = []
    for path in find_resource_files(resource_dir):
        try:
            specs.append(
                load_resource(
                    path, template_dir, global_prefix=global_prefix, name=str(path.relative_to(resource_dir))
                )
            )
        except ConfigError as exc:
            errors.append(exc)
    return specs, errors


def load_resource(
    path: Path, template_dir: Path, *, global_prefix: str = "", name: str | None = None
) -> ResourceSpec:
    """Read one resource file; every problem is a ``ConfigError`` naming ``path`` and the key."""
    where = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read: {exc.strerror or exc}") from exc
    table = _template_table(data, where)
    get = _Getter(table, where)

    src = get.string("src", required=True)
    dest = get.string("dest", required=True)
    keys = get.string_list("keys")
    # confd: a global -prefix replaces the resource's prefix; a leading "/" is forced.
    prefix = global_prefix or get.string("prefix")
    if not prefix.startswith("/"):
        prefix = "/" + prefix
    uid = get.integer("uid")
    gid = get.integer("gid")
    owner = get.string("owner")
    group = get.string("group")
    if owner:
        uid = _lookup(owner, "owner", where, lambda n: pwd.getpwnam(n).pw_uid, uid)
    if group:
        gid = _lookup(group, "group", where, lambda n: grp.getgrnam(n).gr_gid, gid)
    return ResourceSpec(
        name=name or path.name,
        # confd: filepath.Join(templateDir, src), so even an absolute src lives under templates/.
        src=Path(os.path.normpath(os.path.join(template_dir, src.lstrip("/")))),
        dest=Path(dest),
        keys=keys,
        prefix=prefix,
        mode=_mode(table.get("mode"), where),
        uid=uid,
        gid=gid,
        check_cmd=get.string("check_cmd"),
        reload_cmd=get.string("reload_cmd"),
        check_timeout=get.duration("check_timeout"),
        reload_timeout=get.duration("reload_timeout"),
    )


def _template_table(data: dict[str, Any], where: str) -> dict[str, Any]:
    # BurntSushi/toml matches table and key names case-insensitively; so do we.
    tables = {k.lower(): v for k, v in data.items()}
    others = sorted(k for k in data if k.lower() != "template")
    if "template" not in tables or not isinstance(tables["template"], dict):
        hint = f" (found {', '.join(map(repr, others))})" if others else ""
        raise ConfigError(f"{where}: missing [template] table{hint}")
    # confd decodes the file into a struct with BurntSushi/toml and never looks at the keys it
    # left undecoded (real resources carry ``interval = 1``, or tables of other tools): a file
    # confd renders must render here too. Ignored, but said, since a typo lands here as well.
    for key in others:
        _warn_unknown(where, key, "", ["template"])
    table = {k.lower(): v for k, v in tables["template"].items()}
    for alias, key in ALIASES.items():
        if alias in table:
            if key in table:
                raise ConfigError(f"{where}: [template] sets both {key} and its alias {alias}")
            table[key] = table.pop(alias)
    for key in sorted(set(table) - KNOWN_KEYS):
        _warn_unknown(where, key, "template", KNOWN_KEYS | ALIASES.keys())
        del table[key]
    return table


def _warn_unknown(where: str, key: str, table: str, known: Iterable[str]) -> None:
    close = difflib.get_close_matches(key.lower(), sorted(known), n=1)
    fields = {"table": table} if table else {}
    if close:
        fields["did_you_mean"] = close[0]
    _warn_once(kv("resource.key.unknown", file=where, key=key, **fields, action="ignored, as confd does"))


class _Getter:
    def __init__(self, table: dict[str, Any], where: str) -> None:
        self.table = table
        self.where = where

    def _bad(self, key: str, expected: str) -> ConfigError:
        return ConfigError(f"{self.where}: [template] {key} must be {expected}, not {self.table[key]!r}")

    def string(self, key: str, *, required: bool = False) -> str:
        value = self.table.get(key, "")
        if not isinstance(value, str):
            raise self._bad(key, "a string")
        if required and not value:
            raise ConfigError(f"{self.where}: [template] {key} is required")
        return value

    def string_list(self, key: str) -> tuple[str, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self._bad(key, "an array of strings")
        return tuple(value)

    def integer(self, key: str) -> int | None:
        value = self.table.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise self._bad(key, "a non-negative integer")
        return value

    def duration(self, key: str) -> float | None:
        value = self.table.get(key)
        if value is None:
            return None
        try:
            seconds = parse_duration(value) if isinstance(value, str) else float(value)
        except (TypeError, ValueError):
            raise self._bad(key, 'a duration such as "30s" or a number of seconds') from None
        if isinstance(value, bool) or seconds <= 0:
            raise self._bad(key, "a positive duration")
        return seconds


_OCTAL = re.compile(r"[0-7]{1,4}")


def _mode(value: Any, where: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value
    elif isinstance(value, str):
        text = value.strip()
        if _OCTAL.fullmatch(text) and not text.startswith("0"):
            # confd's ParseUint(mode, 0, 32) reads "644" as decimal 644 (0o1204): nobody means that.
            mode = int(text, 8)
            _warn_once(
                kv(
                    "resource.mode.octal",
                    file=where,
                    mode=text,
                    means=f"0{text}",
                    note="confd would read this as decimal",
                )
            )
        else:
            try:
                mode = (
                    int(text, 0)
                    if not (len(text) > 1 and text[0] == "0" and text[1].isdigit())
                    else int(text, 8)
                )
            except ValueError:
                raise ConfigError(
                    f'{where}: [template] mode {value!r} is not an octal file mode such as "0644"'
                ) from None
    else:
        raise ConfigError(f'{where}: [template] mode must be a string such as "0644", not {value!r}')
    if not 0 <= mode <= 0o7777:
        raise ConfigError(f"{where}: [template] mode {value!r} is out of range (0000-7777)")
    return mode


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    # conf.d is re-read every interval or resync: say each thing once, not every few minutes.
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def _lookup(name: str, key: str, where: str, resolve: Any, explicit: int | None) -> int | None:
    try:
        number = int(resolve(name))
    except KeyError:
        # confd ignored owner entirely (the quick-start's owner = "nginx" never did anything), so a
        # name that does not exist here must not break a drop-in upgrade: say so loudly instead.
        _warn_once(
            kv("resource.owner.unknown", file=where, key=key, name=name, action="ignored, as confd does")
        )
        return explicit
    if explicit is not None and explicit != number:
        idkey = "uid" if key == "owner" else "gid"
        raise ConfigError(f"{where}: [template] {key} {name!r} ({number}) contradicts {idkey} = {explicit}")
    return number
