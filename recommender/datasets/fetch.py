"""Getting the data sets onto a machine: download, verify, extract (``recommender datasets``).

MovieLens ml-latest-small is downloaded from GroupLens and checked file by file against the
SHA-256 of the copy the project's figures were made with. The anime subset has no direct
download: :data:`ANIME_HOWTO` says where to get it and the layout the readers expect.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from ..errors import RecommenderError

__all__ = [
    "ANIME",
    "ANIME_HOWTO",
    "MOVIELENS",
    "MOVIELENS_LICENCE",
    "MOVIELENS_URL",
    "URL_ENV",
    "DatasetFiles",
    "fetch_movielens",
    "verify",
]

MOVIELENS_URL = "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
#: Overrides the download's source (a mirror, a file:// URL, a test server); --url wins over it.
URL_ENV = "RECOMMENDER_MOVIELENS_URL"
#: More than the zip (under 1 MB) will ever be: a wrong URL must not fill the disk.
MAX_DOWNLOAD_BYTES = 64 << 20
_CHUNK = 1 << 16


@dataclass(frozen=True, slots=True)
class DatasetFiles:
    """A data set's folder (under the data-sets root) and its files: name -> (SHA-256, bytes)."""

    folder: str
    files: dict[str, tuple[str, int]]


MOVIELENS = DatasetFiles(
    "movielens-latest-small",
    {
        "ratings.csv": (
            "aa289ca83157595d0df6aea1be6a4ded676ddc4385472e8313a8ed9805352646",
            2483723,
        ),
        "movies.csv": ("5a5f32dd9bb3797b8e728a1b98958789d2b13f294a69fdfbc5727f8a9611aa07", 494431),
        "links.csv": ("97ad18e4e56a09363c65676b6cb3482ce3e2cea2372a24620c1599c843325f31", 197979),
        "tags.csv": ("92a9f8bb7916dceef6151209845788c3643f794dfa79d1feaec7121b5960399d", 118660),
        "README.txt": ("63d22ac138e80fae37021797ed8e1b9424b5239dc576a137422adf783ae3f404", 8342),
    },
)
ANIME = DatasetFiles(
    "anime",
    {
        "anime_ratings.dat": (
            "30e4172121bc511b97155a8812a0fbfd0c72015adfd0e56e92fdb53d4741886b",
            4691116,
        ),
        "anime_history.dat": (
            "7471f79e408910bf72e2aa2fc7c9fb754d9185fe351e7547979669b57e931c7e",
            5750512,
        ),
        "anime_info.dat": (
            "1fbbadd4cc02276e4119062810835a3a6930d40ed1bd7d32df8d867731cc518b",
            577358,
        ),
    },
)

MOVIELENS_LICENCE = """\
MovieLens ml-latest-small (c) GroupLens Research, University of Minnesota. Usage licence, in short
(the full terms are in README.txt next to the data):
  - research use only; commercial or revenue-bearing use needs permission from GroupLens;
  - do not state or imply endorsement by the University of Minnesota or GroupLens;
  - redistribution, transformed or not, only under these same licence conditions;
  - acknowledge it in publications by citing: F. Maxwell Harper and Joseph A. Konstan. 2015.
    The MovieLens Datasets: History and Context. ACM Transactions on Interactive Intelligent
    Systems (TiiS) 5, 4: 19:1-19:19. https://doi.org/10.1145/2827872"""

ANIME_HOWTO = """\
The anime data set cannot be downloaded by this command: it is the CaseRec-processed subset
(5,000 random users, random.seed(123), ids renumbered from 1) of Kaggle's "Anime Recommendations
Database" (MyAnimeList data, https://www.kaggle.com/CooperUnion/anime-recommendations-database).
Get it from https://github.com/caserec/Datasets-for-Recommender-Systems, folder
"Processed Datasets/Anime" (anime.zip), check its terms there and on Kaggle, and put these files in
{folder}/ (tab-separated, UTF-8, one header line each):

  anime_ratings.dat  User_ID<TAB>Anime_ID<TAB>Feedback   419,944 ratings 1-10 (4,714 users,
                                                         7,157 anime), sorted by user id
  anime_history.dat  User_ID<TAB>Anime_ID<TAB>Feedback   520,610 "watched" events, feedback 1
                                                         (5,000 users, 7,390 anime)
  anime_info.dat     anime_ids<TAB>name<TAB>genre<TAB>type<TAB>episodes<TAB>rating<TAB>members
                     anime_ids are the Anime_ID above; genre is a comma-separated list

No timestamps: the demo replays the ratings shuffled with a fixed seed. Then run
`recommender datasets fetch anime` again to check the files (SHA-256 of the subset the project's
figures were made with)."""

