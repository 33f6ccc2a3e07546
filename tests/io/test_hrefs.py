"""Hrefs in messages lose their query strings; hrefs of remote documents may not name local files."""

from __future__ import annotations

import pytest

from stacrrn.errors import InputError, TransientIOError, report
from stacrrn.io.hrefs import is_absolute_local, is_local_href, reads_this_machine, redact_href, redact_text


@pytest.mark.parametrize(
    ("href", "shown"),
    [
        (
            "https://acct.blob.core.windows.net/c/B04.tif?sv=2021&se=2030&sig=abc%2B",
            "https://acct.blob.core.windows.net/c/B04.tif",
        ),
        ("https://b.s3.amazonaws.com/k.tif?X-Amz-Algorithm=A&X-Amz-Signature=f00d", "https://b.s3.amazonaws.com/k.tif"),
        ("s3://bucket/key.tif?versionId=7", "s3://bucket/key.tif"),
        ("https://user:password@host/a.tif", "https://host/a.tif"),
        ("http://host/a.json#frag", "http://host/a.json"),
        ("/vsicurl/https://host/a.tif?token=t", "/vsicurl/https://host/a.tif"),
        ("/vsicurl?url=https%3A%2F%2Fhost%2Fa.tif&sig=x", "/vsicurl"),
        ("/vsis3/bucket/key.tif", "/vsis3/bucket/key.tif"),
        ("/data/odd?name#.tif", "/data/odd?name#.tif"),  # a local path: '?' and '#' belong to the name
        ("relative/a.tif", "relative/a.tif"),
    ],
)
def test_redact_href(href, shown):
    assert redact_href(href) == shown


def test_redact_text_keeps_the_words_around_urls():
    text = (
        "cannot read /vsicurl/https://h/a.tif?sig=SECRET: 403 (see 'https://h/b.tif?X-Amz-Signature=SECRET'), "
        "then HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /search?key=SECRET (Caused by x)"
    )
    assert redact_text(text) == (
        "cannot read /vsicurl/https://h/a.tif: 403 (see 'https://h/b.tif'), "
        "then HTTPSConnectionPool(host='h', port=443): Max retries exceeded with url: /search (Caused by x)"
    )
    assert redact_text("--query 'eo:cloud_cover<20' matched nothing?") == "--query 'eo:cloud_cover<20' matched nothing?"


@pytest.mark.parametrize("kind", [InputError, TransientIOError])
def test_every_error_line_drops_url_queries(kind):
    err = report(kind("cannot read https://h/scene/B04.tif?se=2030&sig=SECRET%3D (HTTP 403)\nmore detail"))
    assert err.message == "cannot read https://h/scene/B04.tif (HTTP 403)"
    assert err.exit_code == kind.exit_code


@pytest.mark.parametrize(
    ("href", "local"),
    [
        ("https://h/a.tif", False),
        ("HTTP://H/a.tif", False),
        ("s3://b/k.tif", False),
        ("/etc/passwd", True),
        ("file:///etc/passwd", True),
        ("/vsicurl/http://h/a.tif", True),
        ("/vsizip//tmp/a.zip/a.tif", True),
        ("zip+file:///tmp/a.zip!/a.tif", True),
        ("gs://b/k.tif", True),
        ("a.tif", True),
    ],
)
def test_is_local_href(href, local):
    assert is_local_href(href) is local


@pytest.mark.parametrize(
    ("written", "absolute_local"),
    [
        ("/etc/passwd", True),
        ("/vsicurl/http://h/a.tif", True),
        ("file:///etc/passwd", True),
        ("C:/data/a.tif", True),
        ("https://h/a.tif", False),
        ("s3://b/a.tif", False),
        ("a.tif", False),
        ("../scene/a.tif", False),
    ],
)
def test_is_absolute_local(written, absolute_local):
    assert is_absolute_local(written) is absolute_local


def test_reads_this_machine_judges_the_href_as_written_and_as_resolved():
    assert reads_this_machine("/etc/passwd", "https://h/etc/passwd")  # by URL rules remote; refused as written
    assert reads_this_machine("a.tif", "a.tif")  # relative, with no remote document to resolve it against
    assert not reads_this_machine("../a.tif", "https://h/a.tif")
    assert not reads_this_machine("s3://b/a.tif", "s3://b/a.tif")
