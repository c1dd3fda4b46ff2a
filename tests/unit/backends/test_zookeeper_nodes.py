"""confd's ``-node`` list as kazoo's connection string, and where the ZooKeeper stack keeps its config."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("kazoo", reason="kazoo is not installed (pip install 'muster[zookeeper]')")

from muster.backends.options import BackendOptions  # noqa: E402
from muster.backends.zookeeper import DEFAULT_NODE, hosts  # noqa: E402
from muster.stack.zookeeper import ZooKeeperProcess  # noqa: E402


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        ((), DEFAULT_NODE),
        (("10.0.0.1:2181",), "10.0.0.1:2181"),
        (("10.0.0.1:2181", "10.0.0.2:2181"), "10.0.0.1:2181,10.0.0.2:2181"),
        (("zk1:2181,zk2:2181", " zk3:2181/ "), "zk1:2181,zk2:2181,zk3:2181"),
        (("http://127.0.0.1:2181",), "127.0.0.1:2181"),  # a scheme, as `muster up` banners give etcd
        (("",), DEFAULT_NODE),
    ],
)
def test_nodes_become_one_connection_string(nodes: tuple[str, ...], expected: str) -> None:
    assert hosts(BackendOptions(nodes=nodes)) == expected


def test_the_server_config_is_its_own_on_loopback(tmp_path: Path) -> None:
    server = ZooKeeperProcess(tmp_path, client_port=23456)
    command = server.command()
    cfg = (tmp_path / "conf" / "zoo.cfg").read_text()
    assert command[-1] == str(tmp_path / "conf" / "zoo.cfg")
    assert "org.apache.zookeeper.server.quorum.QuorumPeerMain" in command
    assert "clientPort=23456\n" in cfg and "clientPortAddress=127.0.0.1\n" in cfg
    assert "admin.enableServer=false\n" in cfg and f"dataDir={tmp_path / 'data'}\n" in cfg
    assert server.node == "127.0.0.1:23456" and not server.running
