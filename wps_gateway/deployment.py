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
import hashlib
import hmac
import shlex
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


class UnsupportedPackage(DeploymentError):
    """A package this gateway cannot run at all (a CWL document): Part 2's unsupported media type."""


class DuplicateProcess(DeploymentError):
    """A processor with that id exists already (deploy) or the id in the package differs (replace)."""


class ImmutableProcess(DeploymentError):
    """Shipped processors (folders) cannot be replaced or undeployed through the API."""


class NotDeployed(DeploymentError):
    """No deployed processor has that id."""


class NotAuthorized(DeploymentError):
    """No or wrong deployer credentials."""


class NotOwner(DeploymentError):
    """The processor was deployed by another deployer."""


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
    if isinstance(unit, dict) and cwl_unit(unit):
        raise UnsupportedPackage(CWL_REFUSED)
    descriptor["executionUnit"] = unit
    if isinstance(unit, dict) and unit.get("type") in CONTAINER_UNITS and "workflow" not in descriptor:
        return container_descriptor(descriptor, unit)
    return descriptor


CONTAINER_UNITS = ("docker", "oci")
CWL_MEDIA_TYPES = ("application/cwl", "application/cwl+json", "application/cwl+yaml")
CWL_REFUSED = ("CWL application packages are not supported: this gateway runs processor descriptors and OGC "
               "application packages whose executionUnit is a container (type: docker or oci, with the image and "
               "its command); describe the CommandLineTool's image and command that way")


def cwl_unit(unit: dict[str, Any]) -> bool:
    """Whether an execution unit is (a reference to) a CWL document."""
    kind = str(unit.get("type") or unit.get("mediaType") or "").split(";", 1)[0].strip().lower()
    return kind in CWL_MEDIA_TYPES or "cwlVersion" in unit or str(unit.get("href", "")).endswith(".cwl")


def container_descriptor(descriptor: dict[str, Any], unit: dict[str, Any]) -> dict[str, Any]:
    """The descriptor of a package whose execution unit is one container (Part 2's docker form): one step
    runs the command it names (``command``, or the ``entry-point`` additional parameter) in the image, as
    given, with the task document in ``WPS_TASK`` like every task; ``config`` sets its resources."""
    image = unit.get("image")
    if not isinstance(image, str) or not image.strip():
        raise InvalidPackage("executionUnit.image: the container image is required")
    command = unit.get("command") or _entry_point(descriptor.get("processDescription"))
    if isinstance(command, str):
        command = shlex.split(command)
    if not command:
        raise InvalidPackage("the container execution unit names no command to run: give executionUnit.command "
                             "(or the entry-point additional parameter); the gateway does not start an image's "
                             "own entrypoint")
    config = unit.get("config") if isinstance(unit.get("config"), dict) else {}
    resources = {"cpus": config.get("cpuMin", 1), "mem": float(config.get("memoryMin", 0.25)) * 1024}
    step: dict[str, Any] = {"id": "run", "resources": resources}
    if config.get("jobTimeout"):
        step["timeout"] = config["jobTimeout"]
    kept = {k: v for k, v in unit.items() if k in ("type", "environment", "deployment", "config")}
    return {**descriptor, "executionUnit": {**kept, "image": image.strip().removeprefix("docker://"),
                                            "command": command, "appendStep": False},
            "workflow": {"steps": [step]}}


def _entry_point(description: Any) -> str | None:
    if isinstance(description, dict) and isinstance(description.get("process"), dict):
        description = description["process"]
    parameters = description.get("additionalParameters") if isinstance(description, dict) else None
    for parameter in parameters if isinstance(parameters, list) else []:
        if isinstance(parameter, dict) and parameter.get("name") == "entry-point":
            value = parameter.get("value")
            return value if isinstance(value, str) else None
    return None


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


def replace(store: Store, process_id: str, processor: Processor, deployer: str, *, any_owner: bool = False) -> None:
    """Make ``processor`` the current version of the deployed ``process_id`` (its owner's, unless ``any_owner``)."""
    if processor.id != process_id:
        raise DuplicateProcess(f"the package describes '{processor.id}', not '{process_id}'")
    with store.session() as session:
        row = _owned(session, process_id, deployer, any_owner)
        row.version, row.descriptor = processor.version, processor.raw


def undeploy(store: Store, process_id: str, deployer: str, *, any_owner: bool = False) -> None:
    with store.session() as session:
        session.delete(_owned(session, process_id, deployer, any_owner))


def _owned(session, process_id: str, deployer: str, any_owner: bool) -> DeployedProcessor:
    row = session.get(DeployedProcessor, process_id, with_for_update=True)
    if row is None:
        raise NotDeployed(process_id)
    if not any_owner and row.owner != deployer:
        raise NotOwner(f"'{process_id}' was deployed by another deployer; only they may replace or undeploy it")
    return row


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


TOKEN_HASH_PREFIX = "sha256:"


def token_hash(token: str) -> bytes:
    """What is kept of a token: its SHA-256 (any text, ASCII or not, hashes; nothing to compare in clear)."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()


def parse_deployers(text: str) -> dict[str, bytes]:
    """``name:token, name:sha256:<hex>, ...`` as {name: SHA-256 of the token}; the token itself is not kept.

    Writing the hash (``printf %s TOKEN | sha256sum``) keeps the token out of the configuration too.
    """
    deployers = {}
    for position, part in enumerate((p for p in text.split(",") if p.strip()), start=1):
        name, sep, token = part.strip().partition(":")
        if not sep or not name or not token:  # the entry may be a bare token: never echo it
            raise ValueError(f"deploy_tokens entry {position} is not name:token")
        if token.startswith(TOKEN_HASH_PREFIX):
            try:
                digest = bytes.fromhex(token[len(TOKEN_HASH_PREFIX):])
            except ValueError:
                digest = b""
            if len(digest) != hashlib.sha256().digest_size:
                raise ValueError(f"deploy_tokens entry {position}: sha256: must be followed by 64 hex digits")
            deployers[name] = digest
        else:
            deployers[name] = token_hash(token)
    return deployers


def authenticate(authorization: str | None, deployers: dict[str, bytes]) -> str:
    """The deployer named by an ``Authorization`` header (Bearer token, or Basic name:token)."""
    if not deployers:
        raise NotAuthorized("deploying processors is disabled on this gateway ([gateway] deploy_tokens is empty)")
    scheme, _, credentials = (authorization or "").partition(" ")
    if scheme.lower() == "bearer":
        offered = token_hash(credentials.strip())
        for name, digest in deployers.items():
            if hmac.compare_digest(offered, digest):
                return name
    elif scheme.lower() == "basic":
        try:
            name, _, token = base64.b64decode(credentials.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError, ValueError):
            name, token = "", ""
        if name in deployers and hmac.compare_digest(token_hash(token), deployers[name]):
            return name
    raise NotAuthorized("deploying needs a deployer's credentials (Authorization: Bearer <token>)")
