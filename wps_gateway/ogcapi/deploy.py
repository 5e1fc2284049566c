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
from ..auth.identity import Identity, identity_of
from ..context import GatewayContext
from . import encode
from .execute import read_json_body
from .openapi import PACKAGE_TYPES
from .problems import Problem, no_such_process

DRU_EXCEPTIONS = "http://www.opengis.net/def/exceptions/ogcapi-processes-2/1.0"


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


def read_package(request: Request, context: GatewayContext) -> Processor:
    if request.mimetype not in PACKAGE_TYPES:
        raise Problem(415, "Unsupported media type",
                      f"an application package is {' or '.join(PACKAGE_TYPES)}, not {request.mimetype or 'none'}")
    try:
        return deployment.processor_from_package(read_json_body(request, context.settings.max_request_bytes))
    except deployment.InvalidPackage as exc:
        raise Problem(400, "Invalid application package", str(exc), f"{DRU_EXCEPTIONS}/invalid-package") from None


def on_deploy(request: Request, context: GatewayContext) -> Response:
    owner = deployer(request, context).user
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
    identity = deployer(request, context)
    immutable(context, process_id)
    processor = read_package(request, context)
    try:
        deployment.replace(context.store, process_id, processor, identity.user, any_owner=identity.is_operator)
    except deployment.NotDeployed:
        raise no_such_process(process_id) from None
    except deployment.NotOwner as exc:
        raise Problem(403, "Forbidden", str(exc)) from None
    except deployment.DuplicateProcess as exc:
        raise Problem(400, "Invalid application package", str(exc), f"{DRU_EXCEPTIONS}/invalid-package") from None
    context.catalog_changed()
    return no_content()


def on_undeploy(request: Request, context: GatewayContext, process_id: str) -> Response:
    identity = deployer(request, context)
    immutable(context, process_id)
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
                      "processors); deploy a new id instead", f"{DRU_EXCEPTIONS}/immutable-process")
