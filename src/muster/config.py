"""The daemon's configuration: one frozen dataclass merged from defaults, confd.toml, env and flags.

Precedence is the one confd documents (its code gets it wrong, see confd.md b.1):

    defaults  <  confd.toml (``-config-file``)  <  ``CONFD_*`` environment  <  flags

Every option is described once in ``OPTIONS``; the flag parser (``muster.cli.confd``), the
TOML reader and the environment reader all work from that table, so a new option is one line.
Each layer converts its raw values and names its source in any ``ConfigError``; ``load()``
validates the merged result once.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from muster.backends import REGISTRY
from muster.confd.dns import lookup_srv
from muster.dataplane.mode import DataPlaneMode
from muster.dataplane.nginx.admin import admin_address_problem
from muster.errors import ConfigError
from muster.golang import strconv
from muster.golang.duration import parse_duration
from muster.log import LEVELS, kv
from muster.registry.guard import GuardSettings
from muster.status import is_loopback, parse_address

__all__ = [
    "Config",
    "DEFAULT_CONFIG_FILE",
    "Layer",
    "OPTIONS",
    "Option",
    "env_layer",
    "guard_settings",
    "load",
    "merge",
    "panic_grace_for",
    "parse_duration",
    "read_password_file",
    "resolve_srv_nodes",
    "toml_layer",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_FILE = "/etc/confd/confd.toml"

DEFAULT_NODES = {"etcdv3": ("http://127.0.0.1:2379",), "etcd": ("http://127.0.0.1:2379",)}

Kind = Literal["str", "bool", "int", "duration", "list"]


@dataclass(frozen=True, slots=True)
class Option:
    """One setting: its Config field, confd flag name, confd.toml key and value kind.

    ``field`` is ``None`` for confd options muster accepts for compatibility but does not use
    (Vault, DynamoDB and Redis settings); setting one only logs a warning.
    """

    field: str | None
    flag: str | None
    toml: str | None
    kind: Kind
    help: str

    @property
    def env(self) -> str:
        """``CONFD_<KEY>``: confd's own names (``CONFD_CLIENT_CAKEYS``) for its TOML keys."""
        name = self.toml or self.flag or ""
        return "CONFD_" + name.upper().replace("-", "_")

    @property
    def name(self) -> str:
        return self.field or self.toml or self.flag or "?"


def _o(field: str | None, flag: str | None, toml: str | None, kind: Kind, help: str) -> Option:
    return Option(field, flag, toml, kind, help)


