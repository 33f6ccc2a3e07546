"""Hrefs from untrusted sources: what a message may show of them, and which ones read this machine.

Asset and catalog hrefs come from whoever published the catalog. Two rules follow:

* a message (an ``error:`` line, a log record, a manifest reason) never repeats an href's query
  string, fragment or user info: signed URLs carry their credentials there
  (``?sig=...&se=...``, ``X-Amz-Signature=...``). :func:`redact_href` is the one function that
  strips them; :func:`redact_text` applies it to every URL inside a free-form message (a
  library's exception text, a GDAL message), and :func:`stacrrn.errors.report` applies that
  to every error line. Both are defined in the leaf :mod:`stacrrn._redact`, below the error
  tree, and re-exported here;
* items read from a remote source (a STAC API, or a catalog or item file fetched over
  ``http(s)://`` or from ``s3://``) must not make stacrrn read files of this machine:
  :func:`reads_this_machine` tells which hrefs would, or were written to.
"""

from __future__ import annotations

import re

from stacrrn._redact import redact_href as redact_href
from stacrrn._redact import redact_text as redact_text

REMOTE_SCHEMES = ("http://", "https://", "s3://")
"""Hrefs read over the network (through GDAL's ``/vsicurl/`` and ``/vsis3/``, or fsspec)."""

_ANY_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # also file:x, C:/x, urn:x


def is_local_href(href: str) -> bool:
    """True if reading ``href`` reads this machine rather than the network.

    Everything but ``http://``, ``https://`` and ``s3://`` URLs: local paths (absolute or
    relative), ``file://`` URLs, GDAL virtual file system paths (``/vsicurl/...``,
    ``/vsizip/...``: a GDAL path can reach any local file or internal address) and other
    schemes, which GDAL and rasterio would read as paths or through drivers of their own.
    """
    return not href.lower().startswith(REMOTE_SCHEMES)


def is_absolute_local(href: str) -> bool:
    """True if ``href``, as written, names something of this machine whatever document it is in.

    A path from the root (``/etc/passwd``, GDAL's ``/vsicurl/...``, a Windows share), a
    drive letter (``C:/data``), or a URL of a scheme other than ``http``, ``https`` and ``s3``
    (``file:///etc/passwd``, ``zip+file://...``). Relative references (``B04.tif``,
    ``../scene/B04.tif``) are not: they resolve against the document's own location. Note that
    by URL rules ``/etc/passwd`` in a document at ``https://host/items.json`` means
    ``https://host/etc/passwd``; a remote publisher who writes it is refused all the same.
    """
    return href.startswith(("/", "\\")) or (bool(_ANY_SCHEME.match(href)) and is_local_href(href))


def reads_this_machine(written: str, resolved: str) -> bool:
    """True if an href of a remote document points at this machine.

    Parameters
    ----------
    written
        The href as the document has it.
    resolved
        The href resolved against the document's location (what a reader opens).

    Returns
    -------
    bool
        ``written`` names a local thing (:func:`is_absolute_local`) or ``resolved`` is not
        a remote URL (:func:`is_local_href`).
    """
    return is_absolute_local(written) or is_local_href(resolved)
