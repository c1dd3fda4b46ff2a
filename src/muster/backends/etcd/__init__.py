"""etcd backends: the v3 (gRPC gateway) and v2 (keys API) clients, their mirrors and the HTTP transport."""

__all__: list[str] = []
