"""The store: engine, migrations and the transaction boundary."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, create_engine, event, inspect, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from accessiq.config import Settings
from accessiq.store.crypto import SecretBox, load_or_create_key

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).parent / "migrations"
# The newest migration (a test holds it to the migrations' head): a store is checked against it
# without loading the migration machinery, which only a store to migrate needs.
SCHEMA_HEAD = "0010"
_READING: ContextVar[bool] = ContextVar("accessiq_reading", default=False)


class Store:
    """One database: hands out transactions and the secret box for directory secrets."""

    def __init__(self, engine: Engine, secrets: SecretBox) -> None:
        self.engine = engine
        self.secrets = secrets
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._readers = sessionmaker(engine.execution_options(sqlite_begin="DEFERRED"), expire_on_commit=False)
        self._optimistic = 0
        self._optimistic_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self, *, write: bool = False) -> Iterator[Session]:
        """A session whose work commits together at the end of the block, or not at all.

        On SQLite it holds the database's write lock from the start: no other writer can slip in
        between what it reads and what it writes. Inside `reading()` it is a `read()` transaction,
        unless `write` says it writes: a read transaction that writes cannot wait for the lock.
        """
        with self._session(self._readers if _READING.get() and not write else self._sessions) as session:
            yield session

    @staticmethod
    @contextmanager
    def reading() -> Iterator[None]:
        """Within this block (and the threads it hands work to), transactions are `read()` ones.

        For work that only reads as a whole, such as answering a GET, wherever its transactions begin.
        """
        token = _READING.set(True)
        try:
            yield
        finally:
            _READING.reset(token)

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A transaction for work that reads: it never waits for a writer, and none waits for it.

        On SQLite (WAL) it reads the last committed state without the write lock. Should it write
        after all, it takes the lock then, and fails if another writer committed since it began
        reading (see `is_stale_read`); on PostgreSQL it is a plain transaction.
        """
        with self._session(self._readers) as session:
            yield session

    @contextmanager
    def writing_later(self) -> Iterator[Session]:
        """A `read()` transaction that means to write at its end (a sync's plan, then its apply).

        On SQLite any commit made meanwhile, even one to another table, makes its first write
        fail; while one is open, `quiet` is true and this process's own routine writes (lease
        heartbeats) hold off for as long as they safely can.
        """
        with self._optimistic_lock:
            self._optimistic += 1
        try:
            with self.read() as session:
                yield session
        finally:
            with self._optimistic_lock:
                self._optimistic -= 1

    @property
    def quiet(self) -> bool:
        """True while a `writing_later()` transaction is open on SQLite in this process."""
        return self._optimistic > 0 and self.dialect == "sqlite"

    @staticmethod
    @contextmanager
    def _session(sessions: sessionmaker[Session]) -> Iterator[Session]:
        session = sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def migrate(self) -> None:
        """Bring the schema to the newest migration; a store already there is only read."""
        if self.schema_is_current():
            return
        from alembic import command

        with self.engine.begin() as connection:
            config = alembic_config()
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def schema_is_current(self) -> bool:
        with self.engine.execution_options(sqlite_begin="DEFERRED").connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return False
            current = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        return current == [SCHEMA_HEAD]

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str | None = None) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if url:
        config.set_main_option("sqlalchemy.url", url)
    return config


def json_text(value: Any) -> str:
    """JSON columns: orjson (several times faster, which counts when a sync writes a million log
    rows); what it refuses (integers beyond 64 bits, NaN) the standard encoder writes as before."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except (orjson.JSONEncodeError, TypeError):
        return json.dumps(value)


def _json_loads(text: str | bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN and the like, written by the standard encoder
        return json.loads(text)


def make_engine(url: str, **kwargs: Any) -> Engine:
    kwargs = {"json_serializer": json_text, "json_deserializer": _json_loads, **kwargs}
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, **kwargs)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy, not the sqlite3 module, say when transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # 64 MiB of page cache (the default is 2 MiB): a first sync inserts hundreds of thousands of
    # rows into several indexes in random key order; with the default most of them miss the cache.
    cursor.execute("PRAGMA cache_size=-65536")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # A transaction takes the write lock up front, so one that reads and then writes cannot fail
    # half-way because another writer slipped in (SQLite has no row locks); `Store.read` does not.
    connection.exec_driver_sql(f"BEGIN {connection.get_execution_options().get('sqlite_begin', 'IMMEDIATE')}")


def is_busy(error: BaseException) -> bool:
    """True for SQLite giving up on the write lock (SQLITE_BUSY): another connection held it past
    the busy timeout, such as a sync applying a large plan."""
    original = getattr(error, "orig", None)
    return isinstance(error, OperationalError) and getattr(original, "sqlite_errorcode", None) == 5


def is_stale_read(error: BaseException) -> bool:
    """True for SQLite refusing a write in a `Store.read` transaction: another writer came first.

    SQLITE_BUSY (5) when it still holds the lock, SQLITE_BUSY_SNAPSHOT (517) when it has committed
    since this transaction began reading.
    """
    original = getattr(error, "orig", None)
    return isinstance(error, OperationalError) and getattr(original, "sqlite_errorcode", None) in (5, 517)


def open_store(settings: Settings | None = None, *, migrate: bool = True) -> Store:
    """Connect to the configured database and apply pending migrations."""
    settings = settings or Settings()
    url = settings.resolved_database_url
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    store = Store(make_engine(url), SecretBox(load_or_create_key(settings.secret_key, settings.data_dir)))
    if migrate:
        store.migrate()
    return store
