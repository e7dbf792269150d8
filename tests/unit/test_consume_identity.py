"""Where a restarted builder resumes when the topic's id differs from the one its snapshot
recorded: the id alone is not trusted where every partition's last record can be read again
(an embedded broker reported another id for an unchanged log in the soak); without those
fingerprints, a changed id still means a replaced log, read from its beginning."""

import numpy as np
from confluent_kafka import OFFSET_BEGINNING

from recommender.builder.config import BuilderConfig, BuilderStats
from recommender.builder.consume import Consumption
from recommender.logpos import LastRecord
from recommender.store import LocalStore
from recommender.window import InteractionWindow

RECORD = b"u1:i1"
LAST = LastRecord.of(99, 1_800_000_000_000, RECORD)


def manifest(*, fingerprints: bool) -> dict:
    last = LAST.to_dict()
    return {
        "version": 3,
        "topic_id": "recorded-id",
        "partitions": {
            str(p): {
                "window_start": 10,
                "next_offset": 100,
                **({"last_record": last} if fingerprints else {}),
            }
            for p in (0, 1)
        },
    }


def consumption(tmp_path) -> tuple[Consumption, BuilderStats]:
    stats = BuilderStats()
    config = BuilderConfig(
        topic="events", retrain_every=100, window_events=1000, store=LocalStore(tmp_path)
    )
    return Consumption(config, InteractionWindow(1000), stats, None), stats


def test_a_changed_id_is_checked_against_each_partitions_last_record(tmp_path):
    reader, stats = consumption(tmp_path)
    starts = reader.assignment([0, 1], manifest(fingerprints=True), "another-id")
    assert [(tp.partition, tp.offset) for tp in starts] == [(0, 10), (1, 10)]
    assert stats.log_resets == 0
    # Reading the partitions again: the unchanged log passes, a replaced one is caught.
    offsets = np.arange(10, 100)
    values = [RECORD] * offsets.size
    stamps = np.full(offsets.size, LAST.timestamp_ms)
    same = reader.positions.observe(np.zeros(offsets.size, np.int64), offsets, stamps, values)
    assert same == {}
    other = [b"u2:i9"] * offsets.size
    replaced = reader.positions.observe(np.ones(offsets.size, np.int64), offsets, stamps, other)
    assert list(replaced) == [1] and "not the one recorded" in replaced[1]


def test_without_fingerprints_a_changed_id_means_a_new_log(tmp_path):
    reader, stats = consumption(tmp_path)
    starts = reader.assignment([0, 1], manifest(fingerprints=False), "another-id")
    assert [tp.offset for tp in starts] == [OFFSET_BEGINNING, OFFSET_BEGINNING]
    assert stats.log_resets == 2


def test_the_same_id_resumes(tmp_path):
    reader, stats = consumption(tmp_path)
    starts = reader.assignment([0, 1], manifest(fingerprints=False), "recorded-id")
    assert [tp.offset for tp in starts] == [10, 10] and stats.log_resets == 0
