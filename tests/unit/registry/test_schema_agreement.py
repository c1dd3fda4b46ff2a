"""The writer (``muster register``) and the readers (the daemon) agree on every entry: what
the agent writes is routed, and what the daemon would reject is refused before a write."""

from __future__ import annotations

import itertools
import json
import random

from muster.errors import RegistrationError
from muster.registration.validate import RegistrationSpec
from muster.registry.index import index_services

NAMES = ["web", "Web-2", "a", "0", "a.b_c-d", "-web", "_web", ".", "..", ".web", "we b", "wéb", "web/x",
         "x" * 128, "x" * 129, "", "web\n", "a-", "9lives"]  # fmt: skip
HOSTS = ["10.0.0.5", "127.0.0.1", "0.0.0.0", "255.255.255.255", "224.0.0.1", "239.255.255.255",
         "223.255.255.255", "240.0.0.1", "10.0.0.256", "010.0.0.1", "1.2.3", "::1", "::", "ff02::1",
         "fe80::1%eth0", "2001:db8::1", "2001:DB8:0::1", "[::1]", "api.internal", "api.internal.",
         "-api.internal", "api-.internal", "a" * 64 + ".x", "x.123", "x.y1", "localhost", "",
         "host name", "1.2.3.4; include /etc/passwd"]  # fmt: skip
PORTS: list[object] = [1, 80, 65535, 0, 65536, -1]
WEIGHTS: list[str | None] = [None, "1", "1000", "0", "1001", "abc", "07"]


def reader_accepts(service: str, server_id: str, host: object, port: object, weight: str | None) -> bool:
    """Whether the daemon routes the entry written with these fields (as-is, unvalidated)."""
    document: dict[str, object] = {"host": host, "port": port}
    if weight is not None:
        document["weight"] = weight
    key = f"/services/{service}/servers/{server_id}"
    index = index_services([(key, json.dumps(document))], [service], resolvable=None)
    return len(index.services.get(service, [])) == 1 and not index.rejected


def test_writer_and_readers_agree_over_generated_entries() -> None:
    rng = random.Random(11)
    cases = list(itertools.product(NAMES, HOSTS, PORTS, WEIGHTS))
    rng.shuffle(cases)
    checked = 0
    for name, host, port, weight in cases[:6000]:
        server_id = rng.choice(NAMES)
        meta = {"weight": weight} if weight is not None else {}
        try:
            spec = RegistrationSpec.create(name, host, port, server_id=server_id, meta=meta)  # type: ignore[arg-type]
        except RegistrationError:
            # Refused before any write: the daemon would not have routed it either.
            assert not reader_accepts(name, server_id, host, port, weight), (
                name,
                server_id,
                host,
                port,
                weight,
            )
        else:
            data = json.loads(spec.value)
            written = reader_accepts(
                spec.service, spec.server_id, data["host"], data["port"], data.get("weight")
            )
            assert written, f"written but never routed: {spec.key} = {spec.value}"
        checked += 1
    assert checked == 6000
