"""How a Mesos master reads a JSON call: stout's codec, lenient where it is lenient.

Not ``json_format``: stout matches exact proto field names and silently
ignores every other key (camelCase spellings included), treats ``null`` as
absent, accepts a number or a bool written as a string, drops an unknown
name in an optional enum (a required one is an error), takes a single value
where an array is expected, and enforces proto2 required fields over the
whole message. What it ignores is reported back as ``notes``, so that tests
of our own framework can insist on sending nothing a master would drop.

``read_call`` returns the call as the master understands it: a plain dict
with only the known, non-null fields, enums as names, numbers as numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from . import proto

_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_UNSIGNED = (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED32,
             FieldDescriptor.TYPE_FIXED64)
_INTEGERS = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
             FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_SFIXED32, FieldDescriptor.TYPE_SFIXED64, *_UNSIGNED)
_DROPPED = object()  # an unknown enum name in an optional field


class CodecError(ValueError):
    """The body cannot be turned into the message: the master answers 400 with this text."""


def read_call(body: bytes) -> tuple[dict[str, Any], list[str]]:
    """Parse a scheduler call as the master does; returns (call, what was ignored). CodecError if refused."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CodecError(f"Failed to parse body into JSON: {exc}") from None
    if not isinstance(value, dict):
        raise CodecError("Failed to convert JSON into Call protobuf: Expecting a JSON object")
    if not proto.available():  # without the protos only the shape can be checked
        return value, []
    try:
        return read_message(proto.CALL, value)
    except CodecError as exc:
        raise CodecError(f"Failed to convert JSON into Call protobuf: {exc}") from None


def read_message(full_name: str, value: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Any message by name (e.g. ``mesos.TaskInfo``), read the stout way."""
    message = proto.message_class(full_name)()
    notes: list[str] = []
    result = _read_object(message, value, message.DESCRIPTOR.name, notes)
    missing = message.FindInitializationErrors()
    if missing:
        raise CodecError(f"Missing required fields: {', '.join(missing)}")
    return result, notes


def _read_object(message: Message, value: dict[str, Any], path: str, notes: list[str]) -> dict[str, Any]:
    descriptor: Descriptor = message.DESCRIPTOR
    result: dict[str, Any] = {}
    for key, item in value.items():
        field = descriptor.fields_by_name.get(key)
        if field is None:
            camel = descriptor.fields_by_camelcase_name.get(key)
            hint = f" (the field is spelled {camel.name!r})" if camel is not None and camel.name != key else ""
            notes.append(f"{path}.{key}: not a field of {descriptor.full_name}, ignored{hint}")
            continue
        if item is None:
            continue  # null is absent
        where = f"{path}.{key}"
        if _is_map(field):
            result[key] = _read_map(message, field, item, where, notes)
        elif field.is_repeated:
            items = [_read_value(message, field, element, where, notes)
                     for element in (item if isinstance(item, list) else [item]) if element is not None]
            items = [element for element in items if element is not _DROPPED]
            if items:
                result[key] = items
        else:
            if isinstance(item, list):
                raise CodecError(f"Not expecting a JSON array for field '{key}'")
            converted = _read_value(message, field, item, where, notes)
            if converted is not _DROPPED:
                result[key] = converted
    return result


def _required(field: FieldDescriptor) -> bool:
    required = getattr(field, "is_required", None)  # protobuf >= 5.28; older ones have only ``label``
    return bool(required) if required is not None else field.label == FieldDescriptor.LABEL_REQUIRED


def _is_map(field: FieldDescriptor) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def _read_map(message: Message, field: FieldDescriptor, item: Any, path: str, notes: list[str]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise CodecError(f"Expecting a JSON object for map field '{field.name}'")
    container = getattr(message, field.name)
    value_field = field.message_type.fields_by_name["value"]
    result = {}
    for key, element in item.items():
        if element is None:
            continue
        if value_field.message_type is not None:
            if not isinstance(element, dict):
                raise CodecError(f"Not expecting a JSON {_kind(element)} for field '{field.name}'")
            result[key] = _read_object(container[key], element, f"{path}.{key}", notes)
        else:
            converted = _scalar(value_field, element)
            container[key] = converted
            result[key] = converted
    return result


def _read_value(message: Message, field: FieldDescriptor, item: Any, path: str, notes: list[str]) -> Any:
    """One value of ``field`` (an element, for repeated fields): set on ``message`` and returned."""
    repeated = field.is_repeated
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        if not isinstance(item, dict):
            raise CodecError(f"Not expecting a JSON {_kind(item)} for field '{field.name}'")
        target = getattr(message, field.name).add() if repeated else getattr(message, field.name)
        target.SetInParent()
        return _read_object(target, item, path, notes)
    if field.type == FieldDescriptor.TYPE_ENUM:
        if not isinstance(item, str):
            raise CodecError(f"Not expecting a JSON {_kind(item)} for field '{field.name}'")
        if field.enum_type.values_by_name.get(item) is None:
            if _required(field):
                raise CodecError(f"Failed to find enum for '{item}'")
            notes.append(f"{path}: unknown {field.enum_type.full_name} name {item!r}, dropped")
            return _DROPPED
        converted: Any = item
        stored: Any = field.enum_type.values_by_name[item].number
    else:
        converted = stored = _scalar(field, item)
        if field.type == FieldDescriptor.TYPE_BYTES:
            stored = base64.b64decode(item)
    try:
        if repeated:
            getattr(message, field.name).append(stored)
        else:
            setattr(message, field.name, stored)
    except (TypeError, ValueError) as exc:
        raise CodecError(f"Invalid value for field '{field.name}': {exc}") from None
    return converted


def _scalar(field: FieldDescriptor, item: Any) -> Any:
    """A string, bytes (base64 text), bool or number; numbers and bools may come as strings."""
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        if not isinstance(item, str):
            raise CodecError(f"Not expecting a JSON {_kind(item)} for field '{field.name}'")
        return item
    if kind == FieldDescriptor.TYPE_BYTES:
        if not isinstance(item, str):
            raise CodecError(f"Not expecting a JSON {_kind(item)} for field '{field.name}'")
        try:
            base64.b64decode(item, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise CodecError(f"Failed to base64 decode bytes field '{field.name}': {exc}") from None
        return item
    if kind == FieldDescriptor.TYPE_BOOL:
        if isinstance(item, bool):
            return item
        if isinstance(item, str) and item in ("true", "false"):
            return item == "true"
        raise CodecError(f"Not expecting a JSON {_kind(item)} for field '{field.name}'")
    if isinstance(item, bool) or not isinstance(item, int | float | str):
        raise CodecError(f"Not expecting a JSON {_kind(item)} for field '{field.name}'")
    try:
        number = float(item) if kind in _FLOATS else int(float(item)) if isinstance(item, float) else int(item)
    except ValueError:
        raise CodecError(f"Failed to convert '{item}' to a number for field '{field.name}'") from None
    if kind in _UNSIGNED and number < 0:
        raise CodecError(f"Negative value for unsigned field '{field.name}'")
    return number


def _kind(item: Any) -> str:
    if isinstance(item, bool):
        return "boolean"
    if isinstance(item, dict):
        return "object"
    if isinstance(item, list):
        return "array"
    if isinstance(item, str):
        return "string"
    return "number" if isinstance(item, int | float) else "value"