OPTIONS: tuple[Option, ...] = (
    _o("backend", "backend", "backend", "str", "backend to use: etcdv3, etcd (v2 API), file, env"),
    _o("nodes", "node", "nodes", "list", "list of backend nodes"),
    _o("prefix", "prefix", "prefix", "str", "key path prefix"),
    _o("confdir", "confdir", "confdir", "str", "confd conf directory"),
    _o("config_file", "config-file", None, "str", "the confd config file"),
    _o("interval", "interval", "interval", "int", "backend polling interval"),
    _o("watch", "watch", "watch", "bool", "enable watch support"),
    _o("onetime", "onetime", None, "bool", "run once and exit"),
    _o("noop", "noop", "noop", "bool", "only show pending changes"),
    _o("sync_only", "sync-only", "sync-only", "bool", "sync without check_cmd and reload_cmd"),
    _o("keep_stage_file", "keep-stage-file", None, "bool", "keep staged files"),
    _o("log_level", "log-level", "log-level", "str", "level which confd should log messages"),
    _o("srv_domain", "srv-domain", "srv_domain", "str", "the name of the resource record"),
    _o("srv_record", "srv-record", "srv_record", "str", "the SRV record to search for backends nodes"),
    _o("scheme", "scheme", "scheme", "str", "the backend URI scheme for nodes retrieved from DNS SRV"),
    _o("client_cert", "client-cert", "client_cert", "str", "the client cert"),
    _o("client_key", "client-key", "client_key", "str", "the client key"),
    _o("client_cakeys", "client-ca-keys", "client_cakeys", "str", "client ca keys"),
    _o(
        "client_insecure",
        "client-insecure",
        "client_insecure",
        "bool",
        "Allow connections to SSL sites without certs",
    ),
    _o("basic_auth", "basic-auth", "basic_auth", "bool", "Use Basic Auth to authenticate"),
    _o("username", "username", "username", "str", "the username to authenticate as"),
    _o("password", "password", "password", "str", "the password to authenticate with"),
    _o(
        "password_file",
        "password-file",
        "password_file",
        "str",
        "read the password from this file (not shown by ps, unlike -password)",
    ),
    _o("files", "file", "file", "list", "the YAML file to watch for changes (only used with -backend=file)"),
    _o("filter", "filter", "filter", "str", "files filter (only used with -backend=file)"),
    # muster's own additions (confd has no equivalent).
    _o(
        "debounce_window",
        "debounce-window",
        "debounce_window",
        "duration",
        "once a burst of changes is seen, fold it until the changes pause this long",
    ),
    _o(
        "reload_interval",
        "reload-interval",
        "reload_interval",
        "duration",
        "run a resource's reload_cmd at most this often (resources without one never wait)",
    ),
    _o(
        "debounce_max",
        "debounce-max",
        "debounce_max",
        "duration",
        "never delay a pending change longer than this",
    ),
    _o(
        "resync_interval",
        "resync-interval",
        "resync_interval",
        "duration",
        "full re-read in watch mode at least this often (0 disables)",
    ),
    _o(
        "panic_grace",
        "panic-grace",
        "panic_grace",
        "duration",
        "keep routing to servers removed en masse for this long (0 disables the panic guard)",
    ),
    _o(
        "panic_window",
        "panic-window",
        "panic_window",
        "duration",
        "removals within this long count together for the panic guard (leases expiring apart)",
    ),
    _o(
        "panic_grace_for",
        "panic-grace-for",
        "panic_grace_for",
        "list",
        "per-service panic grace, NAME=DURATION (repeatable; 0 disables the guard for NAME)",
    ),
    _o(
        "panic_max_server_loss",
        "panic-max-server-loss",
        "panic_max_server_loss",
        "int",
        "hold a removal of more than this percentage of one service's servers",
    ),
    _o(
        "panic_max_service_loss",
        "panic-max-service-loss",
        "panic_max_service_loss",
        "int",
        "hold every removal of a change in which more than this percentage of services lose servers",
    ),
    _o("check_timeout", "check-timeout", "check_timeout", "duration", "default check_cmd timeout"),
    _o("reload_timeout", "reload-timeout", "reload_timeout", "duration", "default reload_cmd timeout"),
    _o(
        "dataplane",
        "dataplane",
        "dataplane",
        "str",
        "how server changes reach the proxy: lua (nginx, pushed, no reload), haproxy (runtime "
        "API), reload, or auto (lua when -dataplane-admin is set and the Lua module is installed)",
    ),
    _o("dataplane_admin", "dataplane-admin", "dataplane_admin", "str", "nginx admin endpoint (unix:PATH)"),
    _o("dataplane_root", "dataplane-root", "dataplane_root", "str", "registry root of the services"),
    _o(
        "status_addr",
        "status-addr",
        "status_addr",
        "str",
        "serve /healthz, /readyz, /metrics and /status on HOST:PORT (watch and interval modes)",
    ),
    _o(
        "status_token_file",
        "status-token-file",
        "status_token_file",
        "str",
        "a file holding the token the status server requires (needed off loopback)",
    ),
    _o("separator", "separator", "separator", "str", "the separator replacing / in Redis key names"),
    # Accepted for compatibility with confd's other backends; muster has no use for them.
    _o(None, "auth-type", "auth_type", "str", "Vault auth backend type (unused by muster)"),
    _o(None, "auth-token", "auth_token", "str", "Auth bearer token (unused by muster)"),
    _o(None, "app-id", "app_id", "str", "Vault app-id (unused by muster)"),
    _o(None, "user-id", "user_id", "str", "Vault user-id (unused by muster)"),
    _o(None, "role-id", "role_id", "str", "Vault role-id (unused by muster)"),
    _o(None, "secret-id", "secret_id", "str", "Vault secret-id (unused by muster)"),
    _o(None, "path", "path", "str", "Vault auth mount path (unused by muster)"),
    _o(None, "table", "table", "str", "DynamoDB table (unused by muster)"),
    _o(None, None, "secret_keyring", "str", "confd <= 0.16 PGP keyring (unused by muster)"),
)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything the daemon needs, validated; build it with ``load()``."""

    backend: str = "etcdv3"
    nodes: tuple[str, ...] = ()
    prefix: str = ""
    confdir: str = "/etc/confd"
    config_file: str = DEFAULT_CONFIG_FILE
    interval: int = 600
    watch: bool = False
    onetime: bool = False
    noop: bool = False
    sync_only: bool = False
    keep_stage_file: bool = False
    log_level: str = ""
    srv_domain: str = ""
    srv_record: str = ""
    scheme: str = "http"
    client_cert: str = ""
    client_key: str = ""
    client_cakeys: str = ""
    client_insecure: bool = False
    basic_auth: bool = False
    username: str = ""
    password: str = field(default="", repr=False)
    #: Where ``password`` was read from, when it came from a file.
    password_file: str = ""
    files: tuple[str, ...] = ()
    filter: str = "*"
    separator: str = ""
    debounce_window: float = 0.2
    debounce_max: float = 2.0
    reload_interval: float = 0.1
    resync_interval: float = 300.0
    check_timeout: float = 30.0
    reload_timeout: float = 60.0
    panic_grace: float = 300.0
    panic_grace_for: tuple[str, ...] = ()
    panic_window: float = 30.0
    panic_max_server_loss: int = 50
    panic_max_service_loss: int = 50
    dataplane: str = "auto"
    dataplane_admin: str = ""
    dataplane_root: str = "/services"
    status_addr: str = ""
    status_token_file: str = ""

    @property
    def resource_dir(self) -> Path:
        return Path(self.confdir) / "conf.d"

    @property
    def template_dir(self) -> Path:
        return Path(self.confdir) / "templates"


@dataclass(frozen=True, slots=True)
class Layer:
    """Converted values from one source; ``source`` names it in errors and logs."""

    source: str
    values: Mapping[str, Any]


# -- value conversion -------------------------------------------------------------------------


def _flag_error(err: strconv.NumError) -> ValueError:
    # Go's flag package reports strconv's errors as its own errParse / errRange.
    return ValueError("value out of range" if str(err) == "value out of range" else "parse error")


def parse_go_bool(text: str) -> bool:
    """A bool flag's value as Go's flag package reads it (``strconv.ParseBool``)."""
    try:
        return strconv.parse_bool(text)
    except strconv.NumError as err:
        raise _flag_error(err) from None


def parse_go_int(text: str) -> int:
    """An int flag's value as Go's flag package reads it (``strconv.ParseInt(s, 0, 64)``)."""
    try:
        return strconv.parse_int(text)
    except strconv.NumError as err:
        raise _flag_error(err) from None


def convert(option: Option, raw: Any) -> Any:
    """Turn a string (flag, env) or TOML value into the option's Python value; ValueError if bad."""
    kind = option.kind
    if kind == "list":
        if isinstance(raw, str):
            return tuple(part.strip() for part in raw.split(",") if part.strip())
        if isinstance(raw, list | tuple) and all(isinstance(x, str) for x in raw):
            return tuple(raw)
        raise ValueError("expected a list of strings")
    if kind == "bool":
        if isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            return parse_go_bool(raw)
        raise ValueError("expected true or false")
    if kind == "int":
        if isinstance(raw, int) and not isinstance(raw, bool):
            return raw
        if isinstance(raw, str):
            return parse_go_int(raw)
        raise ValueError("expected an integer")
    if kind == "duration":
        if isinstance(raw, int | float) and not isinstance(raw, bool):
            return float(raw)
        if isinstance(raw, str):
            return parse_duration(raw)
        raise ValueError("expected a duration such as 250ms or a number of seconds")
    if isinstance(raw, str):
        return raw
    raise ValueError("expected a string")


