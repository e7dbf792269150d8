"""Choose an object-store library by measurement: obstore vs fsspec (s3fs), against a local
S3-compatible server (moto's standalone server, started here as its own process).

    .venv/bin/python bench/object_store.py [--mib 64] [--repeats 5]

Measures uploading and downloading one snapshot's worth of files (9 arrays), listing, and whether
the library can create an object only if it does not exist (what makes publication and the
writer lock safe without a second service).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from recommender.broker import free_port  # noqa: E402


def start_s3() -> tuple[subprocess.Popen, dict[str, str]]:
    port = free_port()
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("moto_server")), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url, timeout=1)
            break
        except OSError:
            time.sleep(0.1)
    env = {
        "AWS_ENDPOINT_URL": url, "AWS_ACCESS_KEY_ID": "k", "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ALLOW_HTTP": "true",
    }  # fmt: skip
    os.environ.update(env)
    import boto3

    boto3.client("s3", endpoint_url=url).create_bucket(Bucket="bench")
    return proc, env


def files(mib: int) -> Path:
    folder = Path(tempfile.mkdtemp())
    sizes = np.array([40, 40, 2, 2, 1, 5, 5, 2, 2], float)
    for k, share in enumerate(sizes / sizes.sum()):
        (folder / f"a{k}.npy").write_bytes(os.urandom(int(mib * 2**20 * share)))
    return folder


def median(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def bench_obstore(folder: Path, repeats: int) -> dict:
    import obstore
    from obstore.store import S3Store

    store = S3Store("bench", prefix="obstore", client_options={"allow_http": True})
    out = Path(tempfile.mkdtemp())
    counter = iter(range(10**6))

    def upload() -> None:
        n = next(counter)
        for f in folder.iterdir():
            obstore.put(store, f"v{n}/{f.name}", f)

    def download() -> None:
        for f in folder.iterdir():
            with (out / f.name).open("wb") as sink:
                for chunk in obstore.get(store, f"v0/{f.name}").stream(min_chunk_size=8 << 20):
                    sink.write(chunk)

    up, down = median(upload, repeats), median(download, repeats)
    listing = median(lambda: obstore.list(store, prefix="").collect(), repeats)
    obstore.put(store, "once", b"x")
    try:
        obstore.put(store, "once", b"y", mode="create")
        create_only = "no (overwrote)"
    except Exception as exc:  # AlreadyExistsError
        create_only = f"yes ({type(exc).__name__})"
    return {"upload": up, "download": down, "list": listing, "create_only": create_only}


def bench_fsspec(folder: Path, repeats: int) -> dict:
    import s3fs

    fs = s3fs.S3FileSystem(client_kwargs={"endpoint_url": os.environ["AWS_ENDPOINT_URL"]})
    out = Path(tempfile.mkdtemp())
    counter = iter(range(10**6))

    def upload() -> None:
        n = next(counter)
        for f in folder.iterdir():
            fs.put_file(str(f), f"bench/fsspec/v{n}/{f.name}")

    def download() -> None:
        for f in folder.iterdir():
            fs.get_file(f"bench/fsspec/v0/{f.name}", str(out / f.name))

    up, down = median(upload, repeats), median(download, repeats)
    listing = median(lambda: (fs.invalidate_cache(), fs.find("bench/fsspec")), repeats)
    fs.pipe_file("bench/fsspec/once", b"x")
    try:
        with fs.open("bench/fsspec/once", "xb") as f:
            f.write(b"y")
        create_only = "no (overwrote)" if fs.cat_file("bench/fsspec/once") == b"y" else "yes"
    except Exception as exc:
        create_only = f"yes ({type(exc).__name__})"
    return {"upload": up, "download": down, "list": listing, "create_only": create_only}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    proc, _ = start_s3()
    try:
        folder = files(args.mib)
        print(f"Command: `.venv/bin/python bench/object_store.py {' '.join(sys.argv[1:])}` "
              f"({time.strftime('%Y-%m-%d')}, {os.cpu_count()} cores); a {args.mib} MiB "
              "snapshot in 9 files, moto's S3 server on loopback\n")  # fmt: skip
        print("| library | upload s | download s | list s | create-if-absent |")
        print("| --- | ---: | ---: | ---: | --- |")
        for name, bench in (("obstore", bench_obstore), ("fsspec (s3fs)", bench_fsspec)):
            r = bench(folder, args.repeats)
            print(f"| {name} | {r['upload']:.2f} | {r['download']:.2f} | {r['list']:.3f} | "
                  f"{r['create_only']} |", flush=True)  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
