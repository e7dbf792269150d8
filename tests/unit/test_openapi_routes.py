"""The OpenAPI document lists every route the server serves, and nothing it does not: clients
and the schemathesis contract test only see what the document describes."""

from recommender.server import ServerConfig, create_app
from recommender.server.openapi import openapi_document

METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def test_the_document_lists_exactly_the_served_methods_and_paths(tmp_path):
    app = create_app(ServerConfig(model_dir=tmp_path / "model"))
    routes = {(route.method, route.resource.canonical) for route in app.router.routes()}
    # aiohttp answers HEAD wherever it answers GET; HTTP implies it, so the document leaves it out.
    served = {(m, path) for m, path in routes if m != "HEAD" or ("GET", path) not in routes}
    paths = openapi_document(1000)["paths"]
    documented = {(m.upper(), path) for path, ops in paths.items() for m in ops if m in METHODS}
    assert served - documented == set(), "served but not in the OpenAPI document"
    assert documented - served == set(), "in the OpenAPI document but not served"
