"""Hot reload: watch the skill folders and reload a skill when its files change.

A changed, added or removed skill is reloaded (or withdrawn) within about a second, and every
connected client gets ``notifications/tools/list_changed`` (and the resources/prompts ones).
A skill that breaks on reload loses its old tools and is listed as failed; the rest carry on.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import anyio
from watchfiles import Change, awatch

from mcp_server.server import SkillsServer

log = logging.getLogger(__name__)

DEBOUNCE_MS = 150
_IGNORED_PARTS = {"__pycache__", ".git", ".mypy_cache", ".ruff_cache", ".pytest_cache"}


def _relevant(change: Change, path: str) -> bool:
    parts = Path(path).parts
    return not (_IGNORED_PARTS.intersection(parts) or path.endswith((".pyc", ".swp", "~")))


def skill_folders_of(paths: Iterable[Path], roots: Sequence[Path]) -> set[Path]:
    """The skill folder (a direct child of a root) each changed path belongs to."""
    folders: set[Path] = set()
    for path in paths:
        for root in roots:
            if path.is_relative_to(root) and path != root:
                folders.add(root / path.relative_to(root).parts[0])
                break
    return {f for f in folders if f.name[0] not in "._"}


async def watch_skills(server: SkillsServer, stop: anyio.Event | None = None) -> None:
    """Reload skills as their files change; runs until cancelled."""
    roots = [root for root in server.registry.roots if root.is_dir()]
    if not roots:
        return
    log.debug("watching %s for skill changes", ", ".join(map(str, roots)))
    async for changes in awatch(
        *roots, watch_filter=_relevant, debounce=DEBOUNCE_MS, step=50, stop_event=stop
    ):
        folders = skill_folders_of((Path(p) for _, p in changes), roots)
        if not folders or not server.registry.refresh(folders):
            continue
        await server.notify_changed(_summary(server, folders), _level(server, folders))


def _summary(server: SkillsServer, folders: set[Path]) -> str:
    parts = []
    for folder in sorted(folders):
        failure = server.registry.failures.get(folder)
        if failure is not None:
            parts.append(f"skill {failure.name} failed to load: {failure.reason}")
        elif server.registry.owner(folder) is not None:
            parts.append(f"skill {folder.name} reloaded")
        else:
            parts.append(f"skill {folder.name} removed")
    return "; ".join(parts)


def _level(server: SkillsServer, folders: set[Path]) -> str:
    return "error" if any(f in server.registry.failures for f in folders) else "info"