# -- layers ------------------------------------------------------------------------------------

_BY_TOML = {o.toml: o for o in OPTIONS if o.toml}


def toml_layer(path: str | os.PathLike[str], *, required: bool = False) -> Layer | None:
    """Read a confd.toml; ``None`` if it is missing and not ``required`` (confd skips it silently)."""
    source = str(path)
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"config file {source} does not exist") from None
        logger.debug(kv("config.file.missing", path=source))
        return None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}") from exc
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror or exc}") from exc
    values: dict[str, Any] = {}
    for key, raw in data.items():
        option = _BY_TOML.get(key)
        if option is None:
            known = ", ".join(sorted(_BY_TOML))
            raise ConfigError(f"{source}: unknown key {key!r} (known keys: {known})")
        try:
            values[option.name] = convert(option, raw)
        except ValueError as exc:
            shown = "(hidden)" if option.name == "password" else repr(raw)
            raise ConfigError(f"{source}: invalid value {shown} for {key!r}: {exc}") from exc
    return Layer(source, values)


def env_layer(environ: Mapping[str, str]) -> Layer:
    """``CONFD_*`` variables; an empty variable counts as unset."""
    values: dict[str, Any] = {}
    for option in OPTIONS:
        if option.flag == "version":
            continue
        raw = environ.get(option.env, "")
        if raw == "":
            continue
        try:
            values[option.name] = convert(option, raw)
        except ValueError as exc:
            raise ConfigError(f"environment variable {option.env}: invalid value {raw!r}: {exc}") from exc
    return Layer("environment", values)


