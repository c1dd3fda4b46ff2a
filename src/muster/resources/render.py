"""Pure rendering of one template resource: (spec, backend values, template source) -> bytes."""

from __future__ import annotations

from collections.abc import Mapping

from muster.resources.spec import ResourceSpec, go_join

__all__ = ["render", "strip_prefix"]


def strip_prefix(values: Mapping[str, str], prefix: str) -> dict[str, str]:
    """Keys as templates see them, exactly as confd's ``setVars`` stores them.

    ``path.Join("/", strings.TrimPrefix(key, prefix))``: a plain string trim (so prefix
    ``/app`` turns ``/application`` into ``/lication``, as confd does), then Go's path cleaning.
    """
    out: dict[str, str] = {}
    for key, value in values.items():
        out[go_join("/", key.removeprefix(prefix))] = value
    return out


def render(spec: ResourceSpec, values: Mapping[str, str], source: bytes) -> bytes:
    """Execute the resource's template over ``values`` (full backend keys) and return the bytes.

    Mirrors confd: the template is named after the base name of ``src``, gets confd's function
    map bound to a store of the prefix-stripped keys, and runs with nil data. Raises
    ``TemplateSyntaxError`` / ``TemplateExecError``; nothing is written anywhere.
    """
    # Imported here: these modules are the template engine's and the confd functions' owners',
    # and a resource that never renders (e.g. -noop on an empty conf.d) should not need them.
    from muster.confdfuncs import func_map
    from muster.gotemplate import Template
    from muster.gotemplate.values import from_bytes, to_bytes
    from muster.store import KVStore

    store = KVStore(strip_prefix(values, spec.prefix))
    template = Template(spec.src.name, funcs=func_map(store)).parse(from_bytes(source))
    return to_bytes(template.execute(None))
