"""New items: item fold-in from fresh events, content cold start from categories, bounds."""

import json

import numpy as np
import pytest

from recommender.items import Catalog
from recommender.items.fresh import FreshItems
from recommender.serving.model import RecommenderModel
from recommender.snapshot import load_snapshot

from .helpers import block_events, publish_window


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = publish_window(tmp_path_factory.mktemp("m"), 1, block_events(users_per=20), factors=4)
    return RecommenderModel(load_snapshot(path))


def _cosine(a, b):
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_a_new_item_liked_by_one_groups_users_lands_among_that_groups_items(model):
    fresh = FreshItems(Catalog())
    fresh.rebase(model)
    assert fresh.add_events([(f"g1u{k}", "new", 1.0) for k in range(12)]) == 12
    fresh.refresh()
    view = fresh.view
    assert view.ids == ("new",) and view.sources == ("events",) and fresh.folded == 1
    vector = view.vectors[0]
    mine = np.mean(
        [_cosine(vector, model.item_factors[model.item_index[f"g1i{k}"]]) for k in range(10)]
    )
    theirs = np.mean(
        [_cosine(vector, model.item_factors[model.item_index[f"g0i{k}"]]) for k in range(10)]
    )
    assert mine > 0.9 and mine > theirs + 0.5
    user = model.user_factors[model.user_index["g1u3"]]
    assert float(view.scores(user)[0]) > float(np.median(model.item_factors @ user))


def test_content_cold_start_uses_the_mean_of_the_items_categories(model):
    catalog = Catalog()
    catalog.update(
        [json.dumps({"id": f"g0i{k}", "categories": ["zero"]}).encode() for k in range(10)]
        + [json.dumps({"id": "shiny", "categories": ["zero"]}).encode()]
    )
    fresh = FreshItems(catalog)
    fresh.rebase(model)  # picks up catalogue items the model does not know
    view = fresh.view
    assert view.ids == ("shiny",) and view.sources == ("content",)
    expected = model.item_factors[[model.item_index[f"g0i{k}"] for k in range(10)]].mean(axis=0)
    np.testing.assert_allclose(view.vectors[0], expected, rtol=1e-5)
    # Its first events from known users replace the content vector.
    fresh.add_events([(f"g1u{k}", "shiny", 1.0) for k in range(12)])
    fresh.refresh()
    assert fresh.view.sources == ("events",)


def test_known_items_are_dropped_and_memory_is_bounded(model):
    fresh = FreshItems(Catalog(), max_items=5, max_users=3)
    fresh.rebase(model)
    fresh.add_events([("g1u1", "g1i1", 1.0)])  # known to the model: ignored
    assert fresh.add_events([(f"g1u{k}", "x", 1.0) for k in range(10)]) == 3
    fresh.add_events([("g1u1", f"n{k}", 1.0) for k in range(20)])
    fresh.refresh()
    assert fresh.view.size <= 5 and "x" not in fresh.view.ids  # least recently updated went
    fresh.add_events([("nobody", "lonely", 1.0)])  # no known user: no vector
    fresh.refresh()
    assert "lonely" not in fresh.view.ids


async def test_new_items_are_answered_by_the_server_and_explore_reserves_their_slots(
    aiohttp_client, tmp_path
):
    from recommender.server import ServerConfig, create_app
    from recommender.server.state import HOLDER

    from .test_server import wait_for_version

    publish_window(tmp_path, 1, block_events(users_per=20), factors=4)
    app = create_app(ServerConfig(model_dir=tmp_path, poll_interval=0.05, explore=0.2))
    client = await aiohttp_client(app)
    await wait_for_version(client, 1)
    fresh = app[HOLDER].new_items
    fresh.add_events([("g1u1", "faint", 0.01)])  # little evidence
    fresh.refresh()
    body = await (await client.get("/recommend", params={"user": "g1u3", "n": "5"})).json()
    assert "faint" in [i["item"] for i in body["items"]]  # a reserved slot (one of five)
    similar = await (await client.get("/similar", params={"item": "faint", "n": "3"})).json()
    assert len(similar["items"]) == 3


