"""Open Snakemake's HTML report in headless Chromium and check that it shows every figure.

The report is a single-page app: its figures are data URIs in a ``results`` object, shown when
the app's view is set to one. For each figure a copy of the page gets a few lines that set that
view once it has loaded; Chromium renders it to a screenshot, which must differ from the same
view holding an empty image: the changed pixels in the content area (right of the navigation
bar) must span a real figure, not a blank or broken one. A first screenshot of the start page
checks that the app renders at all (text and colours on the page, in a light or a dark theme).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from prunebench.core.errors import UserError
from prunebench.core.forms import ReportResults, validate

log = logging.getLogger("prunebench")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1400, 1000)
NAVBAR = 300  # px: the report's navigation bar on the left; the content is to its right
SHOW = """<script>window.addEventListener("load", function () { setTimeout(function () {
  var path = %s;
  app.setView({content: "img", contentPath: results[path] ? results[path].data_uri : "data:,", resultPath: path});
}, 300); });</script>"""


def find_browser() -> str | None:
    return next((shutil.which(b) for b in BROWSERS if shutil.which(b)), None)


def figures(report_html: str, source: str = "the file") -> list[str]:
    """The paths of the images the report holds (its ``results`` object, checked against its form)."""
    fix = ReportResults.FIX
    match = re.search(r"var results = (\{.*?\});\s*</script>", report_html, re.S)
    if not match:
        raise UserError(f"{source} is not a Snakemake HTML report (no results in it); {fix}")
    try:
        results = json.loads(match.group(1))
    except json.JSONDecodeError as e:
        raise UserError(f"{source}: the report's embedded results are not JSON ({e.msg}); {fix}") from None
    validate(ReportResults, {"results": results}, source)
    return sorted(path for path, entry in results.items() if str(entry.get("mime_type", "")).startswith("image/"))


def screenshot(browser: str, page: Path, out: Path) -> np.ndarray:
    """Chromium's rendering of ``page`` as an RGB array (after its scripts ran)."""
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={WINDOW[0]},{WINDOW[1]}",
           "--virtual-time-budget=5000", f"--screenshot={out}", page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0 or not out.is_file():
        raise UserError(f"{browser} could not render {page.name} (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1:] or ''}")
    return np.asarray(Image.open(out).convert("RGB"), dtype=np.int16)


def _inked(pixels: np.ndarray) -> float:
    """Share of pixels that are not near-white."""
    return float((pixels.min(axis=2) < 235).mean())


def check_report(report: str | Path, shots: str | Path) -> list[dict]:
    """Screenshots of the start page and of every figure under ``shots``; one dict per figure
    with its measurements and ``ok``. Raises a one-line UserError if the report cannot be opened."""
    report, shots = Path(report), Path(shots)
    try:
        text = report.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UserError(f"cannot read the report {report} ({getattr(e, 'strerror', None) or type(e).__name__}); build it with 'snakemake --report'") from None
    paths = figures(text, str(report))
    browser = find_browser()
    if browser is None:
        raise UserError(f"no headless browser found ({', '.join(BROWSERS)}); install Chromium (apt-get install chromium)")
    shots.mkdir(parents=True, exist_ok=True)
    start = screenshot(browser, report.resolve(), shots / "start.png")
    if _inked(start) < 0.01 or len(np.unique(start.reshape(-1, 3)[::7], axis=0)) <= 8:
        raise UserError(f"{report} renders blank in {browser}: the report app did not start; see {shots / 'start.png'}")
    cut = text.rindex("</body>")  # the last one: the page's own (scripts inside quote the tag too)
    out = []
    with tempfile.TemporaryDirectory() as tmp:

        def shot_of(path: str, name: str) -> np.ndarray:
            page = Path(tmp) / f"{name}.html"
            page.write_text(text[:cut] + SHOW % json.dumps(path) + text[cut:], encoding="utf-8")
            return screenshot(browser, page, shots / f"{name}.png")

        empty = shot_of("(no figure)", "empty")[:, NAVBAR:]
        for i, path in enumerate(paths):
            name = f"figure{i:02d}-{Path(path).stem}"
            content = shot_of(path, name)[:, NAVBAR:]
            changed = np.abs(content - empty).max(axis=2) > 30
            rows, cols = np.flatnonzero(changed.any(axis=1)), np.flatnonzero(changed.any(axis=0))
            height = (rows[-1] - rows[0] + 1) / changed.shape[0] if len(rows) else 0.0
            width = (cols[-1] - cols[0] + 1) / changed.shape[1] if len(cols) else 0.0
            colours = len(np.unique(content[changed][::7], axis=0)) if changed.any() else 0
            ok = height > 0.1 and width > 0.2 and float(changed.mean()) > 0.002 and colours > 8
            out.append({"figure": path, "screenshot": str(shots / f"{name}.png"), "changed": round(float(changed.mean()), 4),
                        "width": round(float(width), 3), "height": round(float(height), 3), "colours": colours, "ok": ok})
            log.info("%s %s: changed %.1f %% of the content over %.0f %% x %.0f %% of it, %d colours", "shown" if ok else "NOT SHOWN", path, 100 * changed.mean(), 100 * width, 100 * height, colours)
    return out
