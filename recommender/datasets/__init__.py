"""Readers for the shared interaction data sets (MovieLens ml-latest-small, anime), replay order.

The data sets are not part of the project: they live in ``$RECOMMENDER_DATASETS``,
``../shared/datasets`` or the user's data folder (:func:`search_path`), where ``recommender
datasets fetch`` puts them (:mod:`recommender.datasets.fetch`). Callers must cope with their
absence (:func:`datasets_dir` returns None) and fall back to synthetic data.
"""

from __future__ import annotations

import csv
import math
import os
import re
import urllib.parse
from dataclasses import dataclass, field
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
    "default_root",
    "load_interactions",
    "load_items",
    "search_path",
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
    """An item's record as the demo publishes it: ``categories`` (MovieLens genres; anime
    genres and ``type:...``) and numeric ``attributes`` (MovieLens: the year in the title;
    anime: episodes, community rating, members, where known) are the ranker's item features."""

    id: str
    title: str
    url: str | None
    extra: dict[str, str]
    categories: tuple[str, ...] = ()
    attributes: dict[str, float] = field(default_factory=dict)


#: The source checkout this package runs from (an editable install), if it is one.
_CHECKOUT = Path(__file__).resolve().parents[2]


def _user_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "recommender" / "datasets"


def search_path() -> list[Path]:
    """The folders looked in for data sets, first match wins: ``$RECOMMENDER_DATASETS``,
    ``shared/datasets`` next to the checkout and next to the current folder, the user's data
    folder (``$XDG_DATA_HOME/recommender/datasets``)."""
    env = os.environ.get("RECOMMENDER_DATASETS")
    candidates = [Path(env)] if env else []
    candidates += [
        _CHECKOUT.parent / "shared" / "datasets",
        Path.cwd().parent / "shared" / "datasets",
        _user_data_dir(),
    ]
    return list(dict.fromkeys(candidates))  # the checkout's and the cwd's are often the same


def default_root() -> Path:
    """Where ``recommender datasets fetch`` puts data sets: ``$RECOMMENDER_DATASETS`` if set,
    else the user's data folder (never a folder it would create outside the checkout; a copy
    already in ``../shared/datasets`` is still found, see :func:`search_path`)."""
    env = os.environ.get("RECOMMENDER_DATASETS")
    return Path(env) if env else _user_data_dir()


def datasets_dir(name: DatasetName = "movielens") -> Path | None:
    """The first folder of :func:`search_path` that holds data set ``name``, or None on a
    machine without it."""
    for path in search_path():
        if dataset_file(name, path).is_file():
            return path
    return None


def _require(root: Path | None, name: DatasetName) -> Path:
    root = root or datasets_dir(name)
    if root is None:
        raise FileNotFoundError(
            f"the {name} data set is not on this machine (looked in $RECOMMENDER_DATASETS, "
            f"{_user_data_dir()} and ../shared/datasets): "
            f"`recommender datasets fetch {name.split('-')[0]}` gets it or says how; or use "
            "synthetic traffic"
        )
    return root


def dataset_file(name: DatasetName, root: Path | None = None) -> Path:
    """The interactions file of a shared data set (anime: the "watched" history; anime-ratings:
    the 1..10 ratings)."""
    root = _require(root, name)
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
    from ..evaluation.data import read_interactions  # the one reader of interaction files

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


def _movie_year(title: str) -> dict[str, float]:
    found = re.search(r"\((\d{4})\)\s*$", title)
    return {"year": float(found.group(1))} if found else {}


def _numbers(row: dict[str, str], fields: tuple[str, ...]) -> dict[str, float]:
    """The fields of ``row`` that are finite numbers ("Unknown" is left out)."""
    found = {}
    for name in fields:
        try:
            value = float(row[name])
        except (KeyError, ValueError):
            continue
        if math.isfinite(value):
            found[name] = value
    return found


def load_items(name: DatasetName, *, root: Path | None = None) -> list[ItemInfo]:
    """Item metadata: MovieLens titles with IMDb links, or anime names."""
    root = _require(root, name)
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
                    tuple(g for g in row["genres"].split("|") if g and "(" not in g),
                    _movie_year(row["title"]),
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
                (
                    *(g.strip() for g in row["genre"].split(",") if g.strip()),
                    *([f"type:{row['type']}"] if row["type"] else []),
                ),
                _numbers(row, ("episodes", "rating", "members")),
            )
            for row in csv.DictReader(f, delimiter="\t")
        ]
