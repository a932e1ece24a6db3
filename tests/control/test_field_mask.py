"""One update_mask rule for both ways of applying a mask (control/field_mask.py): no services."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2

from vigil.api.v1 import watchlist_pb2
from vigil.control.field_mask import apply_mask, masked_changes, split_secrets
from vigil.storage.repositories.base import InvalidArgument

VALUES = {"name": "n", "description": "d", "is_active": True}


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=list(paths))


def apply(*paths: str) -> list[str]:
    source, target = watchlist_pb2.Watchlist(name="new"), watchlist_pb2.Watchlist(name="old")
    return apply_mask(source, target, mask(*paths), resource="watchlist", updatable=("name", "is_active"),
                      immutable=("created_by",))


@pytest.mark.parametrize("paths, why", [((), "name the"), (("id",), "cannot be changed"),
                                        (("bogus",), "not an updatable"), (("created_by",), "cannot be changed")])
def test_both_ways_refuse_the_same_paths_the_same_way(paths, why):
    for update in (lambda: masked_changes(mask(*paths), VALUES, resource="watchlist", immutable=("created_by",)),
                   lambda: apply(*paths)):
        with pytest.raises(InvalidArgument) as refused:
            update()
        assert refused.value.field == "update_mask" and why in str(refused.value)


def test_apply_copies_the_named_fields_only():
    source, target = watchlist_pb2.Watchlist(name="new", description="d"), watchlist_pb2.Watchlist(name="old")
    assert apply_mask(source, target, mask("name"), resource="watchlist", updatable=("name", "description")) == ["name"]
    assert (target.name, target.description) == ("new", "")


def test_every_field_is_the_top_level_updatable_ones():
    assert masked_changes(mask("*"), {**VALUES, "vpn.type": "x"}, resource="site") == VALUES
    assert masked_changes(mask("name"), VALUES, resource="watchlist") == {"name": "n"}


def test_secrets_are_split_off_and_never_named_by_every_field():
    rest, secrets = split_secrets(mask("name", "email.password"), ["email.password"])
    assert (list(rest.paths), secrets) == (["name"], ["email.password"])
    rest, secrets = split_secrets(mask("*"), ["email.password"])
    assert (list(rest.paths), secrets) == (["*"], [])
