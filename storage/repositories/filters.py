"""The WHERE clause of a listing, built from optional filters.

Each helper adds its condition only when its value is given (None means "no filter"), and keeps
the parameters in the order of their placeholders, so a query never pairs a value with the wrong
`%s`:

    filters = Filters().eq("is_active", is_active).any("severity", severities, cast="severity_enum")
    filters.range("created_at", since, until)
    query = sql.SQL("SELECT ... FROM alerts WHERE {}").format(filters.sql())
    await conn.execute(query, filters.params)
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from psycopg import sql


class Filters:
    def __init__(self) -> None:
        self.where: list[sql.Composable] = []
        self.params: list[Any] = []

    def raw(self, condition: str | sql.Composable, *params: Any) -> Filters:
        """A condition as written, with one parameter per placeholder; always added."""
        self.where.append(sql.SQL(condition) if isinstance(condition, str) else condition)
        self.params.extend(params)
        return self

    def eq(self, column: str, value: Any) -> Filters:
        """`column = value`, unless value is None."""
        if value is not None:
            self.raw(sql.SQL("{} = %s").format(sql.Identifier(column)), value)
        return self

    def any(self, column: str, values: Iterable[Any] | None, *, cast: str | None = None) -> Filters:
        """`column = ANY(values)`, unless values is None (an empty list matches nothing). `cast` names
        the array's element type where the column is an enum (`%s::cast[]`)."""
        if values is None:
            return self
        placeholder = sql.SQL("%s") if cast is None else sql.SQL("%s::{}[]").format(sql.Identifier(cast))
        return self.raw(sql.SQL("{} = ANY({})").format(sql.Identifier(column), placeholder), list(values))

    def range(self, column: str, low: Any = None, high: Any = None) -> Filters:
        """`low <= column < high`, each bound left out when None (inclusive from, exclusive to)."""
        if low is not None:
            self.raw(sql.SQL("{} >= %s").format(sql.Identifier(column)), low)
        if high is not None:
            self.raw(sql.SQL("{} < %s").format(sql.Identifier(column)), high)
        return self

    def copy(self) -> Filters:
        """Another builder with these conditions, to extend without changing this one."""
        copied = Filters()
        copied.where, copied.params = list(self.where), list(self.params)
        return copied

    def sql(self) -> sql.Composable:
        """The conditions joined with AND; TRUE when there are none."""
        return sql.SQL(" AND ").join(self.where) if self.where else sql.SQL("TRUE")
