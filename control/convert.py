"""Shared conversions between protobuf messages and repository models."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message

from vigil.errors import InvalidArgument


def timestamp(value: datetime | None) -> timestamp_pb2.Timestamp | None:
    if value is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(value.astimezone(UTC))
    return ts


def from_timestamp(message: Message, field: str) -> datetime | None:
    """The field as an aware datetime, or None when unset."""
    if not message.HasField(field):
        return None
    return getattr(message, field).ToDatetime(tzinfo=UTC)


def as_json(message: Message) -> dict[str, Any]:
    """Stored form of what nodes report (GpuInfo, NodeStats, ...): the proto3 JSON mapping with proto
    field names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def from_json(stored: dict[str, Any], message: Message) -> Message:
    """Read a stored report into message; fields a later API version drops are ignored."""
    return json_format.ParseDict(stored, message, ignore_unknown_fields=True)


def text(value: UUID | str | None) -> str:
    return "" if value is None else str(value)


def optional(value: str) -> str | None:
    """proto3 strings are '' when unset; the repositories want None."""
    return value or None


class EnumMap:
    """Proto enum values ↔ the schema's enum labels, e.g. WATCHLIST_TYPE_VIP ↔ 'vip'."""

    def __init__(self, enum_type, prefix: str, field: str):
        self.field = field
        self._to_label = {}
        for value in enum_type.DESCRIPTOR.values:
            if value.number:
                self._to_label[value.number] = value.name.removeprefix(prefix).lower()
        self._to_number = {label: number for number, label in self._to_label.items()}

    def label(self, number: int, *, required: bool = True) -> str | None:
        if number == 0 and not required:
            return None
        if number not in self._to_label:
            raise InvalidArgument(self.field, f"must be one of {', '.join(sorted(self._to_number))}")
        return self._to_label[number]

    def labels(self, numbers: Iterable[int]) -> list[str]:
        return [self.label(n) for n in numbers]

    def number(self, label: str | None) -> int:
        return self._to_number.get(label, 0) if label else 0
