"""New items: item fold-in from fresh events, content cold start from categories, bounds."""

import json

import numpy as np
import pytest

from recommender.items import Catalog
from recommender.items.fresh import FreshItems
from recommender.model import RecommenderModel
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
    assert fresh.add_events([(f"g1u{k}", "new", 1.0) for k in range(12)], model.item_index) == 12
    fresh.refresh(model)
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
    fresh.add_events([(f"g1u{k}", "shiny", 1.0) for k in range(12)], model.item_index)
    fresh.refresh(model)
    assert fresh.view.sources == ("events",)


def test_known_items_are_dropped_and_memory_is_bounded(model):
    fresh = FreshItems(Catalog(), max_items=5, max_users=3)
    fresh.rebase(model)
    fresh.add_events([("g1u1", "g1i1", 1.0)], model.item_index)  # known to the model: ignored
    assert fresh.add_events([(f"g1u{k}", "x", 1.0) for k in range(10)], model.item_index) == 3
    fresh.add_events([("g1u1", f"n{k}", 1.0) for k in range(20)], model.item_index)
    fresh.refresh(model)
    assert fresh.view.size <= 5 and "x" not in fresh.view.ids  # least recently updated went
    fresh.add_events([("nobody", "lonely", 1.0)], model.item_index)  # no known user: no vector
    fresh.refresh(model)
    assert "lonely" not in fresh.view.ids


async def test_new_items_are_answered_by_the_server_and_explore_reserves_their_slots(
    aiohttp_client, tmp_path
):
    from recommender.server import ServerConfig, create_app
    from recommender.server.state import FRESH_ITEMS, HOLDER

    from .test_server import wait_for_version

    publish_window(tmp_path, 1, block_events(users_per=20), factors=4)
    app = create_app(ServerConfig(model_dir=tmp_path, poll_interval=0.05, explore=0.2))
    client = await aiohttp_client(app)
    await wait_for_version(client, 1)
    model = app[HOLDER].model
    fresh = app[FRESH_ITEMS]
    fresh.add_events([("g1u1", "faint", 0.01)], model.item_index)  # little evidence
    fresh.refresh(model)
    body = await (await client.get("/recommend", params={"user": "g1u3", "n": "5"})).json()
    assert "faint" in [i["item"] for i in body["items"]]  # a reserved slot (one of five)
    similar = await (await client.get("/similar", params={"item": "faint", "n": "3"})).json()
    assert len(similar["items"]) == 3
