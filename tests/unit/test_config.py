"""Config layering: defaults < confd.toml < CONFD_* env < flags, validated once with named sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from muster.config import Config, load, parse_duration, toml_layer
from muster.errors import ConfigError


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_defaults_when_nothing_is_given(tmp_path: Path) -> None:
    cfg = load({"config_file": str(tmp_path / "none.toml")}, {})
    assert cfg.backend == "etcdv3"
    assert cfg.nodes == ("http://127.0.0.1:2379",)
    assert cfg.interval == 600
    assert cfg.confdir == "/etc/confd"
    assert not cfg.watch and not cfg.onetime


def test_precedence_flags_over_env_over_file_over_defaults(tmp_path: Path) -> None:
    toml = write(
        tmp_path / "confd.toml",
        'backend = "etcd"\ninterval = 30\nprefix = "/file"\nnoop = true\nnodes = ["http://file:2379"]\n',
    )
    env = {"CONFD_INTERVAL": "20", "CONFD_PREFIX": "/env"}
    flags = {"config_file": str(toml), "prefix": "/flag"}
    cfg = load(flags, env)
    assert cfg.prefix == "/flag"  # flag beats env and file
    assert cfg.interval == 20  # env beats file
    assert cfg.backend == "etcd"  # file beats default
    assert cfg.noop is True
    assert cfg.nodes == ("http://file:2379",)
    assert cfg.watch is False  # default


def test_flag_false_overrides_file_true(tmp_path: Path) -> None:
    toml = write(tmp_path / "confd.toml", "watch = true\n")
    assert load({"config_file": str(toml)}, {}).watch is True
    assert load({"config_file": str(toml), "watch": False}, {}).watch is False


def test_config_file_from_env(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", 'confdir = "/srv/confd"\n')
    assert load({}, {"CONFD_CONFIG_FILE": str(toml)}).confdir == "/srv/confd"


def test_missing_config_file_is_skipped(tmp_path: Path) -> None:
    assert toml_layer(tmp_path / "absent.toml") is None
    assert load({"config_file": str(tmp_path / "absent.toml")}, {}) == Config(
        config_file=str(tmp_path / "absent.toml"), nodes=("http://127.0.0.1:2379",)
    )


def test_bad_toml_names_the_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "confd.toml", "interval = \n")
    with pytest.raises(ConfigError, match="confd.toml: invalid TOML"):
        load({"config_file": str(toml)}, {})


def test_unknown_toml_key_names_file_and_key(tmp_path: Path) -> None:
    toml = write(tmp_path / "confd.toml", "intervall = 5\n")
    with pytest.raises(ConfigError, match=r"confd\.toml: unknown key 'intervall'"):
        load({"config_file": str(toml)}, {})


def test_wrong_type_in_toml(tmp_path: Path) -> None:
    toml = write(tmp_path / "confd.toml", 'interval = "soon"\n')
    with pytest.raises(ConfigError, match=r"confd\.toml: invalid value 'soon' for 'interval'"):
        load({"config_file": str(toml)}, {})


def test_bad_env_value_names_the_variable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="CONFD_WATCH"):
        load({"config_file": str(tmp_path / "x")}, {"CONFD_WATCH": "perhaps"})


def test_confd_env_names_for_tls(tmp_path: Path) -> None:
    env = {"CONFD_CLIENT_CAKEYS": "/ca.pem", "CONFD_CLIENT_CERT": "/c.pem", "CONFD_CLIENT_KEY": "/k.pem"}
    cfg = load({"config_file": str(tmp_path / "x")}, env)
    assert (cfg.client_cakeys, cfg.client_cert, cfg.client_key) == ("/ca.pem", "/c.pem", "/k.pem")


def test_empty_env_counts_as_unset(tmp_path: Path) -> None:
    assert load({"config_file": str(tmp_path / "x")}, {"CONFD_BACKEND": ""}).backend == "etcdv3"


def test_etcdctl_peers_is_the_node_default(tmp_path: Path) -> None:
    env = {"ETCDCTL_PEERS": "http://a:2379, http://b:2379"}
    cfg = load({"config_file": str(tmp_path / "x"), "backend": "etcd"}, env)
    assert cfg.nodes == ("http://a:2379", "http://b:2379")
    cfg = load({"config_file": str(tmp_path / "x"), "nodes": ("http://c:1",)}, env)
    assert cfg.nodes == ("http://c:1",)


def test_nodes_from_env_are_comma_separated(tmp_path: Path) -> None:
    cfg = load({"config_file": str(tmp_path / "x")}, {"CONFD_NODES": "http://a:1,http://b:2"})
    assert cfg.nodes == ("http://a:1", "http://b:2")


def test_muster_durations(tmp_path: Path) -> None:
    toml = write(tmp_path / "c.toml", 'debounce_window = "250ms"\ndebounce_max = 3\n')
    cfg = load({"config_file": str(toml), "reload_timeout": 5.0}, {"CONFD_CHECK_TIMEOUT": "1m"})
    assert (cfg.debounce_window, cfg.debounce_max, cfg.check_timeout, cfg.reload_timeout) == (
        0.25,
        3.0,
        60.0,
        5.0,
    )
    assert parse_duration("1h2m3.5s") == 3723.5
    with pytest.raises(ValueError):
        parse_duration("3 days")


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"backend": "consul"}, r"unsupported backend 'consul'.*\(from flags\)"),
        ({"backend": "file"}, "needs at least one -file"),
        ({"interval": 0}, "interval must be a positive"),
        ({"log_level": "loud"}, "unknown log level"),
        ({"debounce_window": 3.0, "debounce_max": 1.0}, "debounce-max must be at least"),
        ({"client_cert": "/c.pem"}, "client-cert and client-key"),
        ({"reload_timeout": 0.0}, "reload-timeout must be positive"),
    ],
)
def test_validation_names_option_and_source(tmp_path: Path, flags: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load({"config_file": str(tmp_path / "x"), **flags}, {})


def test_validation_source_is_the_file(tmp_path: Path) -> None:
    toml = write(tmp_path / "confd.toml", 'backend = "vault"\n')
    with pytest.raises(ConfigError, match=r"from .*confd\.toml"):
        load({"config_file": str(toml)}, {})


def test_unused_confd_options_are_accepted(tmp_path: Path) -> None:
    toml = write(tmp_path / "confd.toml", 'auth_type = "token"\ntable = "t"\n')
    assert load({"config_file": str(toml)}, {}).backend == "etcdv3"


def test_password_is_not_in_repr() -> None:
    assert "hunter2" not in repr(Config(password="hunter2"))


def test_srv_discovery_fills_nodes_as_confd_does() -> None:
    from muster.confd.dns import SRV
    from muster.config import resolve_srv_nodes

    queries: list[str] = []

    def lookup(service: str, proto: str, name: str) -> list[SRV]:
        queries.append(name)
        return [SRV("etcd1.example.com.", 2379, 0, 0), SRV("etcd2.example.com.", 2380, 0, 0)]

    cfg = resolve_srv_nodes(Config(backend="etcdv3", srv_domain="example.com"), lookup)
    assert queries == ["_etcdv3._tcp.example.com."]
    assert cfg.nodes == ("etcd1.example.com:2379", "etcd2.example.com:2380")
    cfg = resolve_srv_nodes(Config(backend="etcd", srv_record="_x._tcp.y.", scheme="https"), lookup)
    assert queries[-1] == "_x._tcp.y."
    assert cfg.nodes == ("https://etcd1.example.com:2379", "https://etcd2.example.com:2380")
    assert resolve_srv_nodes(Config(nodes=("a",)), lookup).nodes == ("a",)  # no SRV asked for
    with pytest.raises(ConfigError, match="no answer"):
        resolve_srv_nodes(Config(srv_domain="example.com"), lambda *_: [])


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("10", 10),
        ("0x10", 16),
        ("0X1f", 31),
        ("010", 8),
        ("0o17", 15),
        ("0b101", 5),
        ("0", 0),
        ("-5", -5),
        ("+3", 3),
        ("1_000", 1000),
    ],
)
def test_go_int(text: str, value: int) -> None:
    from muster.config import parse_go_int

    assert parse_go_int(text) == value


@pytest.mark.parametrize("text", ["", "abc", "0x", "09", " 1", "1.5", "-", "9223372036854775808"])
def test_go_int_errors(text: str) -> None:
    from muster.config import parse_go_int

    with pytest.raises(ValueError):
        parse_go_int(text)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('nodes = "http://a"\n', None),  # a string is split on commas, like the env var
        ("nodes = [1]\n", "expected a list of strings"),
        ('watch = "yes"\n', "parse error"),
        ("watch = 1\n", "expected true or false"),
        ("interval = 1.5\n", "expected an integer"),
        ("debounce_window = true\n", "expected a duration"),
        ('debounce_window = ""\n', "invalid duration"),
        ("prefix = 3\n", "expected a string"),
    ],
)
def test_toml_value_types(tmp_path: Path, toml: str, message: str | None) -> None:
    path = write(tmp_path / "confd.toml", toml)
    if message is None:
        assert load({"config_file": str(path)}, {}).nodes == ("http://a",)
    else:
        with pytest.raises(ConfigError, match=message):
            load({"config_file": str(path)}, {})


def test_unreadable_config_file_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "dir.toml").mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        load({"config_file": str(tmp_path / "dir.toml")}, {})
    with pytest.raises(ConfigError, match="does not exist"):
        toml_layer(tmp_path / "absent.toml", required=True)


def test_dataplane_admin_must_be_local(tmp_path: Path) -> None:
    flags = {"config_file": str(tmp_path / "none.toml"), "dataplane": "lua"}
    with pytest.raises(ConfigError, match=r"dataplane-admin: .*loopback only\) \(from flags"):
        load({**flags, "dataplane_admin": "http://10.0.0.5:9000"}, {})
    assert load({**flags, "dataplane_admin": "unix:/run/muster/admin.sock"}, {}).dataplane == "lua"
    # haproxy's runtime API is a socket path, given with or without unix:.
    config = load({**flags, "dataplane": "haproxy", "dataplane_admin": "/run/haproxy/admin.sock"}, {})
    assert config.dataplane_admin == "/run/haproxy/admin.sock"


def test_a_status_address_off_loopback_needs_a_token_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="0.0.0.0 is not a loopback address.*-status-token-file"):
        load({"confdir": str(tmp_path), "status_addr": "0.0.0.0:9101"}, environ={})
    token = tmp_path / "token"
    config = load(
        {"confdir": str(tmp_path), "status_addr": "0.0.0.0:9101", "status_token_file": str(token)}, environ={}
    )
    assert config.status_token_file == str(token)
    loopback = load({"confdir": str(tmp_path), "status_addr": "127.0.0.1:9101"}, environ={})
    assert loopback.status_token_file == ""


def test_the_token_file_must_hold_a_token(tmp_path: Path) -> None:
    from muster.daemon.main import read_token

    assert read_token("") is None
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    assert read_token(str(token)) == "s3cret"
    token.write_text("\n")
    with pytest.raises(ConfigError, match="status-token-file: .* is empty"):
        read_token(str(token))
    with pytest.raises(ConfigError, match="status-token-file: cannot read"):
        read_token(str(tmp_path / "missing"))
