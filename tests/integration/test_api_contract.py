"""The live server against its own OpenAPI document (schemathesis): no 5xx, responses match."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, settings

from recommender.server.openapi import openapi_document

from .conftest import get_json, produce, server_command, wait_until

schema = schemathesis.openapi.from_dict(openapi_document(1000))


import pytest  # noqa: E402


@pytest.fixture(scope="module")
def live_server(bootstrap, tmp_path_factory):
    """Broker + builder + server with ingest and a catalogue, serving a trained model."""
    import uuid

    from recommender.broker import free_port
    from recommender.kafka import KafkaSettings, create_topic
    from recommender.synthetic import TasteModel

    from .conftest import Daemon

    kafka = KafkaSettings(bootstrap)
    topic, items = f"api-{uuid.uuid4().hex[:8]}", f"items-{uuid.uuid4().hex[:8]}"
    create_topic(kafka, topic, partitions=2)
    create_topic(kafka, items, partitions=1)
    taste = TasteModel(users=100, items=60, groups=3)
    import numpy as np

    produce(kafka, topic, taste.values(*taste.sample(3000, np.random.default_rng(0))))
    produce(
        kafka,
        items,
        [f'{{"id": "i{k}", "title": "Item {k}"}}'.encode() for k in range(60)],
        keyed=False,
    )
    tmp = tmp_path_factory.mktemp("api")
    model_dir, port = tmp / "model", free_port()
    kafka_args = ["--bootstrap-servers", bootstrap]
    builder = Daemon(
        [
            "build",
            "--tune",
            "off",
            topic,
            "1000",
            "5000",
            "-b",
            "--retrain-interval",
            "1",
            "--factors",
            "8",
            "--model-dir",
            str(model_dir),
            *kafka_args,
        ],
        tmp / "builder.log",
    )
    server = Daemon(
        server_command(
            model_dir,
            port,
            "--topic",
            topic,
            "--items-topic",
            items,
            "--enable-ingest",
            "--poll-interval",
            "0.1",
            *kafka_args,
        ),
        tmp / "server.log",
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: get_json(f"{base}/ready")[0] == 200, timeout=60, what="a model")
        yield base
    finally:
        assert server.stop() == 0, server.output()
        assert builder.stop() == 0, builder.output()


@schema.parametrize()
# derandomize: CI must be reproducible; raise max_examples locally to fuzz further.
@settings(
    max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
def test_every_endpoint_honours_its_schema(case, live_server):
    excluded = []
    if case.path == "/recommend" and case.method == "GET":
        # OpenAPI 3.0 cannot say "exactly one of user= and items=": a request with neither or
        # both is schema-valid but rightly refused with a 400 that names the parameter.
        excluded.append(schemathesis.checks.positive_data_acceptance)
    if case.path == "/":
        # Nor "userId= is required once recommendationsNumber= is given" (without both: the page).
        excluded.append(schemathesis.checks.positive_data_acceptance)
    if case.path in ("/rate_movie", "/register", "/get_unrated_movie", "/recommend"):
        # The seed API's ids follow the event rules (no ':' or ',', at most 256 characters) and
        # its ratings' valid range depends on "scale" (1..5 unless given), which a schema cannot
        # tie together; numbers given as strings are accepted as the seed's bots send them.
        excluded.append(schemathesis.checks.positive_data_acceptance)
        excluded.append(schemathesis.checks.negative_data_rejection)
    if case.path == "/interactions":
        # Event ids are limited to 256 UTF-8 *bytes*, which a JSON schema cannot express (it
        # counts characters): the schema says 64 characters (always within 256 bytes), and longer
        # ids up to 256 bytes are rightly accepted. Per-event validation is tested in test_ingest.
        excluded.append(schemathesis.checks.negative_data_rejection)
    case.call_and_validate(base_url=live_server, excluded_checks=excluded)
