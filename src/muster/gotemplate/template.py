"""The public template API: Go's ``text/template.Template``, a named template in a set.

Templates that ``{{define}}``, ``{{block}}`` or ``new`` create share one set (Go's
``common``): any of them can ``{{template "name"}}`` any other. Parsing follows Go
1.19's ``Template.Parse``: every tree a source defines joins the set, a later
definition replaces an earlier one, except that an empty body (space and comments
only) never replaces an existing template.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from muster.errors import TemplateExecError
from muster.golang.strconv import quote
from muster.golang.values import GoFunc
from muster.gotemplate import exec as go_exec, nodes
from muster.gotemplate.parser import is_empty_tree, parse

if TYPE_CHECKING:
    from muster.gotemplate.memo import Memo

__all__ = ["BUILTIN_NAMES", "Template"]

# The functions every template has (Go 1.19's builtins()); exec's funcs.BUILTINS
# implements exactly these. The parser needs only the names, to reject unknown calls.
BUILTIN_NAMES = frozenset(
    "and or not len index slice eq ne lt le gt ge print printf println html js urlquery call".split()
)


class _Common:
    """What associated templates share: the trees by name, functions and delimiters."""

    __slots__ = ("trees", "funcs", "left_delim", "right_delim")

    def __init__(self, funcs: Mapping[str, GoFunc]) -> None:
        self.trees: dict[str, nodes.Tree] = {}
        self.funcs = dict(funcs)
        self.left_delim = ""
        self.right_delim = ""


class Template:
    """A named template, part of a set of associated templates.

    ``funcs`` maps names callable from the template to :class:`GoFunc` values,
    in addition to (and overriding) the builtins; it must be given before parsing.
    """

    __slots__ = ("name", "_common")

    def __init__(self, name: str, funcs: Mapping[str, GoFunc] | None = None) -> None:
        self.name = name
        self._common = _Common(funcs or {})

    def __repr__(self) -> str:
        return f"<Template {self.name!r}>"

    @property
    def tree(self) -> nodes.Tree | None:
        """This template's parse tree, or None while it has no definition."""
        return self._common.trees.get(self.name)

    @property
    def templates(self) -> list[Template]:
        """Every template of the set that has a definition, this one included."""
        return [self._view(name) for name in self._common.trees]

    def _view(self, name: str) -> Template:
        view = Template.__new__(Template)
        view.name = name
        view._common = self._common
        return view

    def new(self, name: str) -> Template:
        """A new, undefined template associated with this one (Go's ``t.New``)."""
        return self._view(name)

    def lookup(self, name: str) -> Template | None:
        """The associated template called ``name``, or None if it has no definition."""
        return self._view(name) if name in self._common.trees else None

    def delims(self, left: str = "", right: str = "") -> Template:
        """Set the action delimiters for later ``parse`` calls; empty means ``{{``/``}}``."""
        self._common.left_delim = left
        self._common.right_delim = right
        return self

    def parse(self, text: str) -> Template:
        """Parse ``text`` as the body of this template; return ``self``.

        Templates it defines join the set. Raises
        :class:`~muster.errors.TemplateSyntaxError`; the set is then unchanged.
        """
        common = self._common
        trees = parse(
            self.name,
            text,
            BUILTIN_NAMES | common.funcs.keys(),
            left_delim=common.left_delim,
            right_delim=common.right_delim,
        )
        for name, tree in trees.items():
            # Go's associate: an empty body does not replace an existing template.
            if name in common.trees and is_empty_tree(tree.root):
                continue
            common.trees[name] = tree
        return self

    def execute(self, data: Any = None, memo: Memo | None = None) -> str:
        """Render this template with dot set to ``data``.

        The output is a ``str``; encode it with ``("utf-8", "surrogateescape")`` to
        get Go's bytes. Raises :class:`~muster.errors.TemplateExecError`. A ``memo``
        (``muster.gotemplate.memo.Memo``, one per template set) reuses the output of
        bodies that nothing changed for since an earlier execution with it.
        """
        if self.name not in self._common.trees:
            raise TemplateExecError(f"{quote(self.name)} is an incomplete or empty template", name=self.name)
        return go_exec.execute(self._common.trees, self.name, data, self._common.funcs, memo)

    def execute_template(self, name: str, data: Any = None) -> str:
        """Render the associated template called ``name`` with dot set to ``data``."""
        template = self.lookup(name)
        if template is None:
            raise TemplateExecError(f"no template {quote(name)} associated with template {quote(self.name)}")
        return template.execute(data)
