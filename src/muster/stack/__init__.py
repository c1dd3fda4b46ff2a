"""Drive the real processes of a local stack (etcd, nginx, the daemon) for muster up and tests."""

__all__: list[str] = []
