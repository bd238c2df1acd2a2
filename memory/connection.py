"""What the repositories talk to: a connection and an ORM session, one face for two drivers.

SQLite runs through SQLAlchemy's plain (sync) API, in place on the event loop's thread: its
statements take tens of microseconds, and the asyncio layer around an async driver (a greenlet
switch and a driver coroutine per cursor call) costs more than that (measured: a one-statement
transaction took 0.38 ms that way, 0.17 ms this way). Other databases (PostgreSQL) go through
their async driver. Either way the repositories ``await`` the same
methods. Results are the drivers' own (``CursorResult``, ``Result``), typed ``Any`` here: the
statements' row types do not survive a protocol.
"""

from __future__ import annotations

from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, ScalarResult
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import Session
from sqlalchemy.sql.base import Executable

T = TypeVar("T")


class Conn(Protocol):
    """A connection for Core statements."""

    @property
    def dialect(self) -> Dialect: ...

    async def execute(self, statement: Executable, parameters: Any = None) -> Any: ...

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any: ...

    def in_transaction(self) -> bool: ...

    async def driver_connection(self) -> Any:
        """The driver's own connection (``sqlite3.Connection`` for SQLite)."""
        ...


class InlineConn:
    """A sync connection, run in place."""

    def __init__(self, conn: Connection) -> None:
        self.sync = conn

    @property
    def dialect(self) -> Dialect:
        return self.sync.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> Any:
        return self.sync.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return self.sync.scalar(statement, parameters)

    def in_transaction(self) -> bool:
        return self.sync.in_transaction()

    async def driver_connection(self) -> Any:
        return self.sync.connection.driver_connection


class AwaitedConn:
    """An async driver's connection."""

    def __init__(self, conn: AsyncConnection) -> None:
        self.conn = conn

    @property
    def dialect(self) -> Dialect:
        return self.conn.dialect

    async def execute(self, statement: Executable, parameters: Any = None) -> Any:
        return await self.conn.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return await self.conn.scalar(statement, parameters)

    def in_transaction(self) -> bool:
        return self.conn.in_transaction()

    async def driver_connection(self) -> Any:
        return (await self.conn.get_raw_connection()).driver_connection


class Sess(Protocol):
    """An ORM session, in a transaction."""

    def add(self, instance: object) -> None: ...

    async def get(self, entity: type[T], ident: Any) -> T | None: ...

    async def execute(self, statement: Executable, parameters: Any = None) -> Any: ...

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any: ...

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]: ...

    async def delete(self, instance: object) -> None: ...

    async def flush(self) -> None: ...

    async def refresh(self, instance: object) -> None: ...


class InlineSession:
    """A sync ORM session, run in place."""

    def __init__(self, session: Session) -> None:
        self.sync = session

    def add(self, instance: object) -> None:
        self.sync.add(instance)

    async def get(self, entity: type[T], ident: Any) -> T | None:
        return self.sync.get(entity, ident)

    async def execute(self, statement: Executable, parameters: Any = None) -> Any:
        return self.sync.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return self.sync.scalar(statement, parameters)

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return self.sync.scalars(statement, parameters)

    async def delete(self, instance: object) -> None:
        self.sync.delete(instance)

    async def flush(self) -> None:
        self.sync.flush()

    async def refresh(self, instance: object) -> None:
        self.sync.refresh(instance)


class AwaitedSession:
    """An async driver's ORM session."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    def add(self, instance: object) -> None:
        self.session.add(instance)

    async def get(self, entity: type[T], ident: Any) -> T | None:
        return await self.session.get(entity, ident)

    async def execute(self, statement: Executable, parameters: Any = None) -> Any:
        return await self.session.execute(statement, parameters)

    async def scalar(self, statement: Executable, parameters: Any = None) -> Any:
        return await self.session.scalar(statement, parameters)

    async def scalars(self, statement: Executable, parameters: Any = None) -> ScalarResult[Any]:
        return await self.session.scalars(statement, parameters)

    async def delete(self, instance: object) -> None:
        await self.session.delete(instance)

    async def flush(self) -> None:
        await self.session.flush()

    async def refresh(self, instance: object) -> None:
        await self.session.refresh(instance)
