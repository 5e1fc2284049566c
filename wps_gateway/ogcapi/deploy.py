"""OGC API - Processes Part 2 (Deploy, Replace, Undeploy) on the gateway's deployment functions.

``POST /processes`` deploys an application package, ``PUT /processes/{id}``
replaces a deployed processor with a new version, ``DELETE /processes/{id}``
undeploys it, ``GET /processes/{id}/package`` gives the package back. Only
deployers may change processors; the shipped processors (folders) are
immutable. What does not depend on who asks is checked first, so that any
client learns it: an unsupported media type (415), an immutable process (403).
"""

from __future__ import annotations

import json
from typing import Any

from werkzeug.wrappers import Request, Response

from processes.descriptor import Processor

from .. import deployment
from ..auth.identity import Identity, identity_of
from ..context import GatewayContext
from . import encode
from .execute import read_json_body
from .openapi import PACKAGE_TYPES
from .problems import Problem, no_such_process

DRU_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"
UNSUPPORTED_MEDIA_TYPE = f"{DRU_EXCEPTIONS}/unsupported-media-type"
IMMUTABLE_PROCESS = f"{DRU_EXCEPTIONS}/immutable-process"
DUPLICATED_PROCESS = f"{DRU_EXCEPTIONS}/duplicated-process"
INVALID_PACKAGE = f"{DRU_EXCEPTIONS}/invalid-package"


def deployer(request: Request, context: GatewayContext) -> Identity:
    """The deployer asking: a deploy token's holder, or an identity with the deployer role."""
    identity = identity_of(request)
    if identity.is_deployer:
        return identity
    auth = context.settings.auth
    if not context.settings.deployers and not (auth.deployers.users or auth.deployers.groups):
        raise Problem(403, "Deployment disabled", "deploying processors is disabled on this gateway "
                      "([gateway] deploy_tokens and [auth] deployers are empty)")
    if identity.authenticated:
        raise Problem(403, "Forbidden", f"{identity.user} is not a deployer")
    raise Problem(401, "Unauthorized", "deploying needs a deployer's credentials (Authorization: Bearer <token>)",
                  headers={"WWW-Authenticate": 'Bearer realm="deploy"'})


def check_media_type(request: Request) -> None:
    """415 unless the body is an application package this gateway reads (CWL is refused with the reason)."""
    if request.mimetype in deployment.CWL_MEDIA_TYPES:
        raise unsupported(deployment.CWL_REFUSED)
    if request.mimetype not in PACKAGE_TYPES:
        raise unsupported(f"an application package is {' or '.join(PACKAGE_TYPES)}, not "
                          f"{request.mimetype or 'none'}")


def unsupported(detail: str) -> Problem:
    return Problem(415, "Unsupported media type", detail, UNSUPPORTED_MEDIA_TYPE)


def read_package(request: Request, context: GatewayContext) -> Processor:
    try:
        return deployment.processor_from_package(read_json_body(request, context.settings.max_request_bytes))
    except deployment.UnsupportedPackage as exc:
        raise unsupported(str(exc)) from None
    except deployment.InvalidPackage as exc:
        raise Problem(400, "Invalid application package", str(exc), INVALID_PACKAGE) from None


def on_deploy(request: Request, context: GatewayContext) -> Response:
    check_media_type(request)
    owner = deployer(request, context).user
    processor = read_package(request, context)
    immutable(context, processor.id)
    try:
        deployment.deploy(context.store, processor, owner, taken=set(context.processors()))
    except deployment.DuplicateProcess as exc:
        raise Problem(409, "Duplicated process", str(exc), DUPLICATED_PROCESS) from None
    context.catalog_changed()
    base = context.settings.base_url
    summary = encode.process_summary(processor, base, mutable=True)
    response = Response(json.dumps(summary, indent=2), 201, content_type="application/json")
    response.headers["Location"] = f"{base}/processes/{processor.id}"
    return response


def on_replace(request: Request, context: GatewayContext, process_id: str) -> Response:
    check_media_type(request)
    immutable(context, process_id)
    identity = deployer(request, context)
    processor = read_package(request, context)
    try:
        deployment.replace(context.store, process_id, processor, identity.user, any_owner=identity.is_operator)
    except deployment.NotDeployed:
        raise no_such_process(process_id) from None
    except deployment.NotOwner as exc:
        raise Problem(403, "Forbidden", str(exc)) from None
    except deployment.DuplicateProcess as exc:
        raise Problem(400, "Invalid application package", str(exc), INVALID_PACKAGE) from None
    context.catalog_changed()
    return no_content()


def on_undeploy(request: Request, context: GatewayContext, process_id: str) -> Response:
    immutable(context, process_id)
    identity = deployer(request, context)
    try:
        deployment.undeploy(context.store, process_id, identity.user, any_owner=identity.is_operator)
    except deployment.NotDeployed:
        raise no_such_process(process_id) from None
    except deployment.NotOwner as exc:
        raise Problem(403, "Forbidden", str(exc)) from None
    context.catalog_changed()
    return no_content()


def no_content() -> Response:
    response = Response(status=204)
    del response.headers["Content-Type"]
    return response


def immutable(context: GatewayContext, process_id: str) -> None:
    if process_id in context.shipped():
        raise Problem(403, "Immutable process", f"'{process_id}' is shipped with the gateway (a folder of "
                      "processors): it can be neither replaced nor undeployed, nor deployed again; deploy a new id",
                      IMMUTABLE_PROCESS)


def package_of(processor: Processor, base: str, wps_url: str, mutable: bool) -> dict[str, Any]:
    """An OGC application package (``ogcapppkg``) of a processor, which deploys it again as it is: its OGC process
    description (with what the gateway keeps beside each input and output: an output's file, a bounding box's
    CRS), and the execution unit with the workflow the gateway runs."""
    description = encode.process_description(processor, base, wps_url, mutable)
    raw = processor.raw
    for kind in ("inputs", "outputs"):
        for name, entry in description[kind].items():
            kept = raw["processDescription"].get(kind, {}).get(name, {})
            entry.update({k: kept[k] for k in ("file", "crs") if k in kept})
    unit = dict(raw["executionUnit"])
    unit.setdefault("type", "docker" if unit.get("image") else "command")
    return {"processDescription": {"process": description}, "executionUnit": unit, "workflow": raw["workflow"]}
