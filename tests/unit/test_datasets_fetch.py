"""``recommender datasets``: MovieLens fetched over real HTTP (a loopback server standing in for
GroupLens), verified and laid out where the readers look; refusals are one line and exit 2."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import zipfile
from pathlib import Path

import pytest

from recommender.datasets import datasets_dir, load_interactions
from recommender.datasets.fetch import MOVIELENS, verify

ROOT = Path(__file__).resolve().parents[2]


def recommender(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """The real command, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "recommender", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def movielens_files() -> Path:
    """A verified local copy of ml-latest-small to build the served zips from."""
    root = datasets_dir("movielens")
    if root is None:
        pytest.skip("no local ml-latest-small to serve (../shared/datasets/movielens-latest-small)")
    folder = root / MOVIELENS.folder
    if problems := verify(folder, MOVIELENS):
        pytest.skip(f"the local ml-latest-small is another version: {problems[0]}")
    return folder


def build_zip(source: Path, out: Path, *, damage: str | None = None) -> Path:
    """A zip laid out as GroupLens publishes it (ml-latest-small/<file>); ``damage`` flips one
    byte of that file, keeping its size."""
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in MOVIELENS.files:
            data = (source / name).read_bytes()
            if name == damage:
                data = data[:-2] + bytes([data[-2] ^ 1]) + data[-1:]
            zf.writestr(f"ml-latest-small/{name}", data)
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def serve():
    """serve(folder) -> the base URL of a real HTTP server on 127.0.0.1 serving ``folder``."""
    servers: list[http.server.ThreadingHTTPServer] = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/ml-latest-small.zip"


