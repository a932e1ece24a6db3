"""Updates by FieldMask: the masked fields of a request copied onto the stored resource's message,
which is then checked as a whole like a create (so cross-field rules hold after any update)."""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from vigil.errors import InvalidArgument


def apply_mask(source: Message, target: Message, mask: field_mask_pb2.FieldMask, *, resource: str,
               updatable: Collection[str], immutable: Collection[str] = (),
               output_only: Collection[str] = ()) -> list[str]:
    """Copy the fields `mask` names ("schedule", "quiet_hours.enabled") from source into target and
    return the paths. A field the source leaves unset is cleared, so its server default applies;
    "*" names every updatable field. Unknown, immutable and output-only paths (top-level fields
    not updatable, or the nested paths in `output_only`) are INVALID_ARGUMENT."""
    paths = list(mask.paths)
    if not paths:
        raise InvalidArgument("update_mask", f'name the {resource} fields to update (or "*")')
    if paths == ["*"]:
        paths = list(updatable)
    for path in paths:
        top = path.split(".", 1)[0]
        if top == "id" or top in immutable:
            raise InvalidArgument("update_mask", f"{path} cannot be changed")
        if top not in updatable or path in output_only:
            raise InvalidArgument("update_mask", f"{path!r} is not an updatable {resource} field; "
                                                 f"updatable: {', '.join(updatable)}")
        _copy(source, target, path.split("."), path)
    return paths


def _copy(source: Message, target: Message, parts: list[str], path: str) -> None:
    name = parts[0]
    field = target.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise InvalidArgument("update_mask", f"{path!r} names no field")
    if len(parts) > 1:
        if field.message_type is None or field.is_repeated:
            raise InvalidArgument("update_mask", f"{path!r}: {name} has no fields of its own")
        _copy(getattr(source, name), getattr(target, name), parts[1:], path)
    elif field.is_repeated:
        target.ClearField(name)
        getattr(target, name).extend(getattr(source, name))
    elif field.message_type is not None or field.has_presence:
        if source.HasField(name):
            if field.message_type is not None:
                getattr(target, name).CopyFrom(getattr(source, name))
            else:
                setattr(target, name, getattr(source, name))
        else:
            target.ClearField(name)
    else:
        setattr(target, name, getattr(source, name))
