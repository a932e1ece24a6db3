"""Checks of request fields shared by the gRPC handlers: ids, text, enums, time ranges, pages.
Each failure is InvalidArgument naming the request's field path."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from uuid import UUID

from google.protobuf.message import Message

from vigil.control.convert import EnumMap, from_timestamp
from vigil.errors import InvalidArgument
from vigil.storage.repositories.base import as_uuid


def required_id(field: str, value: str) -> UUID:
    if not value:
        raise InvalidArgument(field, "is required")
    return as_uuid(field, value)


def id_list(field: str, values: Sequence[str]) -> list[UUID]:
    return [as_uuid(f"{field}[{i}]", v) for i, v in enumerate(values)]


def enum_label(enum: EnumMap, number: int, field: str) -> str:
    """enum.label(number), refusing UNSPECIFIED and unknown numbers with the request's field path."""
    try:
        return enum.label(number)
    except InvalidArgument as exc:
        raise InvalidArgument(field, exc.message) from None


def required_message(request: Message, field: str) -> Message:
    if not request.HasField(field):
        raise InvalidArgument(field, "is required")
    return getattr(request, field)


def page_request(request: Message) -> dict[str, object]:
    """A list request's page as the repositories take it (the token checked: repository_token)."""
    return {"page_size": request.page_size, "page_token": repository_token(request)}


def time_bounds(request: Message, field: str) -> tuple[datetime | None, datetime | None]:
    """A TimeRange field as (inclusive start, exclusive end); None for an open side."""
    if not request.HasField(field):
        return None, None
    bounds = getattr(request, field)
    start, end = (instant(bounds, f"{field}.{side}") for side in ("start_time", "end_time"))
    if start is not None and end is not None and end <= start:
        raise InvalidArgument(f"{field}.end_time", "must be later than start_time")
    return start, end


def instant(message: Message, path: str) -> datetime | None:
    """The Timestamp at `path` (a dotted path ending in a field of `message`), or None when unset."""
    try:
        return from_timestamp(message, path.rsplit(".", 1)[-1])
    except (ValueError, OverflowError):
        raise InvalidArgument(path, "is not a valid timestamp") from None


def checked_text(path: str, value: str, max_length: int, *, required: bool = False) -> str | None:
    """The string within 1..max_length characters when required, else None when empty."""
    if "\x00" in value:
        raise InvalidArgument(path, "must not contain NUL characters")
    if len(value) > max_length:
        raise InvalidArgument(path, f"must be at most {max_length} characters, got {len(value)}")
    if required and not value.strip():
        raise InvalidArgument(path, "is required")
    return value or None


def is_active(message: Message) -> bool:
    return message.is_active if message.HasField("is_active") else True


@contextmanager
def fields_of(message_path: str) -> Iterator[None]:
    """Repositories name a column ("polygon"); the API names the field in the request ("zone.polygon")."""
    try:
        yield
    except InvalidArgument as exc:
        raise InvalidArgument(f"{message_path}.{exc.field}", exc.message) from exc


# --------------------------------------------------------------------------- page tokens
# Every List RPC that pages hands out api_token(request, repository's token) and reads the next
# request's with repository_token(request): the token carries a fingerprint of the filters it was
# made under, so a token reused with other filters is INVALID_ARGUMENT naming page_token rather
# than a silently wrong page. The keyset inside is the repository's (storage/repositories/base.py).


def _query_fingerprint(request: Message) -> str:
    """Identifies a list request's filters (everything but page_size and page_token)."""
    query = type(request)()
    query.CopyFrom(request)
    query.ClearField("page_size")
    query.ClearField("page_token")
    return hashlib.sha256(query.SerializeToString(deterministic=True)).hexdigest()[:16]


def repository_token(request: Message) -> str | None:
    """The repository's page token inside the request's; refused under filters other than its first page's."""
    if not request.page_token:
        return None
    fingerprint, _, token = request.page_token.partition(".")
    if fingerprint != _query_fingerprint(request) or not token:
        raise InvalidArgument("page_token", "is not a page token of this query; keep the filters of the first page")
    return token


def api_token(request: Message, token: str | None) -> str:
    """The next_page_token of a response: the repository's token under the request's fingerprint."""
    return f"{_query_fingerprint(request)}.{token}" if token else ""
