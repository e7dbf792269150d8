"""The item catalogue: records (categories, labels, visibility, availability, deletions), title
search, and the columns a request may be answered from."""

import json

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from recommender.items import Catalog, ItemFilter
from recommender.items.records import Deletion, ItemRecord, Rejected, parse_item_record

NOW = 1_800_000_000_000


def record(**fields):
    return json.dumps(fields).encode()


def test_records_are_validated_field_by_field():
    item = parse_item_record(None, record(id=7, title="X", categories=["a"], labels={"n": 3}))
    assert isinstance(item, ItemRecord) and item.id == "7" and item.categories == {"a"}
    assert item.metadata == {"id": "7", "title": "X", "categories": ["a"]}
    assert parse_item_record(b"7", None) == Deletion("7")  # a tombstone
    assert parse_item_record(None, record(id="x", deleted=True)) == Deletion("x")
    timed = parse_item_record(
        None, record(id="t", available_from="2027-01-01T00:00:00Z", expires_at=1.9e9)
    )
    assert timed.available_from_ms == 1798761600000 and timed.expires_at_ms == 1_900_000_000_000
    for bad, reason in [
        (b"not json", "not_json"),
        (b"[]", "not_an_object"),
        (record(title="no id"), "bad_id"),
        (record(id=True), "bad_id"),
        (record(id="a:b"), "bad_id"),
        (record(id="a", categories="x"), "bad_categories"),
        (record(id="a", categories=["x"] * 33), "bad_categories"),
        (record(id="a", labels={"bad name": 1}), "bad_labels"),
        (record(id="a", labels={"k": [1]}), "bad_labels"),
        (record(id="a", hidden="yes"), "bad_hidden"),
        (record(id="a", expires_at="tomorrow"), "bad_time"),
        (record(id="a", expires_at="2027-01-01T00:00:00"), "bad_time"),  # no offset
        (b"{" + b" " * 70_000 + b"}", "too_big"),
    ]:
        assert parse_item_record(None, bad) == Rejected(reason), bad[:40]
    assert parse_item_record(None, None) == Rejected("tombstone_without_key")


def test_a_bad_attribute_is_left_out_and_counted_while_the_record_applies():
    attributes = {
        "price": 12.5,
        "year": 1995,
        "cheap": True,  # not a number
        "tags": [1],
        "huge": 1e16,
        "bad name": 1,
        "nan": "NaN",
    }
    item = parse_item_record(None, record(id="a", title="A", hidden=True, attributes=attributes))
    assert isinstance(item, ItemRecord) and item.hidden and item.metadata["title"] == "A"
    assert item.attributes == {"price": 12.5, "year": 1995.0}
    assert item.ignored_attributes == 5
    assert item.metadata["attributes"] == {"price": 12.5, "year": 1995.0}
    many = parse_item_record(None, record(id="b", attributes={f"a{k}": k for k in range(40)}))
    assert len(many.attributes) == 32 and many.ignored_attributes == 8
    not_a_map = parse_item_record(None, record(id="c", categories=["x"], attributes=[1, 2]))
    assert not_a_map.attributes == {} and not_a_map.ignored_attributes == 1
    assert not_a_map.categories == {"x"}
    catalog = Catalog()
    catalog.update([record(id="a", attributes=attributes), record(id="c", attributes="x")])
    assert len(catalog) == 2 and catalog.ignored_attributes == 6 and catalog.rejected == {}


def test_search_is_case_insensitive_prefers_prefixes_and_skips_hidden_items():
    catalog = Catalog()
    values = [
        record(id="1", title="The Matrix (1999)"),
        record(id="2", title="Matrix Reloaded"),
        record(id="3", title="Toy Story"),
        b"garbage",
    ]
    assert catalog.update(values) == 3 and catalog.rejected == {"not_json": 1}
    assert [r["id"] for r in catalog.search("MATRIX", 10)] == ["2", "1"]
    catalog.update([record(id="2", title="Matrix Reloaded", hidden=True)])
    assert [r["id"] for r in catalog.search("matrix", 10)] == ["1"]
    catalog.update([record(id="3", title="Toy Story 2")])
    assert catalog.get("3")["title"] == "Toy Story 2" and len(catalog) == 3


def test_hidden_deleted_expired_and_early_items_are_never_allowed():
    catalog = Catalog()
    index = {k: c for c, k in enumerate("abcdef")}
    catalog.update(
        [
            record(id="a"),
            record(id="b", hidden=True),
            record(id="d", expires_at=(NOW - 1) / 1000),
            record(id="e", available_from=(NOW + 60_000) / 1000),
            None,
        ],
        [None, None, None, None, b"c"],
    )
    banned, allowed = catalog.columns(index, now_ms=NOW)
    assert sorted(banned.tolist()) == [1, 2, 3, 4] and allowed is None
    later, _ = catalog.columns(index, now_ms=NOW + 61_000)  # e is available now
    assert sorted(later.tolist()) == [1, 2, 3]
    only, _ = catalog.columns(index, catalog_only=True, now_ms=NOW)
    assert sorted(only.tolist()) == [1, 2, 3, 4, 5]  # f is not in the catalogue
    catalog.update([record(id="b")])  # shown again
    assert 1 not in catalog.columns(index, now_ms=NOW)[0].tolist()


