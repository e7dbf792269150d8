"""The local cache of an object store's snapshots: a cached copy is only ever the snapshot the
store holds now under that number (soak: a builder resumed from another run's cached v1)."""

from obstore.store import MemoryStore

from recommender.snapshot import load_published, read_published_manifest
from recommender.store.objects import ObjectStore

from .helpers import block_events, publish_window


def object_store(cache_dir):
    """An s3:// store (no network: an in-memory object store behind it) caching in cache_dir."""
    store = ObjectStore("s3://store/recs", cache_dir=cache_dir)
    store._store = MemoryStore()
    return store


def test_a_cached_copy_of_another_snapshot_with_the_same_number_is_never_loaded(tmp_path):
    cache = tmp_path / "cache"
    # One run: the store's v1 is downloaded into the cache (a builder resuming from it).
    first = object_store(cache)
    publish_window(first, 1, block_events(), manifest={"topic_id": "old"})
    assert load_published(first, 1).manifest["topic_id"] == "old"
    # The next run: the same URL, a fresh store (a new bucket of a local S3 server, a store
    # emptied or restored) whose v1 is another snapshot; the cache is the same folder.
    second = object_store(cache)
    publish_window(second, 1, block_events(groups=3), manifest={"topic_id": "new"})
    assert read_published_manifest(second, 1)["topic_id"] == "new"
    loaded = load_published(second, 1)
    assert loaded.manifest["topic_id"] == "new"
    assert len(loaded.user_ids) == 60
    # Cached once it is the right copy: loading again serves the same snapshot.
    assert load_published(second, 1).manifest["topic_id"] == "new"
    assert sorted(p.name for p in cache.iterdir() if not p.name.startswith(".")) == [
        "v000000000001"
    ]


def test_a_matching_cached_copy_is_reused(tmp_path):
    store = object_store(tmp_path / "cache")
    publish_window(store, 1, block_events(), manifest={"topic_id": "same"})
    path = store.local_copy(1)
    marker = path / "untouched"
    marker.touch()
    assert store.local_copy(1) == path and marker.exists()  # no second download
