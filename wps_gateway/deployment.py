"""Deploying processors at run time (OGC API - Processes Part 2: Deploy, Replace, Undeploy).

A deployed processor is the same descriptor a folder under ``processes/``
holds, sent as an application package and kept in the job store, so every
replica sees it and a restart keeps it. ``parse_descriptor`` validates both
kinds: the registry and Deploy have one code path. Jobs keep the descriptor
they were submitted with, so replacing a processor never changes a running job.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from processes.descriptor import DescriptorError, Processor, parse_descriptor

from .store.db import Store
from .store.models import DeployedProcessor


class DeploymentError(Exception):
    """Base of what a deploy, replace or undeploy refuses."""


class InvalidPackage(DeploymentError):
    """The application package is not a processor descriptor the gateway can run."""


class DuplicateProcess(DeploymentError):
    """A processor with that id exists already (deploy) or the id in the package differs (replace)."""


class ImmutableProcess(DeploymentError):
    """Shipped processors (folders) cannot be replaced or undeployed through the API."""


class NotDeployed(DeploymentError):
    """No deployed processor has that id."""


class NotAuthorized(DeploymentError):
    """No or wrong deployer credentials."""


def descriptor_from_package(package: Any) -> dict[str, Any]:
    """Our descriptor from an application package.

    Accepts the descriptor shape of ``processes/*/descriptor.yaml`` and the
    OGC ``ogcapppkg`` shape (``processDescription.process`` nested, the
    execution unit possibly a one-element list); ``workflow`` is ours.
    """
    if not isinstance(package, dict):
        raise InvalidPackage("an application package is a JSON object with processDescription, "
                             "executionUnit and workflow")
    descriptor = {k: v for k, v in package.items() if k != "bundle"}  # bundles are the gateway's to name
    description = descriptor.get("processDescription")
    if isinstance(description, dict) and isinstance(description.get("process"), dict):
        descriptor["processDescription"] = description["process"]
    unit = descriptor.get("executionUnit")
    if isinstance(unit, list) and len(unit) == 1:
        unit = unit[0]
    if isinstance(unit, dict) and isinstance(unit.get("unit"), dict):  # a qualified value
        unit = unit["unit"]
    descriptor["executionUnit"] = unit
    return descriptor


def processor_from_package(package: Any) -> Processor:
    """The validated processor, or InvalidPackage saying what is wrong."""
    descriptor = descriptor_from_package(package)
    try:
        return parse_descriptor(descriptor)
    except DescriptorError as exc:
        raise InvalidPackage(str(exc)) from None


def deploy(store: Store, processor: Processor, owner: str, taken: set[str]) -> None:
    """Keep a new processor; ``taken`` are the ids already offered (shipped ones included)."""
    duplicate = DuplicateProcess(f"a process with id '{processor.id}' exists already; replace it with PUT")
    try:
        with store.session() as session:
            if processor.id in taken or session.get(DeployedProcessor, processor.id) is not None:
                raise duplicate
            session.add(DeployedProcessor(id=processor.id, version=processor.version, descriptor=processor.raw,
                                          owner=owner))
    except IntegrityError:  # another replica deployed the same id a moment ago
        raise duplicate from None


def replace(store: Store, process_id: str, processor: Processor, owner: str) -> None:
    """Make ``processor`` the current version of the deployed ``process_id``."""
    if processor.id != process_id:
        raise DuplicateProcess(f"the package describes '{processor.id}', not '{process_id}'")
    with store.session() as session:
        row = session.get(DeployedProcessor, process_id)
        if row is None:
            raise NotDeployed(process_id)
        row.version, row.descriptor, row.owner = processor.version, processor.raw, owner


def undeploy(store: Store, process_id: str) -> None:
    with store.session() as session:
        row = session.get(DeployedProcessor, process_id)
        if row is None:
            raise NotDeployed(process_id)
        session.delete(row)


def deployed_processors(store: Store) -> dict[str, Processor]:
    """Every deployed processor; one that no longer parses is left out (and still undeployable)."""
    with store.session() as session:
        rows = session.scalars(select(DeployedProcessor)).all()
        found = {}
        for row in rows:
            try:
                found[row.id] = parse_descriptor(row.descriptor)
            except DescriptorError:
                continue
        return found


def catalog_state(store: Store) -> tuple[tuple[str, str, str], ...]:
    """A fingerprint of the deployed processors: every (id, version, last change), so that a replace
    from a replica with a slower clock is still seen (a handful of rows; no descriptors read)."""
    with store.session() as session:
        rows = session.execute(select(DeployedProcessor.id, DeployedProcessor.version, DeployedProcessor.updated)
                               .order_by(DeployedProcessor.id)).all()
    return tuple((pid, version, str(updated)) for pid, version, updated in rows)


def parse_deployers(text: str) -> dict[str, str]:
    """``name:token, name:token`` as {name: token}."""
    deployers = {}
    for position, part in enumerate((p for p in text.split(",") if p.strip()), start=1):
        name, sep, token = part.strip().partition(":")
        if not sep or not name or not token:  # the entry may be a bare token: never echo it
            raise ValueError(f"deploy_tokens entry {position} is not name:token")
        deployers[name] = token
    return deployers


def authenticate(authorization: str | None, deployers: dict[str, str]) -> str:
    """The deployer named by an ``Authorization`` header (Bearer token, or Basic name:token)."""
    if not deployers:
        raise NotAuthorized("deploying processors is disabled on this gateway ([gateway] deploy_tokens is empty)")
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        for name, token in deployers.items():
            if hmac.compare_digest(credentials.strip(), token):
                return name
    elif scheme.lower() == "basic":
        try:
            name, _, token = base64.b64decode(credentials.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            name, token = "", ""
        if name in deployers and hmac.compare_digest(token, deployers[name]):
            return name
    raise NotAuthorized("deploying needs a deployer's credentials (Authorization: Bearer <token>)")