def merge(layers: Sequence[Layer], base: Config | None = None) -> Config:
    """Apply ``layers`` in order over ``base`` (defaults); later layers win, unvalidated."""
    fields = {f.name for f in dataclasses.fields(Config)}
    updates: dict[str, Any] = {}
    for layer in layers:
        for name, value in layer.values.items():
            if name in fields:
                updates[name] = value
            else:
                logger.warning(
                    kv(
                        "config.option.ignored",
                        option=name,
                        source=layer.source,
                        reason="only used by backends muster does not ship",
                    )
                )
    return dataclasses.replace(base or Config(), **updates)


def load(flags: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the validated Config: defaults, then confd.toml, then ``CONFD_*``, then ``flags``.

    ``flags`` maps option names (``Option.name``) to converted values, and holds only the
    flags actually given on the command line. The config file is the one named by the flags,
    else by ``CONFD_CONFIG_FILE``, else ``/etc/confd/confd.toml``; it is silently skipped
    when missing, as confd does.
    """
    flags = dict(flags or {})
    environ = os.environ if environ is None else environ
    env = env_layer(environ)
    flag_layer = Layer("flags", flags)
    config_file = flags.get("config_file") or env.values.get("config_file") or DEFAULT_CONFIG_FILE
    layers = [layer for layer in (toml_layer(config_file), env, flag_layer) if layer is not None]
    config = merge(layers, Config(config_file=config_file))
    config = _resolve_password(config, layers)
    if not config.nodes and config.backend in DEFAULT_NODES:
        peers = environ.get("ETCDCTL_PEERS", "")
        nodes = tuple(p.strip() for p in peers.split(",") if p.strip()) if peers else ()
        config = dataclasses.replace(config, nodes=nodes or DEFAULT_NODES[config.backend])
    sources = {name: layer.source for layer in layers for name in layer.values}
    validate(config, sources)
    return config


def _resolve_password(config: Config, layers: Sequence[Layer]) -> Config:
    """The password of the highest layer giving one, as text or as a file; both in one layer is an error."""
    for layer in reversed(layers):
        given = [name for name in ("password", "password_file") if name in layer.values]
        if len(given) == 2:
            raise ConfigError(f"give password or password-file, not both (from {layer.source})")
        if given == ["password_file"]:
            path = layer.values["password_file"]
            return dataclasses.replace(config, password=read_password_file(path, layer.source))
        if given == ["password"]:
            return dataclasses.replace(config, password_file="")
    return config


def read_password_file(path: str, source: str = "") -> str:
    """The password held in ``path``: its text without trailing line breaks.

    ``ConfigError`` (naming the file and ``source``, never the content) if it cannot be
    read, is not UTF-8 or is empty. A file every user may read is used, with a warning.
    """
    where = f" (from {source})" if source else ""
    try:
        with open(path, "rb") as fh:
            mode = os.fstat(fh.fileno()).st_mode
            raw = fh.read()
    except OSError as exc:
        raise ConfigError(f"password-file {path}: cannot read: {exc.strerror or exc}{where}") from exc
    try:
        password = raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise ConfigError(f"password-file {path}: not UTF-8 text{where}") from None
    if not password:
        raise ConfigError(f"password-file {path} is empty{where}")
    if mode & 0o004:
        logger.warning(
            kv("config.password_file.readable", path=path, mode=oct(mode & 0o777), note="chmod 600 it")
        )
    return password


def validate(config: Config, sources: Mapping[str, str] | None = None) -> None:
    """Raise ``ConfigError`` naming the option and where it came from if ``config`` is unusable."""
    sources = sources or {}
    for check in _CHECKS:
        for name, message in check(config):
            where = sources.get(name, "defaults")
            raise ConfigError(f"{message} (from {where})")


#: A problem with the config: the option (a ``Config`` field) and what is wrong with it.
_Problem = tuple[str, str]


def _backend_problems(config: Config) -> Iterator[_Problem]:
    if config.backend not in REGISTRY:
        # confd's other backends (consul, vault, redis, ...) end up here, named.
        supported = ", ".join(sorted(REGISTRY))
        yield "backend", f"unsupported backend {config.backend!r}; muster supports {supported}"
    if config.backend == "file" and not config.files:
        yield "files", "-backend file needs at least one -file"
    if bool(config.client_cert) != bool(config.client_key):
        yield (
            "client_cert" if config.client_cert else "client_key",
            "client-cert and client-key must be given together",
        )
    if config.scheme not in ("http", "https"):
        yield "scheme", f"scheme must be http or https, not {config.scheme!r}"


def _timing_problems(config: Config) -> Iterator[_Problem]:
    if config.interval <= 0:
        yield "interval", f"interval must be a positive number of seconds, not {config.interval}"
    for name in (
        "debounce_window",
        "debounce_max",
        "reload_interval",
        "resync_interval",
        "check_timeout",
        "reload_timeout",
    ):
        if getattr(config, name) < 0:
            yield name, f"{name.replace('_', '-')} must not be negative"
    for name in ("check_timeout", "reload_timeout"):
        if getattr(config, name) == 0:
            yield name, f"{name.replace('_', '-')} must be positive"
    if config.debounce_max < config.debounce_window:
        yield "debounce_max", "debounce-max must be at least debounce-window"


def _panic_problems(config: Config) -> Iterator[_Problem]:
    if config.panic_grace < 0:
        yield "panic_grace", "panic-grace must not be negative"
    if config.panic_window < 0:
        yield "panic_window", "panic-window must not be negative"
    for name in ("panic_max_server_loss", "panic_max_service_loss"):
        if not 0 <= getattr(config, name) <= 100:
            yield name, f"{name.replace('_', '-')} must be a percentage, 0-100"
    try:
        panic_grace_for(config.panic_grace_for)
    except ValueError as exc:
        yield "panic_grace_for", str(exc)


def _dataplane_problems(config: Config) -> Iterator[_Problem]:
    try:
        mode = DataPlaneMode.parse(config.dataplane)
    except ValueError as exc:
        yield "dataplane", str(exc)
        return
    if mode in (DataPlaneMode.LUA, DataPlaneMode.HAPROXY) and not config.dataplane_admin:
        yield "dataplane", f"-dataplane {config.dataplane} needs -dataplane-admin (unix:PATH of its socket)"
    if config.dataplane_admin and mode != DataPlaneMode.HAPROXY:  # haproxy's: a socket path
        problem = admin_address_problem(config.dataplane_admin)
        if problem is not None:
            yield "dataplane_admin", f"dataplane-admin: {problem}"


def _reporting_problems(config: Config) -> Iterator[_Problem]:
    if config.log_level.lower() not in LEVELS:
        yield "log_level", f"unknown log level {config.log_level!r}; use debug, info, warning or error"
    if config.status_addr:
        try:
            host, _ = parse_address(config.status_addr)
        except ConfigError as exc:
            yield "status_addr", str(exc)
        else:
            if not is_loopback(host) and not config.status_token_file:
                yield (
                    "status_addr",
                    f"status-addr: {host} is not a loopback address: the dashboard and /status "
                    "would be open to the network; give -status-token-file too",
                )


# The first problem found is the one reported, so the backend (the usual typo) goes first.
_CHECKS: tuple[Callable[[Config], Iterator[_Problem]], ...] = (
    _backend_problems,
    _timing_problems,
    _panic_problems,
    _dataplane_problems,
    _reporting_problems,
)


def resolve_srv_nodes(config: Config, lookup: Any = None) -> Config:
    """Replace ``nodes`` from DNS SRV records when ``-srv-record``/``-srv-domain`` is set, as confd does.

    The record is ``-srv-record``, else ``_<backend>._tcp.<srv-domain>.``; each answer becomes
    ``target:port`` (``<scheme>://target:port`` for the v2 ``etcd`` backend, as in confd).
    Blocking (one DNS query); ``ConfigError`` if nothing answers. ``lookup`` is
    ``confd.dns.lookup_srv``-shaped, for tests.
    """
    record = config.srv_record or (
        f"_{config.backend}._tcp.{config.srv_domain}." if config.srv_domain else ""
    )
    if not record or config.backend == "env":
        return config
    answers = (lookup or lookup_srv)("", "", record)
    nodes = tuple(f"{a.Target.rstrip('.')}:{int(a.Port)}" for a in answers)
    if not nodes:
        raise ConfigError(f"cannot get nodes from SRV record {record}: no answer")
    if config.backend == "etcd":
        nodes = tuple(f"{config.scheme}://{n}" for n in nodes)
    logger.info(kv("config.srv.nodes", record=record, nodes=",".join(nodes)))
    return dataclasses.replace(config, nodes=nodes)


def panic_grace_for(items: Sequence[str]) -> dict[str, float]:
    """``-panic-grace-for web=60s`` items as service -> seconds; ValueError naming a bad item."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, duration = item.partition("=")
        try:
            if not sep or not name:
                raise ValueError("parse error")
            seconds = parse_duration(duration)
        except ValueError:
            raise ValueError(f"panic-grace-for: {item!r} is not NAME=DURATION (e.g. web=60s)") from None
        if seconds < 0:
            raise ValueError(f"panic-grace-for: {item!r}: the duration must not be negative")
        out[name] = seconds
    return out


def guard_settings(config: Config) -> GuardSettings:
    """The panic guard's settings from ``-panic-*`` (validated by ``load``)."""
    return GuardSettings(
        grace=config.panic_grace,
        max_server_loss=config.panic_max_server_loss / 100,
        max_service_loss=config.panic_max_service_loss / 100,
        grace_for=panic_grace_for(config.panic_grace_for),
        window=config.panic_window,
    )
