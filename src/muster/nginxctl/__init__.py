"""Drive an existing nginx safely: check a staged file within the whole config, reload and confirm."""

from __future__ import annotations

from muster.nginxctl.control import (
    NGINX_BINARY,
    check_config,
    check_with_replacement,
    children,
    read_pid,
    reload,
    wait_workers_replaced,
)
from muster.nginxctl.shadow import ShadowError, plan_shadow

__all__ = [
    "NGINX_BINARY",
    "ShadowError",
    "check_config",
    "check_with_replacement",
    "children",
    "plan_shadow",
    "read_pid",
    "reload",
    "wait_workers_replaced",
]