def one_error_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_fetch_downloads_verifies_and_lays_out_what_the_readers_use(
    movielens_files, serve, tmp_path
):
    site = tmp_path / "site"
    site.mkdir()
    build_zip(movielens_files, site / "ml-latest-small.zip")
    dest = tmp_path / "datasets"
    done = recommender(
        "datasets", "fetch", "movielens", "--dest", str(dest),
        env={"RECOMMENDER_MOVIELENS_URL": f"{serve(site)}/ml-latest-small.zip"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"5 files verified (SHA-256) in {dest / 'movielens-latest-small'}" in done.stdout
    # The licence terms are shown: research use, redistribution on the same terms, the citation.
    assert "research use only" in done.stdout and "same licence conditions" in done.stdout
    assert "Harper and Joseph A. Konstan" in done.stdout
    # ... and the demo would not find this folder by itself: the user is told how.
    assert f"export RECOMMENDER_DATASETS={dest}" in done.stdout
    assert sorted(p.name for p in dest.iterdir()) == ["movielens-latest-small"]  # no leftovers
    replay = load_interactions("movielens", root=dest)
    assert len(replay) == 100_836 and replay.order == "by timestamp"

    # Once there, fetching again checks the files and downloads nothing (the source is gone).
    again = recommender(
        "datasets", "fetch", "movielens", "--dest", str(dest), "--url", closed_port_url()
    )
    assert again.returncode == 0, again.stderr
    assert "checking" in again.stdout and "files verified" in again.stdout

    # The data-set lookup finds it through $RECOMMENDER_DATASETS.
    listed = recommender("datasets", "list", env={"RECOMMENDER_DATASETS": str(dest)})
    assert str(dest / "movielens-latest-small") in listed.stdout


def test_a_checksum_mismatch_is_refused_and_leaves_nothing_behind(movielens_files, serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    build_zip(movielens_files, site / "ml-latest-small.zip", damage="ratings.csv")
    dest = tmp_path / "datasets"
    done = recommender(
        "datasets", "fetch", "movielens", "--dest", str(dest),
        "--url", f"{serve(site)}/ml-latest-small.zip",
    )  # fmt: skip
    line = one_error_line(done)
    assert "checksum mismatch" in line and "ratings.csv" in line and "try again" in line
    assert not (dest / "movielens-latest-small").exists()
    assert list(dest.iterdir()) == []  # the staging folder and the zip are gone too


def test_no_network_is_one_line_saying_what_to_do(tmp_path):
    done = recommender(
        "datasets", "fetch", "movielens", "--dest", str(tmp_path), "--url", closed_port_url()
    )
    line = one_error_line(done)
    assert "cannot download" in line and "--url file://" in line


def test_a_page_instead_of_the_zip_is_refused(serve, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "ml-latest-small.zip").write_text("<html>moved</html>")
    (site / "other.zip").write_bytes(b"")
    done = recommender(
        "datasets", "fetch", "movielens", "--dest", str(tmp_path / "d"),
        "--url", f"{serve(site)}/ml-latest-small.zip",
    )  # fmt: skip
    assert "did not send a zip" in one_error_line(done)
    missing = recommender(
        "datasets", "fetch", "movielens", "--dest", str(tmp_path / "d"),
        "--url", f"{serve(site)}/nothing-here.zip",
    )  # fmt: skip
    assert "HTTP 404" in one_error_line(missing)


def test_an_unwritable_destination_is_one_line(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a folder cannot be made under a file, even by root
    done = recommender(
        "datasets", "fetch", "movielens", "--dest", str(blocker / "datasets"),
        "--url", closed_port_url(),
    )  # fmt: skip
    line = one_error_line(done)
    assert f"cannot write to {blocker / 'datasets'}" in line and "--dest" in line


def test_an_existing_folder_that_is_not_the_data_set_is_left_alone(tmp_path):
    folder = tmp_path / "movielens-latest-small"
    folder.mkdir()
    (folder / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,1,5,0\n")
    done = recommender(
        "datasets", "fetch", "movielens", "--dest", str(tmp_path), "--url", closed_port_url()
    )
    assert "exists but is not ml-latest-small" in one_error_line(done)
    assert (folder / "ratings.csv").read_text().endswith("1,1,5,0\n")
    # make demo only fetches what is missing: a copy the readers find is used as it is.
    done = recommender(
        "datasets", "fetch", "movielens", "--if-missing", "--url", closed_port_url(),
        env={"RECOMMENDER_DATASETS": str(tmp_path)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert f"movielens: using {folder}" in done.stdout


ANIME_HEADERS = {
    "anime_ratings.dat": "User_ID\tAnime_ID\tFeedback\n1\t1\t8\n",
    "anime_history.dat": "User_ID\tAnime_ID\tFeedback\n1\t1\t1\n",
    "anime_info.dat": "anime_ids\tname\tgenre\ttype\tepisodes\trating\tmembers\n"
    "1\tKimi no Na wa.\tDrama\tMovie\t1\t9.37\t200630\n",
}


def test_anime_says_where_to_get_it_and_the_layout(tmp_path):
    done = recommender("datasets", "fetch", "anime", "--dest", str(tmp_path))
    assert done.returncode == 1, done.stderr  # nothing to run the anime demo with yet
    assert "kaggle.com/CooperUnion/anime-recommendations-database" in done.stdout
    assert "caserec/Datasets-for-Recommender-Systems" in done.stdout
    assert f"{tmp_path / 'anime'}/" in done.stdout
    assert "anime_ids<TAB>name<TAB>genre<TAB>type<TAB>episodes<TAB>rating<TAB>members" in (
        done.stdout
    )
    assert not (tmp_path / "anime").exists()  # nothing downloaded or made


def test_anime_files_in_place_are_found_and_checked(tmp_path, monkeypatch):
    folder = tmp_path / "anime"
    folder.mkdir()
    for name, text in ANIME_HEADERS.items():
        (folder / name).write_text(text)
    done = recommender("datasets", "fetch", "anime", "--dest", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "expected layout, but is not the subset" in done.stdout  # a toy subset
    # An anime-only folder is a data-sets folder for the anime readers (MovieLens not needed).
    monkeypatch.setenv("RECOMMENDER_DATASETS", str(tmp_path))
    assert datasets_dir("anime") == tmp_path
    assert len(load_interactions("anime-ratings")) == 1


def test_the_demo_names_the_fetch_command_when_its_data_set_is_missing(tmp_path, monkeypatch):
    import recommender.datasets as datasets
    from recommender.demo import DemoOptions, run_demo
    from recommender.errors import RecommenderError

    monkeypatch.setattr(datasets, "search_path", lambda: [tmp_path])
    with pytest.raises(RecommenderError, match="recommender datasets fetch movielens"):
        run_demo(DemoOptions(dataset="movielens", workdir=tmp_path / "demo"))
    assert not (tmp_path / "demo").exists()  # refused before anything started


def test_fetched_data_sets_go_to_the_users_data_folder_not_beside_the_checkout(
    monkeypatch, tmp_path
):
    from recommender.datasets import default_root

    monkeypatch.delenv("RECOMMENDER_DATASETS", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_root() == tmp_path / "recommender" / "datasets"
    monkeypatch.setenv("RECOMMENDER_DATASETS", str(tmp_path / "mine"))
    assert default_root() == tmp_path / "mine"
