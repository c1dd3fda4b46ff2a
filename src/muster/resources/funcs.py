"""What every render of a resource shares: the keys as templates see them, and the function map."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from muster.confd.funcs import func_map
from muster.golang.values import GoFunc
from muster.registry.servicefuncs import service_funcs
from muster.resources.spec import go_join

if TYPE_CHECKING:
    from muster.registry.guard import Guards

__all__ = ["strip_key", "strip_prefix", "template_funcs"]


def strip_prefix(values: Mapping[str, str], prefix: str) -> dict[str, str]:
    """Keys as templates see them, exactly as confd's ``setVars`` stores them (``strip_key``)."""
    return {strip_key(key, prefix): value for key, value in values.items()}


def strip_key(key: str, prefix: str) -> str:
    """One key as templates see it: ``path.Join("/", strings.TrimPrefix(key, prefix))``, a
    plain string trim (so prefix ``/app`` turns ``/application`` into ``/lication``, as
    confd does), then Go's path cleaning."""
    if prefix.endswith("/") and key.startswith(prefix):
        # The prefix's own "/" kept: with the usual prefix "/", the key itself, not a copy
        # (90,000 keys at 30,000 services: 7 MB).
        rest = key[len(prefix) - 1 :]
    else:
        rest = key.removeprefix(prefix)
        if not rest.startswith("/"):
            rest = "/" + rest
    # Fast path for keys that are already clean; go_join handles "//", "." and ".." parts.
    if "//" in rest or "/." in rest or (rest.endswith("/") and rest != "/"):
        rest = go_join("/", rest)
    return rest


def template_funcs(slot: Any, dataplane: str = "reload", guards: Guards | None = None) -> dict[str, Any]:
    """confd's function map over ``slot`` (a ``KVStore``, or a slot re-pointed at each
    snapshot) plus muster's own: ``services``/``servers`` (validated registry
    entries, see ``muster.registry.index``) and ``dataplane`` (``"lua"`` when server membership
    reaches nginx without a reload, else ``"reload"``), so one template serves both modes."""

    funcs: dict[str, Any] = dict(func_map(slot))
    funcs.update(service_funcs(slot, guards=guards))
    funcs["dataplane"] = GoFunc(lambda: dataplane, (), name="dataplane")
    return funcs