#: The header line each anime file must start with (the readers go by these column names).
ANIME_HEADERS = {
    "anime_ratings.dat": "User_ID\tAnime_ID\tFeedback",
    "anime_history.dat": "User_ID\tAnime_ID\tFeedback",
    "anime_info.dat": "anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers",
}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify(folder: Path, spec: DatasetFiles) -> list[str]:
    """What is wrong with ``folder`` as a copy of ``spec``, one phrase a file (empty: all good).

    Sizes are compared first, so a wrong file costs no hashing.
    """
    problems = []
    for name, (sha, size) in spec.files.items():
        path = folder / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif (got := path.stat().st_size) != size:
            problems.append(f"{name} has {got:,} bytes, expected {size:,}")
        elif (digest := _sha256(path)) != sha:
            problems.append(f"{name} has SHA-256 {digest[:16]}..., expected {sha[:16]}...")
    return problems


def _download(url: str, out: IO[bytes]) -> None:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            total = 0
            while chunk := response.read(_CHUNK):
                total += len(chunk)
                if total > MAX_DOWNLOAD_BYTES:
                    raise RecommenderError(
                        f"{url} sent more than {MAX_DOWNLOAD_BYTES >> 20} MiB: not the MovieLens "
                        f"zip; check --url or ${URL_ENV}"
                    )
                out.write(chunk)
    except urllib.error.HTTPError as exc:
        raise RecommenderError(
            f"cannot download {url}: HTTP {exc.code} {exc.reason}; check --url or ${URL_ENV}, "
            "or try again later"
        ) from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise RecommenderError(
            f"cannot download {url}: {reason}; check the network (or $https_proxy), or download "
            "the zip on another machine and pass --url file:///path/to/ml-latest-small.zip"
        ) from None


def _extract(archive: Path, url: str, staging: Path, spec: DatasetFiles) -> None:
    """Copy the files ``spec`` lists out of the zip (by base name, wherever they sit in it) into
    ``staging``, checking each one's size and SHA-256 as it is written."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise RecommenderError(
            f"{url} did not send a zip file; check --url or ${URL_ENV}, or try again later"
        ) from None
    with zf:
        # Our own names are written, never the members' paths: nothing lands outside staging.
        members = {Path(info.filename).name: info for info in zf.infolist() if not info.is_dir()}
        for name, (sha, size) in spec.files.items():
            info = members.get(name)
            if info is None:
                raise RecommenderError(
                    f"{url} has no {name}: not ml-latest-small; check --url or ${URL_ENV}"
                )
            digest, written = hashlib.sha256(), 0
            with zf.open(info) as src, (staging / name).open("wb") as dst:
                while (chunk := src.read(_CHUNK)) and written <= size:
                    digest.update(chunk)
                    dst.write(chunk)
                    written += len(chunk)
            if written != size or digest.hexdigest() != sha:
                raise RecommenderError(
                    f"checksum mismatch: {name} from {url} is not the ml-latest-small file the "
                    f"project expects (SHA-256 {sha[:16]}..., {size:,} bytes); the download is "
                    "damaged or GroupLens changed the data set: try again, or report it"
                )


def fetch_movielens(root: Path, url: str) -> Path:
    """Download ml-latest-small from ``url`` into ``root``/movielens-latest-small, verified.

    The files are checked in a staging folder inside ``root`` and moved into place in one
    rename, so an interrupted or refused download leaves nothing half-written. An existing
    folder is never overwritten.

    Returns
    -------
    Path
        The data set's folder.

    Raises
    ------
    RecommenderError
        No network, a bad URL, a checksum mismatch, an unwritable ``root``, or a folder already
        there that is not this data set.
    """
    target = root / MOVIELENS.folder
    if target.exists():
        problems = verify(target, MOVIELENS)
        if not problems:
            return target
        raise RecommenderError(
            f"{target} exists but is not ml-latest-small ({problems[0]}); move it away and fetch "
            "again, or pass --dest DIR"
        )
    try:
        root.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".fetch-movielens-", dir=root))
    except OSError as exc:
        raise RecommenderError(
            f"cannot write to {root}: {exc.strerror or exc}; pass --dest DIR (a folder you can "
            "write) and set RECOMMENDER_DATASETS=DIR"
        ) from None
    try:
        archive = work / "ml-latest-small.zip"
        with archive.open("wb") as out:
            _download(url, out)
        staging = work / MOVIELENS.folder
        staging.mkdir()
        _extract(archive, url, staging, MOVIELENS)
        os.replace(staging, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def check_anime(folder: Path) -> tuple[list[str], list[str]]:
    """The anime files' layout problems (missing files, wrong header lines: the readers would
    fail) and, separately, their differences from the subset the project's figures used."""
    layout = []
    for name, header in ANIME_HEADERS.items():
        path = folder / name
        if not path.is_file():
            layout.append(f"{name} is missing")
            continue
        with path.open(encoding="utf-8", errors="replace") as f:
            first = f.readline().rstrip("\r\n")
        if first != header:
            layout.append(f"{name} starts with {first[:60]!r}, expected {header!r}")
    return layout, ([] if layout else verify(folder, ANIME))
