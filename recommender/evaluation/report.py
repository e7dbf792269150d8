"""The ``recommender evaluate`` report: Markdown, JSON and plots written to one folder."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..models import Setting
from ..models.als_training import AlsParams
from .data import Interactions

__all__ = ["Report", "draw_models", "fmt", "params_text"]


def setting_text(setting: Setting) -> str:
    """A setting for people: ALS's four numbers, or a family and its parameters."""
    if setting.family == "als":
        return params_text(AlsParams(**setting.params))
    values = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}"
                       for k, v in sorted(setting.params.items()))  # fmt: skip
    return f"{setting.family}: {values}"


def params_text(p: AlsParams) -> str:
    return (
        f"factors {p.factors}, regularization {p.regularization:.3g}, alpha {p.alpha:.3g}, "
        f"iterations {p.iterations}"
    )


class Report:
    """Collects Markdown, JSON and plots for one run."""

    def __init__(
        self, *, output_dir: Path, plots: bool, data_file: Path, seed: int, data: Interactions
    ) -> None:
        self.output_dir, self.plots = output_dir, plots
        self.lines: list[str] = []
        #: One line per protocol (its headline, or why it did not run), written at the top.
        self.summary: list[str] = []
        self._summary_at = 0
        self.json: dict[str, Any] = {
            "data": {
                "file": str(data_file),
                "source": data.source,
                "events": len(data),
                "users": data.n_users,
                "items": data.n_items,
            },
            "seed": seed,
        }
        output_dir.mkdir(parents=True, exist_ok=True)

    def md(self, *lines: str) -> None:
        self.lines.extend(lines)

    def summary_here(self) -> None:
        """Put the summary at this point of the Markdown (after the title and data line)."""
        self._summary_at = len(self.lines)

    def mark(self) -> tuple[int, int]:
        """Where the Markdown and the summary stand now, for :meth:`discard_from`."""
        return len(self.lines), len(self.summary)

    def discard_from(self, mark: tuple[int, int]) -> None:
        """Drop the Markdown and summary lines written since ``mark`` (a section that failed
        half-way must not look complete)."""
        del self.lines[max(mark[0], self._summary_at) :]
        del self.summary[mark[1] :]

    def table(self, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
        self.md("| " + " | ".join(header) + " |", "|" + " --- |" * len(header))
        for row in rows:
            self.md("| " + " | ".join(fmt(c) for c in row) + " |")
        self.md("")

    def plot(self, name: str, draw: Any, *, size: tuple[float, float] = (7, 4.2)) -> None:
        if not self.plots:
            return
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=size, dpi=110)
        draw(ax)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(self.output_dir / name)
        plt.close(fig)
        self.md(f"![{name}]({name})", "")

    def write(self) -> None:
        """(Re)write report.md and report.json with everything collected so far."""
        at = self._summary_at
        summary = ["## Summary", "", *[f"- {line}" for line in self.summary], ""]
        lines = [*self.lines[:at], *(summary if self.summary else []), *self.lines[at:]]
        (self.output_dir / "report.md").write_text("\n".join(lines) + "\n")
        (self.output_dir / "report.json").write_text(
            json.dumps(self.json, indent=2, default=_jsonable) + "\n"
        )


def fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) < 10 else f"{value:,.1f}"
    return str(value)


def _jsonable(value: object) -> object:
    if isinstance(value, AlsParams):
        return value.to_dict()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON: {type(value)}")


def draw_models(ax: Any, ndcg: dict[str, list[float]], ks: Sequence[int], title: str) -> None:
    """NDCG of each model: for one k a horizontal bar per model (best at the top, its value
    written at its end); for several, a line per model. Each model its own colour and, for
    lines, its own marker, with the legend beside the plot, never over it."""
    import matplotlib

    tab20 = matplotlib.colormaps["tab20"]
    colours = [tab20(i / 19) for i in range(20)]
    names = sorted(ndcg, key=lambda n: ndcg[n][0])
    if len(ks) == 1:
        values = [ndcg[n][0] for n in names]
        bars = ax.barh(
            range(len(names)), values, color=[colours[i % 20] for i in range(len(names))]
        )
        ax.set_yticks(range(len(names)), names, fontsize=7)
        ax.bar_label(bars, fmt="%.3f", fontsize=7, padding=2)
        ax.set_xlabel(f"NDCG@{ks[0]}")
        ax.set_xlim(0, max([*values, 0.0]) * 1.18 or 1.0)
    else:
        markers = "osD^v<>pX*h"
        for i, n in enumerate(reversed(names)):
            ax.plot(list(ks), ndcg[n], marker=markers[i % len(markers)], color=colours[i % 20],
                    label=n)  # fmt: skip
        ax.set_xlabel("k")
        ax.set_ylabel("NDCG@k")
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    ax.set_title(title)
