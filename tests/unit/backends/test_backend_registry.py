"""The backend registry, options and endpoint rotation."""

from __future__ import annotations

import pytest

from muster.backends import REGISTRY, create, load
from muster.backends.etcd.transport import Endpoints, ssl_context
from muster.backends.etcd.v2 import EtcdV2Backend
from muster.backends.etcd.v3 import EtcdV3Backend
from muster.backends.options import BackendOptions
from muster.errors import ConfigError


def test_registry_names() -> None:
    assert set(REGISTRY) >= {"etcdv3", "etcd", "file", "env", "memory"}
    assert load("etcdv3") is EtcdV3Backend
    assert load("etcd") is EtcdV2Backend


def test_unknown_backend_is_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'consul'; choose one of"):
        load("consul")


async def test_create_passes_options() -> None:
    backend = create("etcdv3", BackendOptions(nodes=("10.0.0.1:2379", "https://h:2379/")))
    assert isinstance(backend, EtcdV3Backend)
    assert backend.client.endpoints.urls == ("http://10.0.0.1:2379", "https://h:2379")
    await backend.aclose()


def test_default_endpoint_and_scheme() -> None:
    assert BackendOptions().endpoints() == ("http://127.0.0.1:2379",)
    assert BackendOptions(scheme="https", nodes=("a:1",)).endpoints() == ("https://a:1",)


def test_endpoint_rotation() -> None:
    eps = Endpoints(("a", "b", "c"))
    assert eps.rotation() == ["a", "b", "c"]
    eps.mark_failed("a", OSError("down"))
    assert eps.current == "b" and eps.rotation() == ["b", "c", "a"]
    eps.mark_failed("a", OSError("stale report"))  # another caller already moved on
    assert eps.current == "b"
    eps.mark_good("c")
    assert eps.current == "c"
    with pytest.raises(ConfigError):
        Endpoints(())


def test_tls_options_errors_name_the_files(tmp_path: object) -> None:
    assert ssl_context(BackendOptions()) is None
    with pytest.raises(ConfigError, match="/nonexistent/ca.pem"):
        ssl_context(BackendOptions(client_ca_keys="/nonexistent/ca.pem"))
    with pytest.raises(ConfigError, match="together"):
        ssl_context(BackendOptions(client_cert="/x.pem"))
    insecure = ssl_context(BackendOptions(client_insecure=True))
    assert insecure is not None and not insecure.check_hostname


def test_map_exceptions() -> None:
    import ssl

    import aiohttp

    from muster.backends.etcd.transport import TRANSPORT_ERRORS, is_certificate_error, map_exceptions
    from muster.errors import BackendError, BackendUnavailable

    with pytest.raises(BackendUnavailable, match="range http://h: boom") as info:
        with map_exceptions(TRANSPORT_ERRORS, "range http://h"):
            raise aiohttp.ClientConnectionError("boom")
    assert isinstance(info.value.__cause__, aiohttp.ClientConnectionError)
    with pytest.raises(BackendUnavailable, match="TimeoutError"):
        with map_exceptions(TRANSPORT_ERRORS, "put"):
            raise TimeoutError
    with pytest.raises(BackendError, match="TLS certificate rejected") as cert:
        with map_exceptions(TRANSPORT_ERRORS, "range"):
            raise ssl.SSLCertVerificationError("certificate verify failed")
    assert not isinstance(cert.value, BackendUnavailable)
    assert is_certificate_error(OSError("[SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"))
    assert not is_certificate_error(OSError("connection reset"))
    with pytest.raises(ValueError):  # not a transport error: left alone
        with map_exceptions(TRANSPORT_ERRORS, "range"):
            raise ValueError("bug")
