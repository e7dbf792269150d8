"""Readers for the shared interaction data sets (MovieLens ml-latest-small, anime), replay order.

The data sets are not part of the project: they live in ``../shared/datasets`` (or
``$RECOMMENDER_DATASETS``). Callers must cope with their absence (:func:`datasets_dir` returns
None) and fall back to synthetic data.
"""

from __future__ import annotations

import csv
import os
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "RATING_SCALES",
    "DatasetName",
    "ItemInfo",
    "Replay",
    "dataset_file",
    "datasets_dir",
    "load_interactions",
    "load_items",
]

DatasetName = Literal["movielens", "anime", "anime-ratings"]
#: The rating scale of each data set's weights (the demo's builder declares it).
RATING_SCALES: dict[str, str | None] = {
    "movielens": "0.5..5",
    "anime": None,
    "anime-ratings": "1..10",
}


@dataclass(frozen=True, slots=True)
class Replay:
    """Events in replay order: ids as strings, weights, and (where known) Unix seconds."""

    users: list[str]
    items: list[str]
    weights: npt.NDArray[np.float32]
    timestamps: npt.NDArray[np.int64] | None
    order: str

    def __len__(self) -> int:
        return len(self.users)


@dataclass(frozen=True, slots=True)
class ItemInfo:
    id: str
    title: str
    url: str | None
    extra: dict[str, str]


def datasets_dir() -> Path | None:
    """Where the shared data sets are, or None on a machine without them."""
    env = os.environ.get("RECOMMENDER_DATASETS")
    candidates = [Path(env)] if env else []
    here = Path(__file__).resolve().parent.parent
    candidates += [here.parent / "shared" / "datasets", Path.cwd().parent / "shared" / "datasets"]
    for path in candidates:
        if (path / "movielens-latest-small" / "ratings.csv").is_file():
            return path
    return None


def _require(root: Path | None) -> Path:
    root = root or datasets_dir()
    if root is None:
        raise FileNotFoundError(
            "the shared data sets are not on this machine (looked for ../shared/datasets and "
            "$RECOMMENDER_DATASETS); use synthetic traffic instead"
        )
    return root


def dataset_file(name: DatasetName, root: Path | None = None) -> Path:
    """The interactions file of a shared data set (anime: the "watched" history; anime-ratings:
    the 1..10 ratings)."""
    root = _require(root)
    if name == "movielens":
        return root / "movielens-latest-small" / "ratings.csv"
    if name == "anime-ratings":
        return root / "anime" / "anime_ratings.dat"
    return root / "anime" / "anime_history.dat"


def load_interactions(
    name: DatasetName,
    *,
    root: Path | None = None,
    min_rating: float | None = None,
    seed: int = 7,
    limit: int | None = None,
) -> Replay:
    """Load a data set in the order it should be replayed.

    MovieLens: by timestamp (stable, so ties keep file order). Anime (``anime_history.dat``, no
    timestamps): shuffled with ``seed``. ``min_rating`` keeps only ratings at or above it.
    """
    from .evaluation.data import read_interactions  # the one reader of interaction files

    data = read_interactions(dataset_file(name, root), min_rating=min_rating)
    if data.timestamps is not None:
        order = np.argsort(data.timestamps, kind="stable")
        how = "by timestamp"
    else:
        order = np.random.default_rng(seed).permutation(len(data))
        how = f"shuffled (seed {seed})"
    order = order[:limit] if limit is not None else order
    return Replay(
        users=[data.user_ids[u] for u in data.users[order].tolist()],
        items=[data.item_ids[i] for i in data.items[order].tolist()],
        weights=data.weights[order],
        timestamps=None if data.timestamps is None else data.timestamps[order],
        order=how,
    )


def load_items(name: DatasetName, *, root: Path | None = None) -> list[ItemInfo]:
    """Item metadata: MovieLens titles with IMDb links, or anime names."""
    root = _require(root)
    if name == "movielens":
        base = root / "movielens-latest-small"
        with (base / "links.csv").open(newline="", encoding="utf-8") as f:
            imdb = {row["movieId"]: row["imdbId"] for row in csv.DictReader(f)}
        with (base / "movies.csv").open(newline="", encoding="utf-8") as f:
            return [
                ItemInfo(
                    row["movieId"],
                    row["title"],
                    f"https://www.imdb.com/title/tt{imdb[row['movieId']]}/"
                    if row["movieId"] in imdb
                    else None,
                    {"genres": row["genres"]},
                )
                for row in csv.DictReader(f)
            ]
    with (root / "anime" / "anime_info.dat").open(newline="", encoding="utf-8") as f:
        # The ids were renumbered by the processor: link to a search on the title instead.
        return [
            ItemInfo(
                row["anime_ids"],
                row["name"],
                "https://myanimelist.net/anime.php?" + urllib.parse.urlencode({"q": row["name"]}),
                {"genre": row["genre"], "type": row["type"]},
            )
            for row in csv.DictReader(f, delimiter="\t")
        ]
