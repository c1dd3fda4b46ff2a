"""confd's env backend: /a/b <-> A_B, no watch."""

from __future__ import annotations

import pytest

from muster.backends import BackendOptions, create
from muster.backends.env import EnvBackend, env_key, env_values
from muster.errors import WatchUnsupported

ENV = {"APP_NAME": "muster", "APP_DB_HOST": "db", "APPLICATION": "x", "OTHER": "y", "MY_APP_PORT": "80"}


def test_mapping_is_confds() -> None:
    assert env_values(["/app"], ENV) == {"/app/name": "muster", "/app/db/host": "db", "/application": "x"}
    assert env_values(["/app/db"], ENV) == {"/app/db/host": "db"}
    assert env_values(["/my/app"], ENV) == {"/my/app/port": "80"}
    assert env_values(["/nothing"], ENV) == {}
    assert len(env_values(["/"], ENV)) == len(ENV)  # "/" selects every variable
    assert env_key("MY_APP_PORT") == "/my/app/port"  # underscores and slashes are one


async def test_backend_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MUSTERTEST_SVC_PORT", "8080")
    backend = create("env", BackendOptions())
    snap = await backend.get_values(["/mustertest"])
    assert dict(snap.values) == {"/mustertest/svc/port": "8080"} and snap.revision is None
    with pytest.raises(WatchUnsupported):
        await backend.wait_changed(["/mustertest"], None)
    await backend.aclose()


async def test_backend_with_an_explicit_environment() -> None:
    backend = EnvBackend(environ=ENV)
    assert (await backend.get_values(["/other"])).values == {"/other": "y"}
