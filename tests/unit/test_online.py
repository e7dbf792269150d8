"""The online loop's pure parts: exposure records, attribution, live quality, experiments."""

import json
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.online.attribution import Attribution
from recommender.online.experiments import ExperimentResults, ExperimentSpec, ab_arm, team_draft
from recommender.online.exposures import (
    Exposure,
    decode_exposure,
    encode_exposure,
    is_recommendation_id,
    new_recommendation_id,
)
from recommender.online.live import LiveQuality

MINUTE = 60_000


def exposure(user, items, ts, **extra):
    return Exposure(
        id=extra.pop("id", new_recommendation_id()),
        timestamp_ms=ts,
        user=user,
        items=tuple(items),
        route="/recommend",
        model_version=extra.pop("version", 1),
        family="als",
        **extra,
    )


def test_ids_are_short_url_safe_and_unique():
    ids = {new_recommendation_id() for _ in range(10_000)}
    assert len(ids) == 10_000 and all(is_recommendation_id(i) for i in ids)
    assert not is_recommendation_id("has space!!!") and not is_recommendation_id(7)


def test_exposure_records_round_trip_and_malformed_ones_are_refused():
    shown = exposure("u1", ["a", "b"], 5, arm="challenger", experiment="x1", challenger_version=3)
    assert decode_exposure(encode_exposure(shown)) == shown
    good = json.loads(encode_exposure(shown))
    for bad in (
        b"not json",
        b"[1]",
        json.dumps({**good, "id": "short"}).encode(),
        json.dumps({**good, "items": "a"}).encode(),
        json.dumps({**good, "arm": "third"}).encode(),
        json.dumps({**good, "credit": ["champion"]}).encode(),  # not one per item
        json.dumps({**good, "ts": True}).encode(),
        b"{" * 100_000,
        None,
    ):
        assert decode_exposure(bad) is None


def test_an_interaction_goes_to_the_newest_exposure_that_showed_the_item_within_the_window():
    join = Attribution(window_ms=30 * MINUTE)
    old = exposure("u", ["a", "b"], 0)
    new = exposure("u", ["c", "a"], 10 * MINUTE)
    join.expose(old)
    join.expose(new)
    hit = join.interact("u", "a", 1.0, 11 * MINUTE)
    assert hit.exposure is new and hit.position == 1 and hit.first_like
    assert join.interact("u", "b", 1.0, 12 * MINUTE).exposure is old
    assert join.interact("u", "zzz", 1.0, 12 * MINUTE) is None  # never shown
    assert join.interact("someone", "a", 1.0, 12 * MINUTE) is None  # shown to someone else
    assert join.interact("u", "b", 1.0, 31 * MINUTE) is None  # past the window
    second = join.interact("u", "c", 1.0, 12 * MINUTE)
    assert second.exposure is new and not second.first_like  # a hit once, however many likes


def test_an_explicit_id_wins_and_dislikes_are_negative_feedback():
    join = Attribution()
    first = exposure("u", ["a"], 0)
    second = exposure("u", ["a"], MINUTE)
    join.expose(first)
    join.expose(second)
    named = join.interact("u", "a", 1.0, 2 * MINUTE, recommendation_id=first.id)
    assert named.exposure is first and named.explicit
    assert join.interact("u", "a", -1.0, 2 * MINUTE).feedback == "dislike"
    assert join.interact("u", "a", 0.0, 2 * MINUTE).feedback == "neutral"
    # An id that does not show the item falls back to the implicit rule.
    assert join.interact("u", "a", 1.0, 2 * MINUTE, recommendation_id="nonexistent1").exposure


