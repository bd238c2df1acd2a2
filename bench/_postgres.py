"""The database a memory bench runs on: SQLite by default, or PostgreSQL.

``--database-url URL`` names a database (SQLAlchemy async URL, e.g.
``postgresql+asyncpg://omni:omni@127.0.0.1:5432/bench``); ``--postgres`` makes a throwaway
one on the test server (tests/postgres.py: ``OMNI_TEST_POSTGRES_URL``, default
``postgresql://omni:omni@127.0.0.1:5432/postgres``, a role that may create databases) and drops
it when the bench ends, whatever happens. Either way the bench migrates it to head.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from tests.postgres import DEFAULT_URL, PostgresServer


def add_arguments(parser: argparse.ArgumentParser) -> None:
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--database-url", help="run on this database (SQLAlchemy async URL) instead of SQLite")
    where.add_argument(
        "--postgres",
        action="store_true",
        help="run on a throwaway PostgreSQL database on the test server (OMNI_TEST_POSTGRES_URL)",
    )


def server() -> PostgresServer:
    url = os.environ.get("OMNI_TEST_POSTGRES_URL", DEFAULT_URL)
    return PostgresServer(url.replace("postgresql+asyncpg://", "postgresql://", 1))


@contextmanager
def throwaway() -> Iterator[str]:
    """The async URL of a new, empty database on the test server, dropped on the way out."""
    name = f"omni_bench_{uuid.uuid4().hex[:12]}"
    pg = server()
    pg.run(f'CREATE DATABASE "{name}"')
    try:
        yield pg.url_for(name)
    finally:
        _drop(pg, name)


def _drop(pg: PostgresServer, name: str) -> None:
    import asyncpg  # type: ignore[import-untyped]

    try:
        # Plain DROP stops an autovacuum worker busy in the database (likely after a bulk
        # load), which WITH (FORCE) may not: that worker is not ours to terminate.
        pg.run(f'DROP DATABASE IF EXISTS "{name}"')
    except asyncpg.ObjectInUseError:  # a connection of ours left open (the bench failed)
        pg.run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def chosen(args: argparse.Namespace, sqlite_url: str) -> Iterator[str]:
    """The URL the bench runs on: ``--postgres``'s throwaway, ``--database-url``, or ``sqlite_url``."""
    if args.postgres:
        with throwaway() as url:
            yield url
    else:
        yield args.database_url or sqlite_url
