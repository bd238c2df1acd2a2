"""A real PostgreSQL server for the tests: a fresh, migrated database per test.

The server is one the machine runs (`.ci/run` installs Debian's `postgresql` and starts it;
pytest-postgresql's own server cannot start as root, which CI is). Tests reach it through
``OMNI_TEST_POSTGRES_URL``: a role that may create databases, default
``postgresql://omni:omni@127.0.0.1:5432/postgres``. Where no server answers, PostgreSQL tests
skip with the reason, unless ``OMNI_TEST_POSTGRES_REQUIRED=1`` (CI sets it) makes that a failure.

Each test gets its own database, copied from a template migrated once per run
(``CREATE DATABASE ... TEMPLATE`` copies files: ~30 ms, where migrating takes ~1 s).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from sqlalchemy.engine import make_url

DEFAULT_URL = "postgresql://omni:omni@127.0.0.1:5432/postgres"


@dataclass(frozen=True, slots=True)
class PostgresServer:
    """The server, through the maintenance database; ``url_for`` names a database on it."""

    admin_url: str  # plain postgresql:// (asyncpg's own form)

    def url_for(self, database: str) -> str:
        """The SQLAlchemy async URL of ``database`` on this server."""
        url = make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=database)
        return url.render_as_string(hide_password=False)

    def drop(self, database: str) -> None:
        """Drop ``database``, ending our sessions still in it (WITH (FORCE)). That cannot end an
        autovacuum worker's for a role that is no superuser; a plain DROP can (it stops the
        worker and waits for it), so that is the second try."""
        try:
            self.run(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        except Exception:
            for attempt in range(3):
                try:
                    self.run(f'DROP DATABASE IF EXISTS "{database}"')
                    return
                except Exception:
                    if attempt == 2:
                        raise
                    time.sleep(0.5)

    def run(self, *statements: str) -> None:
        """Run statements (outside a transaction, as CREATE/DROP DATABASE need) as the admin role."""

        async def go() -> None:
            import asyncpg

            conn = await asyncpg.connect(self.admin_url, timeout=5)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        asyncio.run(go())


def _reachable(url: str) -> str | None:
    """None when the server answers, else why not."""
    try:
        PostgresServer(url).run("SELECT 1")
    except Exception as exc:  # any driver, network or auth failure is a reason to skip
        return f"{exc.__class__.__name__}: {exc}"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> PostgresServer:
    url = os.environ.get("OMNI_TEST_POSTGRES_URL", DEFAULT_URL)
    url = url.replace("postgresql+asyncpg://", "postgresql://", 1)
    problem = _reachable(url)
    if problem is not None:
        reason = f"no PostgreSQL server at {make_url(url).render_as_string()} ({problem})"
        if os.environ.get("OMNI_TEST_POSTGRES_REQUIRED") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    return PostgresServer(url)


@pytest.fixture(scope="session")
def postgres_template(postgres_server: PostgresServer) -> Iterator[str]:
    """A database migrated to head, the template of every test's database."""
    from memory.migrate import upgrade

    name = f"omni_template_{uuid.uuid4().hex[:12]}"
    postgres_server.run(f'CREATE DATABASE "{name}"')
    try:
        upgrade(postgres_server.url_for(name))
        yield name
    finally:
        postgres_server.drop(name)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer, postgres_template: str) -> Iterator[str]:
    """The URL of a database of this test's own, at head."""
    name = f"omni_test_{uuid.uuid4().hex[:12]}"
    postgres_server.run(f'CREATE DATABASE "{name}" TEMPLATE "{postgres_template}"')
    try:
        yield postgres_server.url_for(name)
    finally:
        postgres_server.drop(name)
