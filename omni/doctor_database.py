"""The database check: it exists, omni can write to it, and its schema is at head."""

from __future__ import annotations

import asyncio

from omni.doctor_check import Check
from omni.errors import SettingsError
from omni.settings import Settings, require_driver

NAME = "database"


async def check_database(settings: Settings) -> Check:
    from memory._url import describe, sqlite_path
    from memory.errors import StoreError
    from memory.migrate import HEAD_REVISION, check_schema, known_revisions, read_state
    from memory.writable import check_writable

    url = settings.database_url
    where = describe(url)  # the SQLite file, or the URL with its password hidden
    path = sqlite_path(url)
    if path is not None and not path.exists():
        return Check.failed(NAME, f"{path} does not exist yet (run `omni db upgrade`)")
    try:
        require_driver(url)
    except SettingsError as exc:
        return Check.failed(NAME, str(exc))
    try:
        if path is not None:
            # First on SQLite: a folder it cannot write to also hides the schema from readers.
            await asyncio.to_thread(check_writable, url)
        state = await asyncio.to_thread(read_state, url)
        check_schema(url, state, await asyncio.to_thread(known_revisions))
        if state.revision is None:
            return Check.failed(NAME, f"{where} has no schema yet (run `omni db upgrade`)")
        if state.revision != HEAD_REVISION:
            return Check.failed(
                NAME,
                f"{where} is at revision {state.revision}, head is {HEAD_REVISION} (run `omni db upgrade`)",
            )
        if path is None:
            await asyncio.to_thread(check_writable, url)  # rewrites the stamp: needs one
    except StoreError as exc:  # read-only, locked, newer than this omni, or damaged: no secrets
        return Check.failed(NAME, str(exc))
    except Exception as exc:  # driver or server failure; its text may hold the URL, so name it only
        return Check.failed(NAME, f"{where} cannot be opened ({exc.__class__.__name__})")
    return Check.ok(NAME, f"{where} at revision {state.revision}, writable")
