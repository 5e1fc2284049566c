"""Accepting a ``batch`` job: who may, and whether its task list can run here, before anything is written.

The task list runs arbitrary commands, so only operators and deployers may
submit one (403 for anybody else, on every protocol). Everything a task list
says is checked at once, so that a bad one is one clear error naming its
first bad field and nothing is submitted: its shape, ``kill_after``, the
persistent volume (Mesos only, with the framework's own role and principal)
and URIs the backend can fetch. A referenced task list is read now and kept
with the job like inline data, so the job runs the list as it was.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..auth.identity import Identity, IdentityRequired
from ..config import Settings
from ..durations import DurationError, parse_duration
from ..inputs import CheckedInputs, InputError
from .codec import TaskListError
from .tasklist import BatchTask, read_task_list
from .volume import VolumeSpec, VolumeSpecError, parse_volume_spec

LOCAL_SCHEMES = ("", "file")  # what the local and YARN backends fetch (see mesos_backend/fetch.py)


def check_batch(identity: Identity, checked: CheckedInputs, settings: Settings) -> tuple[CheckedInputs, int]:
    """The inputs to keep (the task list inline) and the number of tasks; IdentityRequired or InputError."""
    if not (identity.is_operator or identity.is_deployer):
        raise IdentityRequired("the batch process runs arbitrary commands: only operators and deployers may "
                               "execute it", status=403)
    values = checked.values
    content = _content(checked)
    try:
        tasks = read_task_list(content) if content is not None else []
    except TaskListError as exc:
        raise InputError("InvalidParameterValue", "tasks", f"input 'tasks': {exc}") from None
    if values.get("kill_after"):
        try:
            parse_duration(values["kill_after"][0], "kill_after")
        except DurationError as exc:
            raise InputError("InvalidParameterValue", "kill_after", str(exc)) from None
    spec = _volume(values, settings, tasks)
    remove = bool((values.get("remove_persistent_volume") or [False])[0])
    if remove and spec is None:
        raise InputError("InvalidParameterValue", "remove_persistent_volume",
                         "remove_persistent_volume needs the persistent_volume to remove")
    if not tasks and spec is None:
        raise InputError("MissingParameterValue", "tasks", "input 'tasks' is required (a task list)", kind="missing")
    _check_uris(tasks, settings.backend)
    count = len(tasks) + (1 if spec is not None and tasks else 0) + (1 if remove else 0)
    inline = {k: v for k, v in checked.inline.items() if k != "tasks"}
    if content is not None:
        inline["tasks"] = [(0, content)]
    return replace(checked, values={**values, **({"tasks": [None]} if content is not None else {})},
                   inline=inline), count


def _content(checked: CheckedInputs) -> bytes | None:
    inline = checked.inline.get("tasks")
    if inline:
        return inline[0][1]
    reference = (checked.values.get("tasks") or [None])[0]
    if reference is None:
        return None
    parsed = urlparse(reference)
    if parsed.scheme not in LOCAL_SCHEMES:
        raise InputError("InvalidParameterValue", "tasks", "input 'tasks': give the task list inline or as a "
                                                           "file:// reference, not a download")
    try:
        return Path(unquote(parsed.path)).read_bytes()
    except OSError as exc:
        raise InputError("InvalidParameterValue", "tasks",
                         f"input 'tasks': the task list cannot be read: {exc.strerror or exc}") from None


def _volume(values: dict, settings: Settings, tasks: list[BatchTask]) -> VolumeSpec | None:
    text = (values.get("persistent_volume") or [None])[0]
    named = {t.volume_id for t in tasks if t.volume_id}
    if not text:
        if named:
            raise InputError("InvalidParameterValue", "tasks", f"input 'tasks': tasks name the persistent volume "
                                                               f"{sorted(named)[0]!r}: give it as persistent_volume")
        return None
    try:
        spec = parse_volume_spec(text)
    except VolumeSpecError as exc:
        raise InputError("InvalidParameterValue", "persistent_volume", str(exc)) from None
    if settings.backend != "mesos":
        raise InputError("InvalidParameterValue", "persistent_volume",
                         f"persistent volumes need the mesos backend, not {settings.backend}")
    role = (settings.mesos.get("role") or "*").strip()
    principal = (settings.mesos.get("principal") or "").strip() or None
    if role == "*":
        raise InputError("InvalidParameterValue", "persistent_volume",
                         "a persistent volume is reserved for the framework's role: set [mesos] role (not '*')")
    if spec.role is not None and spec.role != role:
        raise InputError("InvalidParameterValue", "persistent_volume",
                         f"the volume's resources are for role {spec.role!r}, the framework's is {role!r}")
    if spec.principal is not None and spec.principal != principal:
        raise InputError("InvalidParameterValue", "persistent_volume",
                         f"the volume's reservation is by principal {spec.principal!r}, the framework's is "
                         f"{principal or 'none'!r}")
    other = named - {spec.volume.volume_id}
    if other:
        raise InputError("InvalidParameterValue", "tasks", f"input 'tasks': tasks name the persistent volume "
                                                           f"{sorted(other)[0]!r}, not {spec.volume.volume_id!r}")
    return spec


def _check_uris(tasks: list[BatchTask], backend: str) -> None:
    if backend == "mesos":
        return  # the Mesos fetcher downloads (http, https, hdfs, ...)
    for n, task in enumerate(tasks):
        for m, uri in enumerate(task.uris):
            if urlparse(uri["value"]).scheme not in LOCAL_SCHEMES:
                raise InputError("InvalidParameterValue", "tasks",
                                 f"input 'tasks': tasks[{n}].command.uris[{m}].value: the {backend} backend fetches "
                                 f"only files (file:// or a path), not {uri['value']!r}")
