"""``muster render``: render one template offline, with confd's functions over a key file.

This is the tool for debugging a template without etcd, nginx or the daemon: dot is
the JSON value of ``--data`` (decoded as Go does, every number a float64; nil when
absent, as in confd, or invalid, with a warning), and ``getv``/``ls``/... read the keys of ``--keys``: YAML
files in confd's file-backend layout, JSON files of the same shape, or directories
of them, seen through ``--prefix``/``--key`` as a confd resource sees them. The template
is named after its file's base name, as confd names it, which matters for
``{{template "name"}}``. Output goes to stdout as raw bytes; any error prints Go's
message shape on stderr and exits 1, with nothing written to stdout.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from muster.backends.file import load_key_files
from muster.confd.store import KVStore
from muster.errors import BackendError, Error, TemplateError
from muster.golang.json import unmarshal_any
from muster.gotemplate import Template
from muster.resources.funcs import strip_prefix, template_funcs
from muster.resources.spec import go_join

__all__ = ["render", "render_file"]


def _read_text(path: str) -> str:
    with open(path, "rb") as fh:
        return fh.read().decode("utf-8", "surrogateescape")


def load_data(path: str | None) -> Any:
    """The value of dot: what Go's ``json.Unmarshal`` leaves from ``path``, or None.

    Like the Go program the conformance corpus comes from, a decoding error does not
    stop the render: dot is nil (a syntax error) or has nil for each number beyond
    float64. The error is printed as a warning naming the file.
    """
    if path is None:
        return None
    with open(path, "rb") as fh:
        value, error = unmarshal_any(fh.read())
    if error is not None:
        note = "dot is what Go's json.Unmarshal leaves"
        click.echo(f"muster render: warning: {path}: {error} ({note})", err=True)
    return value


def load_keys(
    paths: tuple[str, ...] | str | None,
    prefix: str = "/",
    keys: tuple[str, ...] = ("/",),
    file_filter: str = "*",
) -> KVStore:
    """The key snapshot from YAML/JSON key files or directories of them (empty
    without any), as a confd resource with ``prefix`` and ``keys`` sees it.

    As confd does with its file backend: directories are walked for files matching
    ``file_filter``, later files override earlier ones, the keys read are
    ``path.Join(prefix, key)`` matched as plain string prefixes (``/app`` also selects
    ``/application``), and templates see them with ``prefix`` stripped. The defaults
    select every key as is.
    """
    if isinstance(paths, str):
        paths = (paths,)
    if not paths:
        return KVStore({})

    if not prefix.startswith("/"):
        prefix = "/" + prefix  # confd forces a leading slash
    wanted = [go_join(prefix, key) for key in keys]
    loaded = load_key_files(paths, file_filter)
    values = {k: v for k, v in loaded.items() if any(k.startswith(w) for w in wanted)}
    return KVStore(strip_prefix(values, prefix))


def render_file(template_path: str, *, data: Any = None, store: KVStore | None = None) -> str:
    """Render ``template_path`` with dot = ``data`` and the daemon's functions over ``store``
    (confd's, plus muster's ``services``/``servers``/``dataplane``)."""

    source = _read_text(template_path)
    name = os.path.basename(template_path)
    tmpl = Template(name, funcs=template_funcs(store if store is not None else KVStore({})))
    return tmpl.parse(source).execute(data)


@click.command("render")
@click.argument("template", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, dir_okay=False),
    help="JSON file bound to dot (numbers decode as float64, as in Go).",
)
@click.option(
    "--keys",
    "keys_paths",
    multiple=True,
    type=click.Path(exists=True),
    help="YAML or JSON key tree read by getv/gets/ls... (confd file-backend layout); a "
    "directory is walked for files matching --filter. Repeatable, like confd's -file.",
)
@click.option(
    "--filter",
    "file_filter",
    default="*",
    show_default=True,
    help="Glob for the key files inside --keys directories (confd's -filter).",
)
@click.option(
    "--prefix",
    default="/",
    show_default=True,
    help="The resource's prefix: keys are read below it and templates see them without it.",
)
@click.option(
    "--key",
    "key_filters",
    multiple=True,
    help="A resource key to read (repeatable; default: every key), as in the resource's keys = [...].",
)
def render(
    template: str,
    data_path: str | None,
    keys_paths: tuple[str, ...],
    file_filter: str,
    prefix: str,
    key_filters: tuple[str, ...],
) -> None:
    """Render TEMPLATE to stdout, as confd would, for offline debugging."""
    try:
        data = load_data(data_path)
        store = load_keys(keys_paths, prefix, key_filters or ("/",), file_filter)
        text = render_file(template, data=data, store=store)
    except TemplateError as exc:
        click.echo(str(exc), err=True)
        sys.exit(1)
    except (BackendError, Error) as exc:
        click.echo(f"muster render: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        click.echo(f"muster render: {exc.filename}: {exc.strerror}", err=True)
        sys.exit(1)
    # Bytes: Go strings may hold invalid UTF-8, which must reach stdout unchanged.
    click.echo(text.encode("utf-8", "surrogateescape"), nl=False)
