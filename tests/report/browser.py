"""Measure HTML pages as headless Chromium lays them out: one browser start for several pages.

Each page goes into an ``<iframe srcdoc>`` of a given width (same origin as the wrapper, so a
script of the wrapper reads the laid-out documents); once everything has loaded, the script
writes its measurements into the wrapper's DOM, which ``--dump-dom`` prints.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

CHROMIUM = shutil.which("chromium")

MEASURE = """
function measure(frame) {
  const d = frame.contentDocument, root = d.documentElement;
  const walker = d.createTreeWalker(d.body, NodeFilter.SHOW_TEXT);
  const texts = [];
  while (walker.nextNode()) texts.push(walker.currentNode.textContent);
  const shown = e => e.getClientRects().length > 0;
  const sections = {};
  for (const s of d.querySelectorAll('section')) {
    const h = s.querySelector('h2');
    sections[h.id] = {
      text: s.innerText,
      rows: [...s.querySelectorAll('tr')].filter(shown).length,
      headers: [...s.querySelectorAll('th')].filter(shown).map(th => th.innerText),
    };
  }
  const outside = [...d.body.querySelectorAll('*')].filter(
    e => e.getBoundingClientRect().right > root.clientWidth + 0.5 && !e.closest('.scroll'));
  return {
    scrollWidth: root.scrollWidth, clientWidth: root.clientWidth, innerWidth: frame.contentWindow.innerWidth,
    images: [...d.images].map(i => ({alt: i.alt, naturalWidth: i.naturalWidth,
                                     right: i.getBoundingClientRect().right})),
    scrollers: [...d.querySelectorAll('.scroll')].filter(shown).map(e => ({
      scrollWidth: e.scrollWidth, clientWidth: e.clientWidth, overflowX: getComputedStyle(e).overflowX})),
    outside: outside.map(e => e.tagName.toLowerCase()).slice(0, 20),
    texts, sections,
  };
}
window.addEventListener('load', () => {
  const out = {};
  for (const f of document.querySelectorAll('iframe')) out[f.dataset.name] = measure(f);
  document.getElementById('result').textContent = JSON.stringify(out);
});
"""


def measure_pages(pages: dict[str, str], folder: Path, width: int = 1280) -> dict[str, dict[str, Any]]:
    """Lay out every page in a ``width`` px wide window of headless Chromium; measurements by page name.

    Per page: ``scrollWidth``/``clientWidth`` of the document, every ``<img>`` (``naturalWidth``),
    every ``.scroll`` container, elements reaching past the window outside such containers,
    every text node, and per ``<section>`` its rendered text (``innerText``: folded
    ``<details>`` left out), visible table rows and headers.
    """
    frames = "".join(
        f'<iframe data-name="{html.escape(name)}" style="width:{width}px;height:1000px;border:0;display:block" '
        f'srcdoc="{html.escape(text, quote=True)}"></iframe>'
        for name, text in pages.items()
    )
    wrapper = folder / "wrapper.html"
    wrapper.write_text(
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body style="margin:0">'
        f'{frames}<pre id="result"></pre><script>{MEASURE}</script></body></html>',
        encoding="utf-8",
    )
    assert CHROMIUM is not None
    proc = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={folder / 'profile'}",
         f"--window-size={width + 100},1000", "--virtual-time-budget=30000", "--dump-dom", wrapper.as_uri()],
        capture_output=True, text=True, timeout=180, check=True,
    )  # fmt: skip
    found = re.search(r'<pre id="result">(.*?)</pre>', proc.stdout, re.S)
    assert found and found.group(1), f"no measurements; chromium said: {proc.stderr[-2000:]}"
    result: dict[str, dict[str, Any]] = json.loads(html.unescape(found.group(1)))
    return result
