"""Property-based tests of the OGC API from its own OpenAPI document (schemathesis).

Every operation of ``/api`` gets generated requests; no answer may be a
server error, and every answer must match the status codes, media types and
schemas the document declares. Jobs are accepted but not run (no
dispatcher), so generated executions only test the HTTP contract.
"""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from wps_gateway.accounting.query import ReportError, parse_query

from .conftest import build_gateway, close_gateway

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory, sample_data):
    gateway = build_gateway(tmp_path_factory.mktemp("schemathesis") / "var", sample_data, dispatcher=False,
                            GATEWAY_SYNC_TIMEOUT="0.1", GATEWAY_DEPLOY_TOKENS="portal:t0ken")
    yield schemathesis.openapi.from_wsgi("/api", from_loopback(gateway.app))
    close_gateway(gateway)


def from_loopback(app):
    """Requests as from the gateway's own machine: with ``[auth] mode = none`` an operator, so that the
    operators' paths are exercised too, not only refused."""
    def wsgi(environ, start_response):
        environ["REMOTE_ADDR"] = "127.0.0.1"
        return app(environ, start_response)
    return wsgi


def semantic_bodies(case) -> list:
    """An execute body is valid only for its process's inputs, a package only if its workflow is sound, an
    accounting period only if it ends after it starts, a schedule only for a process that exists: the document
    cannot say so, so "schema-valid but refused" is expected there (and nothing else is excused)."""
    if case.method in ("POST", "PUT") and case.path in ("/processes/{processId}/execution", "/processes",
                                                        "/processes/{processId}", "/admin/api/schedules"):
        return [positive_data_acceptance]  # a schedule's process must exist, its inputs fit, its interval be > 0
    if url_holds_nul(case):
        return [positive_data_acceptance]  # refused (400) on every path: no store column nor XML takes a NUL
    if case.path == "/accounting" and period_ends_before_it_starts(case.query or {}):
        return [positive_data_acceptance]
    if case.method == "PUT" and case.path == "/admin/api/limits/{kind}/{name}":
        return [positive_data_acceptance]  # one path for a user's cap (0: none) and a weight (above 0)
    if case.path in ("/stac/search", "/stac/collections/{collectionId}/items") and not stac_search_makes_sense(
            case.body if case.method == "POST" else case.query):
        return [positive_data_acceptance]
    return []


def url_holds_nul(case) -> bool:
    values = [*(case.query or {}).values(), *(case.path_parameters or {}).values()]
    return any("\0" in str(v) for value in values for v in (value if isinstance(value, list) else [value]))


def stac_search_makes_sense(search) -> bool:
    """A bbox's latitudes within -90..90 and south of north; intersects a real geometry, never with a bbox; a
    token one a next link gave: what the document cannot say of a search."""
    if not isinstance(search, dict):
        return True
    if "intersects" in search or "token" in search:
        return False
    bbox = search.get("bbox")
    if isinstance(bbox, str):
        bbox = bbox.split(",")
    if isinstance(bbox, list) and len(bbox) == 4:
        try:
            south, north = float(bbox[1]), float(bbox[3])
        except (TypeError, ValueError):
            return True
        return -90 <= south <= north <= 90
    return True


def period_ends_before_it_starts(query: dict) -> bool:
    """``from`` and ``to`` each valid, but in the wrong order."""
    def parse(*names: str) -> bool:
        try:
            parse_query(lambda name: [str(query[name])] if name in names and name in query else [])
        except ReportError:
            return False
        return True

    return parse("from") and parse("to") and not parse("from", "to")


def operations(schema) -> list:
    return [result.ok() for result in schema.get_all_operations()]


def test_every_operation_keeps_its_contract(api_schema):
    checked = []
    for operation in operations(api_schema):

        @given(case=operation.as_strategy())
        @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def keeps_contract(case) -> None:
            case.call_and_validate(excluded_checks=semantic_bodies(case))

        keeps_contract()
        checked.append(operation.label)
    assert len(checked) >= 10, checked
