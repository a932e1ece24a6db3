"""Updates by FieldMask, one rule for every Update RPC.

The paths of an update_mask are checked the same way everywhere (checked_paths):
  * an empty mask is INVALID_ARGUMENT: name the fields to update, or "*";
  * "*" names every updatable top-level field, never an input-only secret;
  * "id" and the immutable fields "cannot be changed"; any other path that is not updatable
    (unknown, output-only) is refused listing those that are. A typo never updates nothing.

Two ways of applying them, by what the service holds:
  apply_mask(source, target, mask, ...)    the paths copied from the request onto the stored
                                           resource's message, which is then checked whole like a
                                           create (cross-field rules hold after any update);
  masked_changes(mask, values, ...)        the paths' values picked from {path: repository value}.
Input-only secrets (a password, a VPN config) change only when named: split_secrets() takes
them out of the mask first.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from google.protobuf import field_mask_pb2
from google.protobuf.message import Message

from vigil.errors import InvalidArgument

FIELD = "update_mask"
EVERY_FIELD = "*"


def checked_paths(mask: field_mask_pb2.FieldMask, *, resource: str, updatable: Collection[str],
                  immutable: Collection[str] = (), output_only: Collection[str] = (),
                  subpaths: bool = False) -> list[str]:
    """The mask's paths ("*" expanded), each one updatable. `updatable` lists exact paths, or with
    `subpaths` the top-level fields whose parts ("schedule.enabled") may be named too."""
    paths = list(mask.paths)
    if not paths:
        raise InvalidArgument(FIELD, f'name the {resource} fields to update (or "{EVERY_FIELD}")')
    if paths == [EVERY_FIELD]:
        return [path for path in updatable if "." not in path]
    for path in paths:
        top = path.split(".", 1)[0]
        if top == "id" or top in immutable or path in immutable:
            raise InvalidArgument(FIELD, f"{path} cannot be changed")
        known = top in updatable if subpaths else path in updatable
        if not known or path in output_only:
            raise InvalidArgument(FIELD, f"{path!r} is not an updatable {resource} field; "
                                         f"updatable: {', '.join(updatable)}")
    return paths


def split_secrets(mask: field_mask_pb2.FieldMask,
                  secrets: Collection[str]) -> tuple[field_mask_pb2.FieldMask, list[str]]:
    """(the mask without its input-only secret paths, the secret paths it names)."""
    named = [path for path in mask.paths if path in secrets]
    return field_mask_pb2.FieldMask(paths=[path for path in mask.paths if path not in secrets]), named


def masked_changes(mask: field_mask_pb2.FieldMask, values: Mapping[str, object], *, resource: str,
                   immutable: Collection[str] = ()) -> dict[str, object]:
    """The changes the mask names, taken from `values` (field path → repository value)."""
    return {path: values[path] for path in checked_paths(mask, resource=resource, updatable=values,
                                                         immutable=immutable)}


def apply_mask(source: Message, target: Message, mask: field_mask_pb2.FieldMask, *, resource: str,
               updatable: Collection[str], immutable: Collection[str] = (),
               output_only: Collection[str] = ()) -> list[str]:
    """Copy the fields the mask names ("schedule", "quiet_hours.enabled") from source into target and
    return the paths. A field the source leaves unset is cleared, so its server default applies."""
    paths = checked_paths(mask, resource=resource, updatable=updatable, immutable=immutable,
                          output_only=output_only, subpaths=True)
    for path in paths:
        _copy(source, target, path.split("."), path)
    return paths


def _copy(source: Message, target: Message, parts: list[str], path: str) -> None:
    name = parts[0]
    field = target.DESCRIPTOR.fields_by_name.get(name)
    if field is None:
        raise InvalidArgument(FIELD, f"{path!r} names no field")
    if len(parts) > 1:
        if field.message_type is None or field.is_repeated:
            raise InvalidArgument(FIELD, f"{path!r}: {name} has no fields of its own")
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
