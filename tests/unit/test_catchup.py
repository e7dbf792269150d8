"""The backlog a builder must read before its first publication (pure logic)."""

from recommender.builder.catchup import CatchUp


def test_waits_until_every_partition_reaches_its_start_watermark():
    catch_up = CatchUp()
    catch_up.expect(0, start=0, low=0, high=100)
    catch_up.expect(1, start=0, low=0, high=50)
    catch_up.observe({0: 100, 1: 50})
    assert not catch_up.caught_up({0: 100})  # partition 1 unread
    assert not catch_up.caught_up({0: 100, 1: 49})
    assert catch_up.caught_up({0: 100, 1: 50})
    assert catch_up.caught_up({0: 0, 1: 0})  # once caught up, the live stream is no backlog


def test_a_lower_bound_watermark_is_raised_by_the_first_fetch_response():
    """Some brokers answer the base offset of the last batch + 1 before any fetch."""
    catch_up = CatchUp()
    catch_up.expect(0, start=0, low=0, high=41)
    assert not catch_up.caught_up({0: 41})  # not confirmed by a fetch yet
    catch_up.observe({0: 50})
    assert not catch_up.caught_up({0: 41})
    catch_up.observe({0: 70})  # later watermarks are the live stream: the target stays
    assert catch_up.caught_up({0: 50})


def test_empty_partitions_and_resumed_ranges():
    catch_up = CatchUp()
    catch_up.expect(0, start=0, low=0, high=0)  # empty: nothing to wait for
    catch_up.expect(1, start=20, low=0, high=10, replay_until=30)  # replay up to 30 first
    assert catch_up.unconfirmed() == [1]
    catch_up.observe({1: 30})
    assert not catch_up.caught_up({0: 0, 1: 29})
    assert catch_up.caught_up({0: 0, 1: 30})


def test_an_unknown_end_waits_for_a_fetch_and_a_replaced_log_gets_a_new_target():
    catch_up = CatchUp()
    catch_up.expect(0, start=0, low=0, high=None)
    assert not catch_up.caught_up({0: 0})
    catch_up.observe({0: 5})
    catch_up.forget(0, high=8)  # the log was replaced: its new end
    catch_up.observe({0: 8})
    assert not catch_up.caught_up({0: 5})
    assert catch_up.caught_up({0: 8})
    progress = CatchUp()
    progress.expect(3, start=0, low=0, high=9)
    assert progress.progress({3: 4}) == {
        "caught_up": False,
        "behind": {"3": {"next_offset": 4, "target": 9}},
    }
