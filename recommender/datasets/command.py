"""``recommender datasets list|where|fetch``: which data sets are here, where they are looked
for, and getting them (MovieLens downloaded and verified; anime: where to get it)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from ..cli.options import add_common
from ..errors import RecommenderError
from . import DatasetName, datasets_dir, default_root, search_path
from .fetch import (
    ANIME,
    ANIME_HOWTO,
    MOVIELENS,
    MOVIELENS_LICENCE,
    MOVIELENS_URL,
    URL_ENV,
    check_anime,
    fetch_movielens,
)

__all__ = ["add_datasets_command"]

#: name -> (what it is, its folder under a data-sets root).
KNOWN: dict[DatasetName, tuple[str, str]] = {
    "movielens": (
        "MovieLens ml-latest-small: 100,836 ratings 0.5-5, 9,742 movies",
        MOVIELENS.folder,
    ),
    "anime": (
        "anime (CaseRec subset of Kaggle's): 419,944 ratings 1-10, 7,157 anime",
        ANIME.folder,
    ),
}


def _where_it_is_used(name: DatasetName, root: Path) -> None:
    """Say so when the readers (and the demo) would not pick up the copy in ``root``."""
    found = datasets_dir(name)
    if found is None or found.resolve() != root.resolve():
        first = f"they use {found}" if found else "they will not find it"
        print(
            f"note: the demo looks in {', '.join(map(str, search_path()))} ({first}): "
            f"export RECOMMENDER_DATASETS={root}"
        )


def run_list(args: argparse.Namespace) -> int:
    for name, (what, folder) in KNOWN.items():
        root = datasets_dir(name)
        where = root / folder if root else f"not here: recommender datasets fetch {name}"
        print(f"{name:<10} {what}\n{'':<10} {where}")
    return 0


def run_where(args: argparse.Namespace) -> int:
    print("data sets are looked for in these folders, first match wins:")
    for path in search_path():
        here = [name for name in KNOWN if datasets_dir(name) == path]
        print(f"  {path}  ({', '.join(here) if here else 'none used from here'})")
    if not os.environ.get("RECOMMENDER_DATASETS"):
        print("set $RECOMMENDER_DATASETS to look in another folder first")
    print(f"`recommender datasets fetch` puts new ones in {default_root()}")
    return 0


def run_fetch(args: argparse.Namespace) -> int:
    if args.if_missing and not args.dest and (found := datasets_dir(args.name)) is not None:
        print(f"{args.name}: using {found / KNOWN[args.name][1]}")
        return 0
    if args.name == "anime":
        if args.url:
            raise RecommenderError("--url is for movielens only: the anime set is not downloaded")
        return _anime(args.dest)
    url = args.url or os.environ.get(URL_ENV) or MOVIELENS_URL
    # Without --dest, a copy the readers already find is checked rather than fetched again.
    root = args.dest or datasets_dir("movielens") or default_root()
    target = root / MOVIELENS.folder
    there = target.exists()
    print(f"checking {target}" if there else f"downloading {url} into {root}", flush=True)
    folder = fetch_movielens(root, url)
    print(f"movielens: {len(MOVIELENS.files)} files verified (SHA-256) in {folder}")
    _where_it_is_used("movielens", root)
    print(f"\n{MOVIELENS_LICENCE}")
    return 0


def _anime(dest: Path | None) -> int:
    root = dest or datasets_dir("anime") or default_root()
    folder = root / ANIME.folder
    layout, differs = check_anime(folder)
    if layout:
        print(ANIME_HOWTO.format(folder=folder))
        if folder.exists():
            print(f"\n{folder} is not usable yet: {'; '.join(layout)}")
        return 1  # not an error, but nothing to run the anime demo with yet
    if differs:
        print(
            f"anime: {folder} has the expected layout, but is not the subset the project's "
            f"figures used ({differs[0]}): results will differ from EVALUATION.md"
        )
    else:
        print(f"anime: {len(ANIME.files)} files verified (SHA-256) in {folder}")
    _where_it_is_used("anime", root)
    return 0


def add_datasets_command(commands: Any) -> None:
    """Add ``datasets`` and its three subcommands to the CLI's subparsers ``commands``."""
    parser = commands.add_parser(
        "datasets", help="the demo's data sets: which are here, where, and fetching them"
    )
    sub = parser.add_subparsers(dest="datasets_command", required=True)
    listing = sub.add_parser("list", help="the known data sets and where each one is")
    listing.set_defaults(run=run_list)
    where = sub.add_parser("where", help="the folders looked in, and where fetch puts data sets")
    where.set_defaults(run=run_where)
    fetch = sub.add_parser(
        "fetch",
        help="movielens: download, verify (SHA-256) and extract; anime: say where to get it "
        "(exit 1 until its files are in place)",
    )
    fetch.add_argument("name", choices=list(KNOWN))
    fetch.add_argument(
        "--dest",
        type=Path,
        help="the data-sets folder to fill (default: where the data set already is, else "
        "$RECOMMENDER_DATASETS, else ../shared/datasets next to a source checkout, else "
        "~/.local/share/recommender/datasets; see `recommender datasets where`)",
    )
    fetch.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the readers already find a copy, whatever its version (make demo)",
    )
    fetch.add_argument(
        "--url",
        help=f"where to download MovieLens from: a mirror or file:// URL (default: ${URL_ENV}, "
        f"else {MOVIELENS_URL})",
    )
    fetch.set_defaults(run=run_fetch)
    for command in (listing, where, fetch):
        add_common(command)
