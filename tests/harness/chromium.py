"""Pages checked in headless Chromium, as a person's browser lays them out: the trend page's and
report.html's tests share it. `measure_plots` has the page itself measure every chart (svg.plot) with a
small script appended to a copy of it, and reads what it wrote into the DOM from `--dump-dom`."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

# Per chart: its class and width, the labels outside its box, the pairs of labels that overlap, how many
# lines and markers are drawn (`drawn`: polylines and circles), each label's text, and how many elements
# of each class are drawn with a size (bars, samples, p50 and p90 lines).
CHECK = """<script>
const found = [...document.querySelectorAll("svg.plot")].map(svg => {
  const box = svg.getBoundingClientRect();
  const texts = [...svg.querySelectorAll("text")].filter(t => t.textContent.trim());
  const rects = texts.map(t => t.getBoundingClientRect());
  const outside = texts.filter((t, i) => rects[i].left < box.left - 0.5 || rects[i].right > box.right + 0.5 ||
    rects[i].top < box.top - 0.5 || rects[i].bottom > box.bottom + 0.5).map(t => t.textContent);
  const overlapping = [];
  rects.forEach((a, i) => rects.slice(i + 1).forEach((b, j) => {
    if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom)
      overlapping.push([texts[i].textContent, texts[i + 1 + j].textContent]);
  }));
  const sized = e => { const r = e.getBoundingClientRect(); return r.width > 0 || r.height > 0; };
  const drawn = [...svg.querySelectorAll("polyline, circle")].filter(sized).length;
  const marks = {};
  [...svg.querySelectorAll("[class]")].filter(sized).forEach(e => {
    const c = e.getAttribute("class"); marks[c] = (marks[c] || 0) + 1; });
  return {cls: svg.getAttribute("class"), outside, overlapping, drawn, width: box.width,
          texts: texts.map(t => t.textContent), marks};
});
const out = document.createElement("pre"); out.id = "check"; out.textContent = JSON.stringify(found);
document.body.appendChild(out);
</script>"""


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Headless Chromium with a profile of its own in `tmp`, no network of its own accord."""
    if shutil.which("chromium") is None:
        pytest.fail("chromium is missing: the HTML pages are checked in it (scripts/setup --test installs it)",
                    pytrace=False)
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                           "--disable-component-update", "--disable-sync", "--no-first-run",
                           f"--user-data-dir={tmp / 'chrome'}", *args], capture_output=True, text=True, timeout=90,
                          env={**os.environ, "HOME": str(tmp)})


def measure_plots(page: Path, tmp: Path) -> list[dict[str, Any]]:
    """What CHECK found of every chart of the page, laid out at Chromium's default window size."""
    checked = tmp / f"checked-{page.name}"
    checked.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    result = chromium("--dump-dom", checked.as_uri(), tmp=tmp)
    assert result.returncode == 0, result.stderr[-2000:]
    found = re.search(r'<pre id="check">(.*?)</pre>', result.stdout, re.S)
    assert found, result.stdout[-2000:]
    return json.loads(html.unescape(found[1]))


def assert_labels_clear(chart: dict[str, Any]) -> None:
    """No label of the chart is cut off by its box or lies on another."""
    assert chart["outside"] == [], f"{chart['cls']}: labels cut off: {chart['outside']}"
    assert chart["overlapping"] == [], f"{chart['cls']}: labels on top of each other: {chart['overlapping']}"