def test_category_and_label_filters():
    catalog = Catalog()
    catalog.update(
        [
            record(id="a", categories=["shoes", "sale"], labels={"brand": "acme", "size": 42}),
            record(id="b", categories=["shoes"], labels={"brand": "other"}),
            record(id="c", categories=["hats", "sale"], labels={"brand": "acme"}),
            record(id="d", categories=["hats"], hidden=True),
        ]
    )
    index = {k: c for c, k in enumerate("abcde")}

    def allowed(**kw):
        return catalog.columns(index, ItemFilter(**kw), now_ms=NOW)

    assert allowed(categories=frozenset({"shoes"}))[1].tolist() == [0, 1]
    assert allowed(categories=frozenset({"shoes", "hats"}))[1].tolist() == [0, 1, 2]  # any of
    banned, only = allowed(exclude_categories=frozenset({"sale"}))
    assert only is None and {0, 2} <= set(banned.tolist())
    assert allowed(labels=(("brand", "acme"),))[1].tolist() == [0, 2]
    assert allowed(labels=(("brand", "acme"), ("size", "42")))[1].tolist() == [0]
    assert catalog.allows("a", ItemFilter(frozenset({"sale"})))
    assert not catalog.allows("d", None)
    assert catalog.categories() == {"shoes": 2, "sale": 2, "hats": 2}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 30), st.sets(st.sampled_from("pqrs"), max_size=3), st.booleans()),
        max_size=80,
    ),
    st.sets(st.sampled_from("pqrs"), max_size=2),
    st.sets(st.sampled_from("pqrs"), max_size=2),
)
def test_a_category_filter_is_never_violated(updates, wanted, unwanted):
    """Over any sequence of records (later ones replacing earlier), the allowed columns are
    exactly the shown items in a wanted category and in no unwanted one."""
    catalog = Catalog()
    final = {}
    for item, categories, hidden in updates:
        catalog.update([record(id=f"i{item}", categories=sorted(categories), hidden=hidden)])
        final[f"i{item}"] = (categories, hidden)
    index = {f"i{k}": k for k in range(31)}
    banned, allowed = catalog.columns(
        index, ItemFilter(frozenset(wanted), frozenset(unwanted)), now_ms=NOW
    )
    ok = {
        index[i]
        for i, (categories, hidden) in final.items()
        if not hidden and categories & wanted and not categories & unwanted
    }
    if wanted:
        assert set(allowed[~np.isin(allowed, banned)].tolist()) == ok
    for i, (categories, hidden) in final.items():
        if hidden or categories & unwanted:
            assert index[i] in set(banned.tolist())


def test_forgiving_matches_ignore_case_accents_punctuation_and_small_typos():
    catalog = Catalog()
    catalog.update(
        [
            json.dumps({"id": str(k), "title": title}).encode()
            for k, title in enumerate(
                ["Naruto", "Naruto: Shippuuden", "Bleach", "Pokémon: The First Movie", "Monster"]
            )
        ]
    )
    assert [i["title"] for i in catalog.match("naruto", 2)] == ["Naruto", "Naruto: Shippuuden"]
    assert catalog.match("POKEMON the first movie", 1)[0]["id"] == "3"
    assert catalog.match("Bleech", 1)[0]["title"] == "Bleach"  # a typo
    assert catalog.match("completely different", 3) == []
    assert catalog.match("!!!", 3) == []


def test_memory_is_bounded_in_bytes_whatever_the_records_size():
    """60 KiB records fill a small budget after a few; then new items are refused (counted), a
    known item's new record still applies, and deletions of unknown ids never grow it past the
    budget (the oldest are forgotten, counted)."""
    import json

    catalog = Catalog(max_bytes=1 << 20)
    pad = "x" * (60 << 10)
    records = [json.dumps({"id": f"i{k}", "d": pad}).encode() for k in range(40)]
    catalog.update(records)
    kept = len(catalog)
    assert 5 < kept < 40 and catalog.rejected["catalog_full"] == 40 - kept
    assert catalog.bytes <= 1 << 20
    catalog.update([json.dumps({"id": "i0", "title": "Shorter", "hidden": True}).encode()])
    assert catalog.record("i0").hidden and catalog.get("i0")["title"] == "Shorter"
    catalog.update([None] * 20_000, [f"gone{k}".encode() for k in range(20_000)])
    assert catalog.bytes <= 1 << 20 and catalog.forgotten_deletions > 0
    assert not catalog.shown("gone19999")  # the newest deletions are remembered
    before = catalog.bytes
    catalog.update([None], [b"i1"])  # a known item deleted: its record's memory is given back
    assert catalog.bytes < before