ITEM_ITEM = {
    "knn": {"knn_neighbours": 8},
    "ease": {"ease_lambda": 5.0},
    "rp3beta": {"rp3beta_neighbours": 8},
    "sequence": {"sequence_similar": 8},
}


@pytest.fixture(scope="module", params=sorted(ITEM_ITEM))
def item_item(request, tmp_path_factory):
    from .helpers import publish_family

    path = publish_family(
        tmp_path_factory.mktemp(request.param),
        1,
        block_events(users_per=20),
        request.param,
        ITEM_ITEM[request.param],
    )
    return RecommenderModel(load_snapshot(path))


def _row(model, user):
    return model.fitted.score([model.history(user)])[0]


def test_an_item_item_familys_new_item_is_scored_from_the_likes_of_its_users(item_item):
    """No item vectors: the new item is what its users like (fresh co-occurrences), scored on
    the family's own scale, so it outranks the other group's items for this group's users."""
    model = item_item
    fresh = FreshItems(Catalog())
    fresh.rebase(model)
    fresh.add_events([(f"g1u{k}", "new", 1.0) for k in range(12)])
    fresh.refresh()
    view = fresh.view
    assert view.ids == ("new",) and view.sources == ("events",) and view.columns is not None
    represented = view.columns[0]
    assert represented.nnz and all(model.item_ids[c].startswith("g1") for c in represented.indices)
    assert represented.sum() == pytest.approx(1.0)
    for user in ("g1u3", "g1u15"):
        row = _row(model, user)
        other_group = max(row[model.item_index[f"g0i{k}"]] for k in range(10))
        assert view.scores_of_row(row)[0] > other_group
    assert view.scores_of_row(_row(model, "g0u3"))[0] < view.scores_of_row(_row(model, "g1u3"))[0]


def test_an_item_item_familys_new_item_without_events_stands_for_its_categories(item_item):
    model = item_item
    catalog = Catalog()
    catalog.update(
        [json.dumps({"id": f"g0i{k}", "categories": ["zero"]}).encode() for k in range(10)]
        + [json.dumps({"id": "shiny", "categories": ["zero"]}).encode()]
    )
    fresh = FreshItems(catalog)
    fresh.rebase(model)
    view = fresh.view
    assert view.ids == ("shiny",) and view.sources == ("content",)
    assert view.columns[0].nnz == 10  # the category's items, uniformly
    assert view.scores_of_row(_row(model, "g0u3"))[0] > view.scores_of_row(_row(model, "g1u3"))[0]


async def test_an_item_item_familys_new_items_are_recommended_and_similar_both_ways(
    aiohttp_client, tmp_path
):
    from recommender.server import ServerConfig, create_app
    from recommender.server.state import HOLDER

    from .helpers import publish_family
    from .test_server import wait_for_version

    publish_family(tmp_path, 1, block_events(users_per=20), "knn", {"knn_neighbours": 8})
    app = create_app(ServerConfig(model_dir=tmp_path, poll_interval=0.05))
    client = await aiohttp_client(app)
    await wait_for_version(client, 1)
    model = app[HOLDER].model
    assert model is not None and model.family == "knn"
    fresh = app[HOLDER].new_items
    fresh.add_events([(f"g1u{k}", "new", 1.0) for k in range(12)])
    fresh.refresh()

    async def items(route, **params):
        body = await (await client.get(route, params=params)).json()
        return [i["item"] for i in body["items"]]

    # g1u13 has every g1 item but g1i3: the new item comes before the other group's.
    assert set(await items("/recommend", user="g1u13", n="2")) == {"g1i3", "new"}
    assert "new" not in await items("/recommend", user="g0u13", n="2")
    # A session of two g1 items: the other eight and the new item, before any g0 item.
    session = await items("/recommend", items="g1i1,g1i2", n="9")
    assert "new" in session and all(i.startswith("g1") for i in session if i != "new")
    similar = await items("/similar", item="new", n="5")
    assert len(similar) == 5 and all(i.startswith("g1") for i in similar)
    assert "new" in await items("/similar", item="g1i4", n="9")
    assert "new" not in await items("/similar", item="g0i4", n="9")
