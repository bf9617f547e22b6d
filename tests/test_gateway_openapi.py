"""The published OpenAPI document: it lists exactly the routes the app mounts, and a property-based
fuzz run (schemathesis, bounded for CI) against a real server finds no 5xx and no response that
breaks the document."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance
from starlette.routing import Route

from gateway_support import (
    ADMIN_KEY,
    TEST_KEY,
    add_test_keys,
    ledger_for,
    make_moderator,
    serve,
    write_config,
)
from hegui.gateway.app import ERROR_SOURCE_HEADER, create_app
from hegui.gateway.openapi import all_operations, document

# Examples per operation: 12 operations × this many cases stays under half a minute on 2 cores.
FUZZ_EXAMPLES = 60
CASES: list[str] = []


def _app(folder: Path, ledger: Any) -> Any:
    cfg = write_config(folder, {
        "gateway": {"admin_key": ADMIN_KEY, "max_input_chars": 20_000},
        "labeling": {"explicit": False},
        "upstreams": [{"name": "demo", "base_url": "demo", "models": ["*"]}],
    })
    add_test_keys(ledger)
    return create_app(cfg, moderator=make_moderator({"赌博": "A1h", "13800138000": "PI"}), ledger=ledger)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("openapi")
    with ledger_for("sqlite", folder, None) as ledger, serve(_app(folder, ledger)) as url:
        yield url


def mounted(app: Any) -> set[tuple[str, str]]:
    out = set()
    for route in app.routes:
        assert isinstance(route, Route), route
        if not route.include_in_schema:
            continue  # the portal's HTML pages are not part of the JSON API
        path = re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path)
        for method in route.methods or ():
            if method != "HEAD":
                out.add((path, method.lower()))
    return out


def test_the_document_lists_exactly_the_mounted_routes(tmp_path: Path) -> None:
    with ledger_for("sqlite", tmp_path, None) as ledger:
        app = _app(tmp_path, ledger)
    documented = {(path, method) for path, ops in document()["paths"].items() for method in ops}
    assert documented == mounted(app)
    assert len(all_operations()) == len(documented)


def test_the_document_is_served_and_is_openapi_3_1(server: str) -> None:
    resp = httpx.get(server + "/openapi.json", timeout=10)
    assert resp.status_code == 200
    doc = resp.json()
    assert doc["openapi"] == "3.1.0" and doc == document()
    # every $ref resolves
    refs = set(re.findall(r'"\$ref": "#/components/schemas/(\w+)"', resp.text.replace('":"', '": "')))
    assert refs and refs <= set(doc["components"]["schemas"])
    schemathesis.openapi.from_dict(doc)  # schemathesis validates the document as it loads it


def test_the_request_models_are_the_documented_bodies() -> None:
    body = document()["paths"]["/v1/chat/completions"]["post"]["requestBody"]["content"]["application/json"]
    schema = document()["components"]["schemas"]["ChatCompletionRequest"]
    assert body["schema"] == {"$ref": "#/components/schemas/ChatCompletionRequest"}
    assert set(schema["required"]) == {"model", "messages"}
    assert schema["additionalProperties"] is True  # other OpenAI fields pass through


schema = schemathesis.openapi.from_dict(document())


@schema.parametrize()
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_fuzz_no_5xx_and_responses_match_the_document(case: Any, server: str) -> None:
    key = ADMIN_KEY if case.path.startswith("/admin/") else TEST_KEY
    headers = {"Authorization": f"Bearer {key}"}
    CASES.append(f"{case.method} {case.path}")
    if case.path == "/admin/reload":
        # a reload per example would rebuild the detectors hundreds of times; one check is enough
        resp = httpx.post(server + case.path, headers=headers, timeout=30)
        assert resp.status_code == 200
        return
    response = case.call(base_url=server, headers=headers, timeout=30)
    assert response.status_code < 500, (case.method, case.path, response.status_code, response.text[:500])
    excluded = []
    if response.headers.get(ERROR_SOURCE_HEADER) == ["upstream"]:  # schemathesis: lists of values
        # a 4xx the upstream (here the demo model, e.g. on image sizes) sends back as is: the upstream's
        # rules are its own, so a schema-valid request it rejects is not a fault of hegui's document
        excluded.append(positive_data_acceptance)
    elif (response.status_code == 400 and case.path.startswith("/v1/hegui/")
          and response.json()["error"]["type"] == "account_error"):
        # the account API's content checks no schema can state: a one-time code that is wrong, a
        # number that is no mainland mobile, a version that is not the current one
        excluded.append(positive_data_acceptance)
    case.validate_response(response, excluded_checks=excluded)


def test_fuzz_tried_every_operation() -> None:
    """Runs after the fuzz test (file order): it must have reached every operation."""
    if not CASES:
        pytest.skip("the fuzz test was not run in this session")
    tried = {c.split(" ", 1)[1] for c in CASES}
    assert tried == {op.path for op in all_operations()}
    print(f"schemathesis tried {len(CASES)} cases over {len(tried)} operations")
