"""Redaction of URLs in text: a leaf below :mod:`stacrrn.errors` (standard library only).

A message (an ``error:`` line, a log record, a manifest reason) never repeats an href's query
string, fragment or user info: signed URLs carry their credentials there. The functions live
here, at the bottom of the layers, so that :func:`stacrrn.errors.report` can apply them to
every error line without importing the I/O layer; :mod:`stacrrn.io.hrefs` re-exports them,
and the rest of stacrrn imports them from there.
"""

from __future__ import annotations

import re

_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)
_USERINFO = re.compile(r"(://)[^/?#@\s]*@")
_URL_IN_TEXT = re.compile(
    r"(?:\b[a-z][a-z0-9+.-]*://|(?<![\w/])/vsi[a-z0-9_]+(?=[/?])|(?<=url: )/)[^\s'\"<>`]*",
    re.IGNORECASE,
)
_TRAILING = re.compile(r"[.,;:!)\]}]+$")


def _is_url_like(href: str) -> bool:
    return bool(_SCHEME.match(href)) or href.lower().startswith("/vsi")


def redact_href(href: str) -> str:
    """What a message may show of ``href``: without its query string, fragment and user info.

    Local paths are returned unchanged (a ``?`` or ``#`` is part of a file name there); URLs
    (``scheme://...``) and GDAL paths (``/vsicurl/https://...``, ``/vsicurl?url=...``) lose
    everything from the first ``?`` or ``#`` on, and ``user:password@``.

    Parameters
    ----------
    href
        An href, URL, GDAL path or local path.

    Returns
    -------
    str
        The href safe to print.

    Examples
    --------
    >>> redact_href("https://acct.blob.core.windows.net/c/B04.tif?sv=2021&se=2024&sig=SECRET")
    'https://acct.blob.core.windows.net/c/B04.tif'
    >>> redact_href("/vsicurl/https://user:pw@host/a.tif#frag")
    '/vsicurl/https://host/a.tif'
    >>> redact_href("/data/what?.tif")
    '/data/what?.tif'
    """
    if not _is_url_like(href):
        return href
    cuts = [i for i in (href.find("?"), href.find("#")) if i >= 0]
    return _USERINFO.sub(r"\1", href[: min(cuts)] if cuts else href)


def _redact_match(match: re.Match[str]) -> str:
    token = match.group(0)
    trailing = _TRAILING.search(token)
    tail = trailing.group(0) if trailing else ""
    body = token[: len(token) - len(tail)]
    if body.startswith("/") and not body.lower().startswith("/vsi"):  # a path after "url: " (requests' messages)
        cut = min((i for i in (body.find("?"), body.find("#")) if i >= 0), default=len(body))
        return body[:cut] + tail
    return redact_href(body) + tail


def redact_text(text: str) -> str:
    """``text`` with every URL or GDAL network path in it passed through :func:`redact_href`.

    For messages built from text stacrrn does not control (a library's exception, a GDAL
    message) that may quote a signed URL. Trailing punctuation after a URL is kept.

    Examples
    --------
    >>> redact_text("cannot read (https://h/a.tif?X-Amz-Signature=abc&X-Amz-Date=1): 403")
    'cannot read (https://h/a.tif): 403'
    """
    return _URL_IN_TEXT.sub(_redact_match, text)
