"""OGC API - Processes Part 2 (Deploy, Replace, Undeploy) on the gateway's deployment functions.

``POST /processes`` deploys an application package, ``PUT /processes/{id}``
replaces a deployed processor with a new version, ``DELETE /processes/{id}``
undeploys it. Only deployers named in ``[gateway] deploy_tokens`` may; the
shipped processors (folders) are immutable here.
"""

from __future__ import annotations

import json

from werkzeug.wrappers import Request, Response

from processes.descriptor import Processor

from .. import deployment
from ..context import GatewayContext
from . import encode
from .execute import read_json_body
from .openapi import PACKAGE_TYPES
from .problems import Problem, no_such_process

DRU_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"


def deployer(request: Request, context: GatewayContext) -> str:
    try:
        return deployment.authenticate(request.headers.get("Authorization"), context.settings.deployers)
    except deployment.NotAuthorized as exc:
        if not context.settings.deployers:
            raise Problem(403, "Deployment disabled", str(exc)) from None
        raise Problem(401, "Unauthorized", str(exc), headers={"WWW-Authenticate": 'Bearer realm="deploy"'}) from None


def read_package(request: Request, context: GatewayContext) -> Processor:
    if request.mimetype not in PACKAGE_TYPES:
        raise Problem(415, "Unsupported media type",
                      f"an application package is {' or '.join(PACKAGE_TYPES)}, not {request.mimetype or 'none'}")
    try:
        return deployment.processor_from_package(read_json_body(request, context.settings.max_request_bytes))
    except deployment.InvalidPackage as exc:
        raise Problem(400, "Invalid application package", str(exc), f"{DRU_EXCEPTIONS}/invalid-package") from None


def on_deploy(request: Request, context: GatewayContext) -> Response:
    owner = deployer(request, context)
    processor = read_package(request, context)
    try:
        deployment.deploy(context.store, processor, owner, taken=set(context.processors()))
    except deployment.DuplicateProcess as exc:
        raise Problem(409, "Duplicated process", str(exc), f"{DRU_EXCEPTIONS}/duplicated-process") from None
    context.catalog_changed()
    base = context.settings.base_url
    summary = encode.process_summary(processor, base)
    response = Response(json.dumps(summary, indent=2), 201, content_type="application/json")
    response.headers["Location"] = f"{base}/processes/{processor.id}"
    return response


def on_replace(request: Request, context: GatewayContext, process_id: str) -> Response:
    owner = deployer(request, context)
    immutable(context, process_id)
    processor = read_package(request, context)
    try:
        deployment.replace(context.store, process_id, processor, owner)
    except deployment.NotDeployed:
        raise no_such_process(process_id) from None
    except deployment.NotOwner as exc:
        raise Problem(403, "Forbidden", str(exc)) from None
    except deployment.DuplicateProcess as exc:
        raise Problem(400, "Invalid application package", str(exc), f"{DRU_EXCEPTIONS}/invalid-package") from None
    context.catalog_changed()
    return no_content()


def on_undeploy(request: Request, context: GatewayContext, process_id: str) -> Response:
    owner = deployer(request, context)
    immutable(context, process_id)
    try:
        deployment.undeploy(context.store, process_id, owner)
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
                      "processors); deploy a new id instead", f"{DRU_EXCEPTIONS}/immutable-process")
