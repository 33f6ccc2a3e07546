"""Griffe extension for the docs site: the reStructuredText bits of docstrings as Markdown.

stacrrn's NumPy docstrings cross-reference with Sphinx roles (``:func:`match```,
``:class:`~stacrrn.io.stac.Search```). Python-Markdown would print them literally; this
extension rewrites each role, before the docstring is parsed, into an *optional* autorefs
cross-reference: a link when the target is documented on the site, plain code otherwise (no
warning either way). ``~`` shows the last component only, as in Sphinx. Relative targets are
looked up in the object's own scopes (class, then module), the way Sphinx resolves them.

It also drops the ``::`` that introduces a reST literal block (``Typical use::`` becomes
``Typical use:``; a line of its own disappears): the indented block after it is already a
Markdown code block.

Used by mkdocs.yml (``plugins.mkdocstrings.handlers.python.options.extensions``); not part of
the site (``exclude_docs``) nor of the stacrrn package.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:func|meth|class|mod|data|attr|obj|exc|const):`(?P<target>[^`]+)`")
LITERAL_ALONE = re.compile(r"^[ \t]*::[ \t]*$\n?", re.MULTILINE)
LITERAL_AFTER_TEXT = re.compile(r"(?<=\S)::[ \t]*$", re.MULTILINE)


def _scopes(obj: griffe.Object) -> list[griffe.Object]:
    """The object (when it holds members), then its parents up to the package."""
    scopes: list[griffe.Object] = []
    current: griffe.Object | None = obj
    while current is not None:
        if current.is_class or current.is_module:
            scopes.append(current)
        current = current.parent
    return scopes


def _resolve(target: str, obj: griffe.Object) -> str:
    """The full dotted path of ``target`` as seen from ``obj`` (the target itself if unknown)."""
    if target.startswith("stacrrn."):
        return target
    head, _, rest = target.partition(".")
    for scope in _scopes(obj):
        member = scope.members.get(head)
        if member is None:
            continue
        path = member.target_path if member.is_alias else member.path
        return f"{path}.{rest}" if rest else path
    return target


class SphinxRoles(griffe.Extension):
    """Rewrite Sphinx roles and literal-block markers once the object tree is complete."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        """Rewrite the roles and literal-block markers of ``obj``'s docstring."""
        docstring = obj.docstring
        if docstring is None or (":`" not in docstring.value and "::" not in docstring.value):
            return

        def replace(match: re.Match[str]) -> str:
            target = match["target"].strip()
            short = target.startswith("~")
            target = target.lstrip("~")
            title = target.rsplit(".", 1)[-1] if short else target
            identifier = html.escape(_resolve(target, obj), quote=True)
            return f'<autoref identifier="{identifier}" optional>`{title}`</autoref>'

        value = ROLE.sub(replace, docstring.value)
        value = LITERAL_ALONE.sub("", value)
        docstring.value = LITERAL_AFTER_TEXT.sub(":", value)
