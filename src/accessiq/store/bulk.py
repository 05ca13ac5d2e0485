"""Writes beside the ORM: many rows into one table for the sync's hot path (inside the caller's
transaction), and inserts that leave a row someone else inserted first alone.

SQLAlchemy Core's executemany costs tens of microseconds of Python per row in statement and
parameter handling; a first sync of 100,000 users writes well over a million rows. Here the rows
go to the driver directly: `executemany` of one prepared INSERT on SQLite, `COPY ... FROM STDIN`
(psycopg 3) on PostgreSQL. Values go through each column's own bind processor, so what is stored
is exactly what the ORM would store (JSON text, the UTC datetime format).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from operator import itemgetter
from typing import Any

from sqlalchemy import Column, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

_Processor = Callable[[Any], Any] | None


def insert_many(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]] | Sequence[Sequence[Any]],
    same: Mapping[str, Any] | None = None,
    *,
    columns: Sequence[str] | None = None,
    converted: bool = False,
) -> None:
    """Insert `rows` (dicts of column name -> value, all with the keys of the first; or, with
    `columns`, tuples of those columns' values) into `table`.

    `same` holds values every row shares (converted once); columns left out of both take their
    scalar default, or NULL. `converted` tuple rows hold what the driver takes already (JSON as
    text): they go to it as they are. Nothing is read back.
    """
    if not rows:
        return
    tuple_rows = columns is not None
    names = list(columns) if columns is not None else list(rows[0])  # type: ignore[arg-type]
    defaults = {
        column.name: column.default.arg  # type: ignore[attr-defined]
        for column in table.columns
        if column.name not in names and column.default is not None and column.default.is_scalar
    } | dict(same or {})
    connection = session.connection()
    dialect = connection.dialect
    targets = [table.columns[name] for name in [*names, *defaults]]
    processors = [
        None if converted and i < len(names) else _processor(column, dialect) for i, column in enumerate(targets)
    ]
    tuples = _tuples(rows, None if tuple_rows else names, list(defaults.values()), processors)
    raw: Any = connection.connection.dbapi_connection  # sqlite3 takes an iterator of rows
    assert raw is not None
    column_list = ", ".join(dialect.identifier_preparer.quote(column.name) for column in targets)
    target = dialect.identifier_preparer.format_table(table)
    if dialect.name == "postgresql":
        statement = f"COPY {target} ({column_list}) FROM STDIN"
    else:
        statement = f"INSERT INTO {target} ({column_list}) VALUES ({', '.join('?' * len(targets))})"
    cursor = raw.cursor()
    try:
        if dialect.name == "postgresql":
            with cursor.copy(statement) as copy:
                for values in tuples:
                    copy.write_row(values)
        else:
            cursor.executemany(statement, tuples)
    except dialect.loaded_dbapi.Error as exc:
        # The same exceptions SQLAlchemy raises (IntegrityError, OperationalError, ...), so callers
        # tell a constraint or a stale SQLite snapshot apart as they do for any statement.
        raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error) from exc
    finally:
        cursor.close()


def insert_missing(session: Session, model: type[Any], values: list[dict[str, Any]] | dict[str, Any]) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on either backend: two processes may meet a new row at
    once, and the second insert is a no-op."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(model).values(values).on_conflict_do_nothing())


def _processor(column: Column[Any], dialect: Dialect) -> _Processor:
    return column.type.dialect_impl(dialect).bind_processor(dialect)


def _tuples(
    rows: Iterable[Any], names: list[str] | None, fixed: list[Any], processors: list[_Processor]
) -> Iterator[tuple[Any, ...]]:
    """Each row's values in column order, converted, followed by the `fixed` ones; `names` picks
    the values out of dict rows, and is None for rows that are tuples of them already."""
    given = len(processors) - len(fixed)
    pick: Callable[[Any], list[Any]] = list
    if names is not None and len(names) == 1:
        only = names[0]
        pick = lambda row: [row[only]]  # noqa: E731
    elif names is not None:
        take = itemgetter(*names)
        pick = lambda row: list(take(row))  # noqa: E731
    converted = [(i, processor) for i, processor in enumerate(processors[:given]) if processor is not None]
    tail = tuple(
        value if processor is None else processor(value)
        for value, processor in zip(fixed, processors[given:], strict=True)
    )
    if names is None and not converted and not tail:  # the driver's values already
        yield from rows
        return
    for row in rows:
        values = pick(row)
        for i, processor in converted:
            values[i] = processor(values[i])
        yield (*values, *tail)