def test_attribution_memory_is_bounded():
    join = Attribution(max_per_user=3, max_exposures=100)
    for k in range(1000):
        join.expose(exposure(f"u{k % 300}", ["a"], k))
    assert len(join) <= 100 + 3


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.booleans()), max_size=60))
def test_attribution_matches_a_brute_force_join(script):
    """Every interaction is attributed to the newest earlier exposure of that user showing the
    item, within the window, and each exposure is a hit at most once."""
    window = 10
    join = Attribution(window_ms=window)
    shown: list[Exposure] = []
    hits: set[str] = set()
    for t, (user, item, is_exposure) in enumerate(script):
        if is_exposure:
            e = exposure(f"u{user}", [f"i{item}", f"i{(item + 1) % 6}"], t * 3)
            shown.append(e)
            join.expose(e)
            continue
        ts = t * 3
        candidates = [
            e
            for e in shown
            if e.user == f"u{user}"
            and f"i{item}" in e.items
            and -5000 <= ts - e.timestamp_ms <= window
        ]
        got = join.interact(f"u{user}", f"i{item}", 1.0, ts)
        if not candidates:
            assert got is None
            continue
        expected = candidates[-1]
        assert got is not None and got.exposure is expected
        assert got.first_like == (expected.id not in hits)
        hits.add(expected.id)


