"""Reading JSON the way a Mesos master's codec (stout) reads protobuf JSON, one field at a time.

``null`` is absent, a single value stands for a one-item array, numbers and
booleans may be written as strings; a value of the wrong kind is a
``TaskListError`` that names the field (``tasks[2].command.value``).
"""

from __future__ import annotations

from typing import Any


class TaskListError(ValueError):
    """A task list that is not valid JSON or not of the TaskGroupInfo shape; ``field`` is the first bad one."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


def json_object(value: Any, where: str, required: bool = False) -> dict[str, Any]:
    if value is None:
        if required:
            raise TaskListError(where, "is required")
        return {}
    if not isinstance(value, dict):
        raise TaskListError(where, f"expected a JSON object, not {_kind(value)}")
    return value


def json_array(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    return [item for item in value if item is not None] if isinstance(value, list) else [value]


def json_string(value: Any, where: str, required: bool = False) -> str | None:
    if value is None:
        if required:
            raise TaskListError(where, "is required")
        return None
    if not isinstance(value, str):
        raise TaskListError(where, f"expected a string, not {_kind(value)}")
    return value


def json_number(value: Any, where: str, required: bool = False) -> float:
    if value is None and required:
        raise TaskListError(where, "is required")
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise TaskListError(where, f"expected a number, not {_kind(value)}")
    try:
        number = float(value)
    except ValueError:
        raise TaskListError(where, f"{value!r} is not a number") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise TaskListError(where, f"{value!r} is not a finite number")
    return number


def json_boolean(value: Any, where: str, default: bool) -> bool:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise TaskListError(where, f"expected true or false, not {_kind(value)}")


_KINDS = ((bool, "a boolean"), (dict, "an object"), (list, "an array"), (int, "a number"), (float, "a number"))


def _kind(value: Any) -> str:
    """How a wrong value is named in an error (a string shows its beginning)."""
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    return next((name for kind, name in _KINDS if isinstance(value, kind)), "null")
