"""The WHERE builder of the repositories: which conditions a filter adds, and that each parameter
stays with its placeholder. No database: the SQL is rendered without a connection."""

from __future__ import annotations

from datetime import UTC, datetime
from uuid import UUID

import pytest
from psycopg import sql

from vigil.storage.repositories.filters import Filters

pytestmark = pytest.mark.unit

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = datetime(2026, 2, 1, tzinfo=UTC)


def text(filters: Filters) -> str:
    return filters.sql().as_string(None)


def test_no_condition_is_true():
    assert (text(Filters()), Filters().params) == ("TRUE", [])


def test_none_adds_nothing():
    filters = Filters().eq("is_active", None).any("camera_id", None).range("timestamp", None, None)
    assert (text(filters), filters.params) == ("TRUE", [])


def test_eq_keeps_false_and_zero():
    filters = Filters().eq("is_active", False).eq("attempt", 0)
    assert text(filters) == '"is_active" = %s AND "attempt" = %s'
    assert filters.params == [False, 0]


def test_any_takes_a_list_and_an_empty_one_matches_nothing():
    ids = (UUID(int=1), UUID(int=2))
    filters = Filters().any("camera_id", iter(ids)).any("zone_id", [])
    assert text(filters) == '"camera_id" = ANY(%s) AND "zone_id" = ANY(%s)'
    assert filters.params == [list(ids), []]


def test_any_casts_to_the_enum_array():
    filters = Filters().any("severity", ["high"], cast="severity_enum")
    assert text(filters) == '"severity" = ANY(%s::"severity_enum"[])'
    assert filters.params == [["high"]]


@pytest.mark.parametrize(("low", "high", "expected", "params"), [
    (T0, T1, '"created_at" >= %s AND "created_at" < %s', [T0, T1]),
    (T0, None, '"created_at" >= %s', [T0]),
    (None, T1, '"created_at" < %s', [T1]),
])
def test_range_is_inclusive_from_and_exclusive_to(low, high, expected, params):
    filters = Filters().range("created_at", low, high)
    assert (text(filters), filters.params) == (expected, params)


def test_raw_is_added_as_written_with_all_its_parameters():
    filters = Filters().raw("purging_at IS NULL").raw(
        sql.SQL("{} IN (%s, %s)").format(sql.Identifier("name")), "a", "b")
    assert text(filters) == 'purging_at IS NULL AND "name" IN (%s, %s)'
    assert filters.params == ["a", "b"]


def test_parameters_follow_their_placeholders_in_order():
    filters = (Filters().eq("a", 1).raw("b BETWEEN %s AND %s", 2, 3).any("c", [4])
               .eq("skipped", None).range("d", 5, 6))
    rendered = text(filters)
    assert rendered.count("%s") == len(filters.params) == 6
    assert filters.params == [1, 2, 3, [4], 5, 6]
    assert rendered.index('"a"') < rendered.index("b BETWEEN") < rendered.index('"c"') < rendered.index('"d" >=')


def test_copy_is_independent():
    base = Filters().eq("person_id", 7)
    page = base.copy().raw("(created_at, id) < (%s, %s)", T0, 8)
    assert (text(base), base.params) == ('"person_id" = %s', [7])
    assert (text(page), page.params) == ('"person_id" = %s AND (created_at, id) < (%s, %s)', [7, T0, 8])


def test_column_names_are_quoted_identifiers():
    filters = Filters().eq('odd"name', 1)
    assert text(filters) == '"odd""name" = %s'
