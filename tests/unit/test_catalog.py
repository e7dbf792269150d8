"""The item catalogue: parsing JSON records and title search."""

import json

from recommender.catalog import Catalog, parse_item


def test_records_need_an_object_with_an_id():
    assert parse_item(b'{"id": 7, "title": "X"}') == {"id": "7", "title": "X"}
    for bad in [b"", None, b"[]", b"not json", b'{"title": "no id"}', b'{"id": true}', b"\xff"]:
        assert parse_item(bad) is None


def test_search_is_case_insensitive_and_prefers_prefixes():
    catalog = Catalog()
    values = [
        json.dumps({"id": "1", "title": "The Matrix (1999)"}).encode(),
        json.dumps({"id": "2", "title": "Matrix Reloaded"}).encode(),
        json.dumps({"id": "3", "title": "Toy Story"}).encode(),
        b"garbage",
    ]
    assert catalog.update(values) == 3 and catalog.rejected == 1
    assert [r["id"] for r in catalog.search("MATRIX", 10)] == ["2", "1"]
    assert catalog.search("matrix", 1)[0]["id"] == "2"
    assert catalog.search("alien", 10) == []
    catalog.update([json.dumps({"id": "3", "title": "Toy Story 2"}).encode()])
    assert catalog.get("3")["title"] == "Toy Story 2" and len(catalog) == 3


def test_excluded_columns_follow_catalogue_changes():
    catalog = Catalog()
    index = {"a": 0, "b": 1, "c": 2}
    catalog.update([b'{"id": "b"}'])
    assert sorted(catalog.excluded_columns(1, index).tolist()) == [0, 2]
    catalog.update([b'{"id": "c"}'])
    assert catalog.excluded_columns(1, index).tolist() == [0]


def test_forgiving_matches_ignore_case_accents_punctuation_and_small_typos():
    from recommender.catalog import Catalog

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
