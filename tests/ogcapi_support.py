"""Checking OGC API - Processes responses against the official 1.0 schemas (and our own /api).

The official schemas are OpenAPI 3.0 schema objects in YAML with relative
``$ref``s; they declare no ``$schema`` and use Draft 4 forms
(``exclusiveMinimum: true``), so they are read as JSON Schema Draft 4, with
every file in a ``referencing`` registry under its file URI.

One correction, and only one: ``inputValueNoObject.yaml`` lists ``number``
and ``integer`` (and ``string`` and a ``format: byte`` string) in a
``oneOf``. Those branches overlap, so under ``oneOf`` no integer and no
string result could ever be valid; we read that ``oneOf`` as ``anyOf``,
which is what the standard means (it is fixed that way in the 2.0 drafts).
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import cache
from typing import Any

import yaml
from jsonschema import Draft4Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from .conftest import SCHEMAS, require

OFFICIAL = SCHEMAS / "ogcapi-processes" / "1.0" / "openapi" / "schemas"
OVERLAPPING_ONE_OF = {"inputValueNoObject.yaml"}
EXC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/"
FINAL = {"successful", "failed", "dismissed"}


@cache
def _registry() -> Registry:
    require(OFFICIAL.is_dir(), f"OGC API - Processes schemas not found at {OFFICIAL}")
    resources = []
    for path in sorted(OFFICIAL.glob("*.yaml")):
        contents = yaml.safe_load(path.read_text(encoding="utf-8"))
        if path.name in OVERLAPPING_ONE_OF:
            contents = {("anyOf" if k == "oneOf" else k): v for k, v in contents.items()}
        resources.append((path.as_uri(), Resource(contents=contents, specification=DRAFT4)))
    return Registry().with_resources(resources)


def validate_official(name: str, doc: Any) -> Any:
    """Validate ``doc`` against ``schemas/<name>.yaml``; return it for chaining."""
    uri = (OFFICIAL / f"{name}.yaml").as_uri()
    errors = sorted(Draft4Validator({"$ref": uri}, registry=_registry()).iter_errors(doc), key=str)
    assert not errors, f"{name}.yaml: " + "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors[:5])
    _check_times(doc)
    return doc


def _check_times(doc: Any) -> None:
    """``format: date-time`` is not asserted by jsonschema without extra packages: check it here."""
    if isinstance(doc, dict):
        for key, value in doc.items():
            if key in ("created", "started", "finished", "updated"):
                assert isinstance(value, str) and "T" in value, value
                assert datetime.fromisoformat(value).tzinfo is not None, value
            else:
                _check_times(value)
    elif isinstance(doc, list):
        for item in doc:
            _check_times(item)


def validate_api(api: dict[str, Any], component: str, doc: Any) -> None:
    """Validate ``doc`` against a schema of our own /api document (what schemathesis will hold us to)."""
    validator = Draft4Validator({"$ref": f"urn:api#/components/schemas/{component}"},
                                registry=Registry().with_resource("urn:api", Resource(api, DRAFT4)))
    errors = list(validator.iter_errors(doc))
    assert not errors, f"/api {component}: {errors[0].message} at {list(errors[0].absolute_path)}"


def problem(response, status: int, type_: str | None = None) -> dict[str, Any]:
    """Check a problem document: status, media type, schema, and the exception type if given."""
    assert response.status_code == status, (response.status_code, response.body[:500])
    assert response.content_type == "application/problem+json"
    doc = validate_official("exception", response.json)
    assert doc["status"] == status and doc.get("detail")
    if type_ is not None:
        assert doc["type"] == (EXC + type_ if "/" not in type_ and ":" not in type_ else type_), doc
    return doc


def path_of(url: str) -> str:
    """The path and query of an absolute link (webtest wants those)."""
    return url.replace("http://localhost", "", 1)


def poll_job(client, job_id: str, until: set[str] = FINAL, timeout: float = 90) -> tuple[dict, list[str]]:
    """GET /jobs/{id} until its status is in ``until``; every document is schema-checked."""
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        info = validate_official("statusInfo", client.get(f"/jobs/{job_id}").json)
        if not seen or seen[-1] != info["status"]:
            seen.append(info["status"])
        if info["status"] in until:
            return info, seen
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} not in {until} after {timeout} s; seen {seen}")


def by_rel(links: list[dict[str, str]], rel: str, type_: str | None = None) -> dict[str, str]:
    found = [item for item in links if item.get("rel") == rel and (type_ is None or item.get("type") == type_)]
    assert found, f"no link rel={rel} type={type_} in {links}"
    return found[0]
