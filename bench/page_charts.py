"""The page's charting library, chosen by measuring: uPlot against Chart.js in headless Chromium.

Each builds a 60-point line chart (what the page draws), then redraws it with new data 200
times; the figures are medians of 5 fresh pages. uPlot defers drawing new data to the next
animation frame, so its "redrawn" figure is the cost of handing the data over, not of drawing;
size and build time decided.

    mkdir -p /tmp/charts && cd /tmp/charts && npm pack uplot@1.6.32 chart.js@4.6.2 \\
        && for f in *.tgz; do tar xzf "$f" && mv package "${f%.tgz}"; done && cd -
    .venv/bin/python bench/page_charts.py /tmp/charts
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

UPLOT = """
    const t0 = performance.now();
    const xs = [...Array(60).keys()].map((k) => 1.7e9 + 60 * k);
    const u = new uPlot({ width: 400, height: 160,
                          series: [{}, { label: "hit rate", stroke: "#06c" }],
                          axes: [{}, { label: "%" }] },
                        [xs, xs.map(() => Math.random())], document.getElementById("c"));
    const created = performance.now() - t0;
    const t1 = performance.now();
    for (let i = 0; i < 200; i++) u.setData([xs, xs.map(() => Math.random())]);
    return [created, (performance.now() - t1) / 200];
"""

CHARTJS = """
    const canvas = document.createElement("canvas");
    canvas.width = 400; canvas.height = 160;
    document.getElementById("c").append(canvas);
    const t0 = performance.now();
    const xs = [...Array(60).keys()].map((k) => String(k));
    const chart = new Chart(canvas, { type: "line",
      data: { labels: xs, datasets: [{ label: "hit rate", data: xs.map(() => Math.random()) }] },
      options: { animation: false, responsive: false } });
    const created = performance.now() - t0;
    const t1 = performance.now();
    for (let i = 0; i < 200; i++) {
      chart.data.datasets[0].data = xs.map(() => Math.random());
      chart.update("none");
    }
    return [created, (performance.now() - t1) / 200];
"""


def main(packages: Path) -> None:
    libraries = {
        "uPlot 1.6.32": (packages / "uplot-1.6.32/dist/uPlot.iife.min.js", UPLOT),
        "Chart.js 4.6.2": (packages / "chart.js-4.6.2/dist/chart.umd.min.js", CHARTJS),
    }
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", headless=True, args=["--no-sandbox"]
        )
        for name, (path, code) in libraries.items():
            script = path.read_text()
            runs = []
            for _ in range(5):
                page = browser.new_page()
                page.set_content("<div id=c></div>")
                page.add_script_tag(content=script)
                runs.append(page.evaluate("() => {" + code + "}"))
                page.close()
            created = statistics.median(r[0] for r in runs)
            redrawn = statistics.median(r[1] for r in runs)
            print(
                f"{name:15s} {len(script) / 1024:6.1f} KiB  built in {created:5.1f} ms"
                f"  redrawn in {redrawn:5.2f} ms  (median of 5)"
            )
        browser.close()


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "."))
