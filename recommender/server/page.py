"""The live page served at ``/``: one HTML file and the charting library it loads, no build step.

The charts are drawn by uPlot (MIT, vendored under ``static/vendor`` with its licence): 50 KiB
against Chart.js's 208 KiB, and in headless Chromium it built a 60-point chart in 7 ms against
59 ms (median of 5; ``bench/page_charts.py``). Vendored so the
page works without internet access, as the rest of the service does.
"""

from importlib.resources import files

__all__ = ["INDEX_HTML", "PAGE_ASSETS"]

_STATIC = files(__package__).joinpath("static")

INDEX_HTML = _STATIC.joinpath("index.html").read_text(encoding="utf-8")

#: Files the page loads from ``/static/vendor/{name}``: name -> (content, content type).
PAGE_ASSETS: dict[str, tuple[bytes, str]] = {
    "uPlot.iife.min.js": (
        _STATIC.joinpath("vendor/uPlot.iife.min.js").read_bytes(),
        "application/javascript",
    ),
    "uPlot.min.css": (_STATIC.joinpath("vendor/uPlot.min.css").read_bytes(), "text/css"),
    # its MIT licence travels with the copy the browser gets
    "uPlot.LICENSE": (_STATIC.joinpath("vendor/uPlot.LICENSE").read_bytes(), "text/plain"),
}
