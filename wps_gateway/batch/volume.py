"""The persistent volume of a task list: ``--persistent-volume SPEC``.

SPEC is either ``ID:DISK[:CONTAINER_PATH]`` (``reduce:4096:data``: volume
``reduce`` of 4096 MiB mounted at ``data``, the default container path being
``volume``), or mesos-batch's ``--persistent_volume_resource`` unchanged: a
TaskInfo JSON (a string, a ``file://`` URL or a path) whose resources are the
cpus and mem to reserve and the disk with its ``disk.persistence.id`` and
``disk.volume.container_path``. Their role and principal, when written, must
be the framework's (``[mesos] role`` and ``principal``), or the master would
refuse the reservation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from mesos_backend import BackendError, PersistentVolume, Resources

from .codec import TaskListError, json_array, json_number, json_object, json_string
from .tasklist import load_task_list

DEFAULT_CONTAINER_PATH = "volume"


class VolumeSpecError(ValueError):
    """A SPEC the gateway cannot use; the text says which part."""


@dataclass(frozen=True)
class VolumeSpec:
    volume: PersistentVolume
    role: str | None = None  # as the mesos-batch JSON wrote them (checked against the framework's)
    principal: str | None = None


def load_volume_spec(value: str) -> str:
    """The SPEC as text: the compact form as given, the JSON one read from its file when it names one."""
    text = value.strip()
    if _compact(text):
        return text
    try:
        return load_task_list(text).decode()
    except (TaskListError, UnicodeDecodeError) as exc:
        raise VolumeSpecError(f"persistent volume {value!r}: {exc}") from None


def parse_volume_spec(text: str) -> VolumeSpec:
    text = text.strip()
    try:
        if _compact(text):
            return _parse_compact(text)
        return _parse_resources(text)
    except BackendError as exc:
        raise VolumeSpecError(str(exc)) from None


def _compact(text: str) -> bool:
    return not text.startswith(("{", "/", "file:")) and text.count(":") in (1, 2)


def _parse_compact(text: str) -> VolumeSpec:
    volume_id, disk, *path = text.split(":")
    try:
        size = float(disk)
    except ValueError:
        raise VolumeSpecError(f"persistent volume {text!r}: the disk {disk!r} is not a number of MiB "
                              "(ID:DISK[:CONTAINER_PATH])") from None
    return VolumeSpec(PersistentVolume(volume_id, path[0] if path else DEFAULT_CONTAINER_PATH, size))


def _parse_resources(text: str) -> VolumeSpec:
    """mesos-batch's persistent_volume_resource: a TaskInfo (or just its resources)."""
    try:
        info = json_object(json.loads(text), "persistent_volume_resource")
        amounts = {"cpus": 0.0, "mem": 0.0}
        volume = None
        roles, principals = set(), set()
        for n, item in enumerate(json_array(info.get("resources"), "resources")):
            at = f"resources[{n}]"
            resource = json_object(item, at)
            name = json_string(resource.get("name"), f"{at}.name", required=True)
            amount = json_number(json_object(resource.get("scalar"), f"{at}.scalar", required=True).get("value"),
                             f"{at}.scalar.value", required=True)
            roles.add(json_string(resource.get("role"), f"{at}.role"))
            reservation = json_object(resource.get("reservation"), f"{at}.reservation")
            principals.add(json_string(reservation.get("principal"), f"{at}.reservation.principal"))
            disk = json_object(resource.get("disk"), f"{at}.disk")
            if name == "disk" and disk.get("persistence") is not None:
                persistence = json_object(disk["persistence"], f"{at}.disk.persistence")
                path = json_object(disk.get("volume"), f"{at}.disk.volume").get("container_path")
                volume = (json_string(persistence.get("id"), f"{at}.disk.persistence.id", required=True), amount,
                          json_string(path, f"{at}.disk.volume.container_path") or DEFAULT_CONTAINER_PATH)
            elif name in amounts:
                amounts[name] += amount
            else:
                raise VolumeSpecError(f"persistent volume: {at}.name: only cpus, mem and the volume's disk may be "
                                      f"reserved, not {name!r}")
    except (TaskListError, ValueError) as exc:
        raise VolumeSpecError(f"persistent volume: {exc}") from None
    if volume is None:
        raise VolumeSpecError("persistent volume: no disk resource with disk.persistence.id among its resources")
    roles.discard(None)
    principals.discard(None)
    if len(roles) > 1 or len(principals) > 1:
        raise VolumeSpecError("persistent volume: its resources name more than one role or principal")
    volume_id, disk, path = volume
    return VolumeSpec(PersistentVolume(volume_id, path, disk, Resources(amounts["cpus"], amounts["mem"], 0.0)),
                      role=next(iter(roles), None), principal=next(iter(principals), None))


def volume_json(volume: PersistentVolume) -> dict:
    """How a task's spec keeps its volume (the store is JSON)."""
    return {"volume_id": volume.volume_id, "container_path": volume.container_path, "disk": volume.disk,
            "reserve": {"cpus": volume.reserve.cpus, "mem": volume.reserve.mem}}


def volume_from_json(data: dict) -> PersistentVolume:
    reserve = data.get("reserve") or {}
    return PersistentVolume(data["volume_id"], data["container_path"], float(data["disk"]),
                            Resources(float(reserve.get("cpus", 0.0)), float(reserve.get("mem", 0.0)), 0.0))
