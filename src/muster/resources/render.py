"""Pure rendering of one template resource: (spec, backend values, template source) -> bytes."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from muster.confd.store import KVStore
from muster.golang.values import from_bytes, to_bytes
from muster.gotemplate import Template
from muster.resources.funcs import strip_prefix, template_funcs
from muster.resources.incremental import IncrementalRenderer
from muster.resources.spec import ResourceSpec

if TYPE_CHECKING:
    from muster.registry.guard import Guards

# strip_prefix and template_funcs live in resources.funcs (the incremental renderer uses
# them too); they stay importable from here, where callers found them before.
__all__ = ["TemplateCache", "incremental_default", "render", "strip_prefix", "template_funcs"]


class _StoreSlot:
    """Stands in for the KVStore a parsed template's functions were bound to.

    confd's store functions are bound to one store when the function map is built, which
    must happen before parsing; pointing this slot at each new snapshot lets a parsed
    template be executed again instead of being re-parsed (the parse is most of the cost of
    a small render).
    """

    def __init__(self) -> None:
        self.store: KVStore | None = None

    def _s(self) -> KVStore:
        assert self.store is not None
        return self.store

    def exists(self, key: str) -> Any:
        return self._s().exists(key)

    def get(self, key: str) -> Any:
        return self._s().get(key)

    def gets(self, pattern: str) -> Any:
        return self._s().gets(pattern)

    def getv(self, key: str, *default: str) -> Any:
        return self._s().getv(key, *default)

    def getvs(self, pattern: str) -> Any:
        return self._s().getvs(pattern)

    def ls(self, path: str) -> Any:
        return self._s().ls(path)

    def lsdir(self, path: str) -> Any:
        return self._s().lsdir(path)


def incremental_default() -> bool:
    """Whether template caches render incrementally unless told: yes, but for
    ``MUSTER_INCREMENTAL=0`` in the environment (a switch to compare both modes)."""
    return os.environ.get("MUSTER_INCREMENTAL", "1") != "0"


class TemplateCache:
    """Parsed templates by (template name, source bytes); a changed source is parsed afresh.

    With ``incremental`` (default: ``incremental_default()``), each resource keeps an
    ``IncrementalRenderer`` instead (resources/incremental.py): a render after a change
    costs in proportion to the change, and its bytes are those of a full render.
    Not thread-safe: one render at a time per cache (the daemon renders sequentially).
    """

    def __init__(
        self,
        size: int = 64,
        *,
        dataplane: str = "reload",
        guards: Guards | None = None,
        incremental: bool | None = None,
    ) -> None:
        self.size = size
        self.dataplane = dataplane
        self.guards = guards
        self.incremental = incremental_default() if incremental is None else incremental
        self._entries: dict[tuple[str, bytes], tuple[Template, _StoreSlot]] = {}
        self._renderers: dict[tuple[str, str, str, bytes], IncrementalRenderer] = {}

    def renderer(self, spec: ResourceSpec, source: bytes) -> IncrementalRenderer:
        """The resource's incremental renderer for this template source."""
        key = (spec.name, spec.src.name, spec.prefix, source)
        found = self._renderers.get(key)
        if found is None:
            # A resource whose source changed drops its old renderer (and its memo).
            for old in [k for k in self._renderers if k[0] == spec.name]:
                del self._renderers[old]
            if len(self._renderers) >= self.size:
                self._renderers.pop(next(iter(self._renderers)))
            found = self._renderers[key] = IncrementalRenderer(
                spec.src.name, source, spec.prefix, dataplane=self.dataplane, guards=self.guards
            )
        return found

    def full_renders(self) -> int:
        """How many renders from scratch the incremental renderers held now have made."""
        return sum(r.full_renders for r in self._renderers.values())

    def get(self, name: str, source: bytes) -> tuple[Template, _StoreSlot]:
        key = (name, source)
        entry = self._entries.get(key)
        if entry is None:
            slot = _StoreSlot()
            funcs = template_funcs(slot, self.dataplane, self.guards)
            template = Template(name, funcs=funcs).parse(from_bytes(source))
            if len(self._entries) >= self.size:
                self._entries.pop(next(iter(self._entries)))
            entry = self._entries[key] = (template, slot)
        return entry


def render(
    spec: ResourceSpec,
    values: Mapping[str, str],
    source: bytes,
    cache: TemplateCache | None = None,
    changed: Collection[str] | None = None,
) -> bytes:
    """Execute the resource's template over ``values`` (full backend keys) and return the bytes.

    Mirrors confd: the template is named after the base name of ``src``, gets confd's function
    map bound to a store of the prefix-stripped keys, and runs with nil data. Raises
    ``TemplateSyntaxError`` / ``TemplateExecError``; nothing is written anywhere. With a
    ``cache``, an unchanged source is not parsed again, and an incremental cache renders
    only what changed since the resource's last render: ``changed`` (every backend key
    added, removed or modified since then, from a change log) spares it diffing the
    values. ``values`` is read during the call only.
    """
    # Imported here: these modules are the template engine's and the confd functions' owners',
    # and a resource that never renders (e.g. -noop on an empty conf.d) should not need them.

    if cache is not None and cache.incremental:
        return cache.renderer(spec, source).render(values, changed)
    template, slot = (cache or TemplateCache(1)).get(spec.src.name, source)
    slot.store = KVStore(strip_prefix(values, spec.prefix))
    try:
        return to_bytes(template.execute(None))
    finally:
        slot.store = None  # do not keep a snapshot alive between renders