def test_live_quality_counts_exposures_hits_and_positions_per_version_and_period():
    live = LiveQuality()
    join = Attribution()
    for k in range(10):
        e = exposure(f"u{k}", ["a", "b", "c"], k * 1000, version=1 + k // 5)
        live.exposed(e)
        join.expose(e)
    for k in range(4):  # users 0..3 like their second item
        live.attributed(join.interact(f"u{k}", "b", 1.0, 20_000))
    live.attributed(join.interact("u9", "a", -1.0, 20_000))
    report = live.report(30_000)
    five = report["periods"]["5m"]
    assert (five["exposures"], five["hits"], five["negatives"]) == (10, 4, 1)
    assert five["hit_rate"] == pytest.approx(0.4)
    assert five["hits_by_position"][1] == 4
    assert five["versions"]["1"]["hits"] == 4 and five["versions"]["2"]["exposures"] == 5
    assert five["distinct_items_shown"] == 3
    again = LiveQuality.from_state(json.loads(json.dumps(live.to_state())))
    assert again.report(30_000)["periods"]["24h"]["hits"] == 4
    assert live.report(30_000 + 2 * 3600_000)["periods"]["1h"]["exposures"] == 0


# -- experiments -------------------------------------------------------------------------------


def test_team_draft_merges_both_rankings_fairly_without_duplicates():
    a, b = [f"a{k}" for k in range(10)], [f"b{k}" for k in range(10)]
    items, credit = team_draft(a, b, 10, seed="r1")
    assert len(items) == 10 and len(set(items)) == 10
    assert abs(credit.count("champion") - credit.count("challenger")) <= 1
    assert all(i.startswith("a") == (c == "champion") for i, c in zip(items, credit, strict=True))
    same, credit = team_draft(a, a, 5, seed="r2")  # identical rankings: the ranking itself
    assert same == a[:5]
    short, _ = team_draft(a[:2], b[:1], 10, seed="r3")
    assert len(short) == 3
    assert team_draft(a, b, 10, seed="r1") == team_draft(a, b, 10, seed="r1")


def test_ab_assignment_is_stable_and_follows_the_share():
    spec = ExperimentSpec("x1", "ab", 0.3, 0.0)
    arms = [ab_arm(spec, f"user-{k}") for k in range(10_000)]
    assert 0.27 < arms.count("challenger") / len(arms) < 0.33
    assert arms == [ab_arm(spec, f"user-{k}") for k in range(10_000)]
    assert ExperimentSpec.from_dict(spec.to_dict()) == spec
    assert ExperimentSpec.from_dict({"id": "x", "mode": "ab", "share": 2}) is None


GROUPS, ITEMS = 4, 200


def _ranking(group, rng, quality):
    """A ranking whose top is ``quality`` share the user's group items."""
    mine = [f"i{k}" for k in range(ITEMS) if k % GROUPS == group]
    other = [f"i{k}" for k in range(ITEMS) if k % GROUPS != group]
    rng.shuffle(mine)
    rng.shuffle(other)
    out = []
    while len(out) < 10:
        out.append(mine.pop() if rng.random() < quality else other.pop())
    return out


def simulate(mode, champion_quality, challenger_quality, impressions, seed):
    """Users click items of their own group with a position bias; returns the verdict."""
    rng = random.Random(seed)
    spec = ExperimentSpec(f"x{seed}", mode, 0.5, 0.0)
    results = ExperimentResults(spec)
    join = Attribution(window_ms=10**9)
    users = [f"u{k}" for k in range(200)]
    for t in range(impressions):
        user = rng.choice(users)
        group = int(user[1:]) % GROUPS
        a = _ranking(group, rng, champion_quality)
        b = _ranking(group, rng, challenger_quality)
        rec = new_recommendation_id()
        if mode == "interleave":
            items, credit = team_draft(a, b, 10, seed=rec)
            e = exposure(user, items, t, id=rec, credit=tuple(credit), experiment=spec.id)
        else:
            arm = ab_arm(spec, user)
            items = a if arm == "champion" else b
            e = exposure(user, items, t, id=rec, arm=arm, experiment=spec.id)
        results.exposed(e)
        join.expose(e)
        for position, item in enumerate(items):
            liked = int(item[1:]) % GROUPS == group
            if liked and rng.random() < 0.5 / (1 + position):  # position bias
                results.attributed(join.interact(user, item, 1.0, t))
    return results.verdict(seed=seed)


def test_interleaving_finds_a_better_and_a_worse_challenger_within_3000_impressions():
    better = simulate("interleave", 0.5, 0.6, 3000, seed=1)
    assert better["verdict"] == "challenger", better["reason"]
    worse = simulate("interleave", 0.5, 0.4, 3000, seed=2)
    assert worse["verdict"] == "champion", worse["reason"]


def test_a_small_sample_is_never_a_verdict():
    tiny = simulate("interleave", 0.2, 0.9, 40, seed=3)
    assert tiny["verdict"] == "undecided" and "too little" in tiny["reason"]
    assert simulate("ab", 0.2, 0.9, 40, seed=3)["verdict"] == "undecided"


def test_ab_finds_a_much_better_challenger():
    verdict = simulate("ab", 0.3, 0.7, 4000, seed=4)
    assert verdict["verdict"] == "challenger", verdict["reason"]
    assert verdict["arms"]["challenger"]["rate"] > verdict["arms"]["champion"]["rate"]


@pytest.mark.parametrize("mode", ["interleave", "ab"])
def test_an_a_a_experiment_ends_undecided_in_at_least_95_percent_of_runs(mode):
    verdicts = [simulate(mode, 0.5, 0.5, 1500, seed=100 + k)["verdict"] for k in range(40)]
    assert verdicts.count("undecided") >= 38, verdicts


# -- the monitor's join and its checkpoints ----------------------------------------------------


def _stream(seed, count=3000):
    """Exposures (partition 0) and interactions (partition 0) in time order, with offsets."""
    rng = random.Random(seed)
    spec = ExperimentSpec("x-join", "interleave", 0.5, 0.0)
    records, shown = [], []
    e_off = i_off = 0
    for t in range(count):
        ts = t * 1000
        if rng.random() < 0.4 or not shown:
            items, credit = team_draft(
                [f"a{rng.randrange(30)}" for _ in range(5)],
                [f"b{rng.randrange(30)}" for _ in range(5)],
                6,
                seed=str(t),
            )
            e = exposure(
                f"u{rng.randrange(40)}", items, ts, credit=tuple(credit), experiment=spec.id
            )
            shown.append(e)
            records.append(("e", e, e_off))
            e_off += 1
        else:
            e = rng.choice(shown[-30:])
            item = rng.choice(e.items) if rng.random() < 0.7 else "zzz"
            weight = rng.choice([1.0, 1.0, 1.0, -1.0, 0.0])
            records.append(("i", (e.user, item, weight, ts), i_off))
            i_off += 1
    return spec, records


def _run(join, records, start=0, stop=None):
    from recommender.online.join import OnlineJoin

    assert isinstance(join, OnlineJoin)
    for kind, record, offset in records[start:stop]:
        if kind == "e":
            join.exposure(record, 0, offset)
            join.release(record.timestamp_ms)
        else:
            join.interaction(*record, 0, offset)
    join.release(10**15)
    return join


def test_a_monitor_restarted_from_its_checkpoint_counts_exactly_what_an_uninterrupted_one_does():
    from recommender.online.join import OnlineJoin

    window = 200_000
    spec, records = _stream(7)
    whole = OnlineJoin(window_ms=window)
    whole.control(spec)
    _run(whole, records)

    cut = len(records) // 2
    first = OnlineJoin(window_ms=window)
    first.control(spec)
    _run(first, records, stop=cut)
    next_offsets = {"exposures": {0: 0}, "interactions": {0: 0}}
    for kind, _, offset in records[:cut]:
        next_offsets["exposures" if kind == "e" else "interactions"][0] = offset + 1
    # Replay from offsets at least one window older than the cut.
    cut_ts = (cut - 1) * 1000
    replay_index = next(k for k in range(cut) if k * 1000 >= cut_ts - window - 5000)
    replay_from = {"exposures": {0: 0}, "interactions": {0: 0}}
    for source in ("e", "i"):
        later = [o for kind, _, o in records[replay_index:] if kind == source]
        replay_from["exposures" if source == "e" else "interactions"][0] = later[0] if later else 0
    checkpoint = json.loads(json.dumps(first.checkpoint(next_offsets, replay_from)))

    resumed = OnlineJoin.resume(checkpoint, window_ms=window)
    replay = OnlineJoin.replay_offsets(checkpoint)
    start = next(
        k
        for k, (kind, _, offset) in enumerate(records)
        if offset >= replay["exposures" if kind == "e" else "interactions"][0]
    )
    _run(resumed, records, start=start)
    now = len(records) * 1000
    assert resumed.live.report(now)["periods"]["24h"] == whole.live.report(now)["periods"]["24h"]
    assert resumed.experiments[spec.id].verdict() == whole.experiments[spec.id].verdict()
    assert whole.report(now)["live"]["periods"]["24h"]["hits"] > 100


def test_an_interaction_waits_for_the_exposure_it_answers():
    from recommender.online.join import OnlineJoin

    join = OnlineJoin()
    shown = exposure("u", ["a"], 10_000)
    join.interaction("u", "a", 1.0, 11_000, 0, 0)  # fetched before the exposure
    join.release(5_000)  # the exposure stream is not there yet: held
    join.exposure(shown, 0, 0)
    join.release(11_000)  # an exposure up to the clock tolerance later could still be its own
    assert join.report(20_000)["live"]["periods"]["5m"]["hits"] == 0
    join.release(16_000)  # every exposure it may go to has been read
    assert join.report(20_000)["live"]["periods"]["5m"]["hits"] == 1


def test_recommendation_ids_are_unique_url_safe_and_not_shared_with_a_forked_child():
    import os

    from recommender.online.exposures import is_recommendation_id, new_recommendation_id

    ids = [new_recommendation_id() for _ in range(5000)]  # several batches of system randomness
    assert len(set(ids)) == len(ids) and all(is_recommendation_id(i) for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, to the parent
        os.write(write, ",".join(new_recommendation_id() for _ in range(100)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    child = set(os.read(read, 1 << 16).decode().split(","))
    os.close(read)
    mine = {new_recommendation_id() for _ in range(100)}
    assert len(child) == 100 and not child & mine


def test_the_click_model_ignores_items_it_did_not_make():
    """The README's own ``sku-42`` once stopped the demo's click model for good."""
    from recommender.online.clicks import taste_group
    from recommender.synthetic import TasteModel

    taste = TasteModel(users=10, items=20, groups=4)
    assert taste_group(taste, "i6") == 2
    assert taste_group(taste, "sku-42") is None
    assert taste_group(taste, "i") is None and taste_group(taste, "ix") is None


def test_a_restart_killed_before_its_replay_passed_the_boundary_counts_nothing_twice():
    """The soak's x1.8: a builder resumed, wrote a checkpoint before its replay had passed the
    old boundary, and was killed; the next start counted that stretch again. Boundaries never
    go back, so any number of such restarts count each record once; a duplicated exposure
    record (a producer's retry) counts once too."""
    from recommender.online.join import OnlineJoin

    records = [exposure(f"u{k}", ["a", "b"], 10_000 + k, id=f"id{k:010d}") for k in range(50)]

    def run(join: OnlineJoin, upto: int, start: int = 0) -> None:
        for k in range(start, upto):
            join.exposure(records[k], 0, k)
            join.exposure(records[k], 0, 1_000 + k)  # the same id again: a retried batch
        join.release(10**12)

    join = OnlineJoin()
    run(join, 40)
    checkpoint = join.checkpoint({"exposures": {0: 40}, "interactions": {}}, {})
    for _ in range(5):  # resumed, replays 10 records (not yet past 40), checkpoint, killed
        join = OnlineJoin.resume(checkpoint, window_ms=join.window_ms)
        run(join, 10)
        checkpoint = join.checkpoint({"exposures": {0: 10}, "interactions": {}}, {})
        assert checkpoint["boundary"]["exposures"]["0"] == 40
    join = OnlineJoin.resume(checkpoint, window_ms=join.window_ms)
    run(join, 50)  # the replay reaches the end
    assert join.report(20_000)["live"]["periods"]["5m"]["exposures"] == 50


def test_the_exposure_watermark_waits_for_every_partition_that_may_still_give_an_older_answer():
    """A 2 s grace once released likes before answers up to 5 s newer were read, and a
    restart's replay then credited them otherwise (the 30-minute soak's residual)."""
    from recommender.online.join import QUIET_SECONDS, exposure_watermark

    now, now_ms = 1_000.0, 50_000
    quiet_ms = now_ms - int(QUIET_SECONDS * 1000)
    active, quiet = now - 1.0, now - QUIET_SECONDS - 0.1

    def watermark(*partitions):
        return exposure_watermark(list(partitions), now=now, now_ms=now_ms)

    # a partition still behind holds the stream at its newest time read, 0 before any record
    assert watermark((9_000, False, quiet), (20_000, True, active)) == (9_000, False)
    assert watermark((0, False, -math.inf), (20_000, True, active)) == (0, False)
    # one at its end holds it while it gave something lately: its producer may be behind
    assert watermark((9_000, True, active), (20_000, True, active)) == (9_000, False)
    # a quiet one at its end holds it only to a moment ago, by the wall clock
    assert watermark((9_000, True, quiet), (48_000, True, active)) == (quiet_ms, False)
    assert watermark((9_000, True, quiet), (20_000, True, active)) == (20_000, False)
    assert watermark((45_000, True, quiet), (48_000, True, active)) == (45_000, False)
    # every one quiet, or none at all: a moment ago
    assert watermark((9_000, True, quiet), (0, True, -math.inf)) == (quiet_ms, True)
    assert watermark() == (quiet_ms, True)
    # unless the broker did not say so just now: a frozen broker looks like an idle producer
    silent = exposure_watermark(
        [(9_000, True, quiet), (20_000, True, active)], now=now, now_ms=now_ms, answered=False
    )
    assert silent == (9_000, False)


def test_replays_start_a_window_before_the_oldest_interaction_not_yet_joined():
    from recommender.online.join import OnlineJoin

    join = OnlineJoin(window_ms=60_000)
    assert join.front_ms() == 0
    join.exposure(exposure("u", ["a"], 500_000), 0, 0)
    assert join.front_ms() == 500_000  # nothing joined: the exposure stream
    join.interaction("u", "a", 1.0, 470_000, 0, 0)  # held: the stream is 30 s ahead of it
    join.interaction("v", "a", 1.0, 480_000, 1, 0)
    assert join.front_ms() == 470_000
    join.interaction("w", "a", 1.0, 100_000, 1, 1)  # far behind: at most a window back
    assert join.front_ms() == 440_000
    join.release(10**12)
    assert join.front_ms() == 480_000  # the newest joined
