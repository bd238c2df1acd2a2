"""Short, human lines for what a tool call is doing ("📄 reading notes.md…")."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

_MAX_ARG = 40

# Built-in tools by their original name: (emoji, verb, the argument worth showing).
_BUILTIN: dict[str, tuple[str, str, str | None]] = {
    "list_files": ("📂", "listing", "path"),
    "read_file": ("📄", "reading", "path"),
    "write_file": ("✍️", "writing", "path"),
    "append_file": ("✍️", "appending to", "path"),
    "edit_file": ("✏️", "editing", "path"),
    "move_file": ("📦", "moving", "source"),
    "delete_file": ("🗑", "deleting", "path"),
    "search_files": ("🔎", "searching for", "pattern"),
    "git_status": ("🔀", "checking git status of", "repo"),
    "git_log": ("🔀", "reading git history of", "repo"),
    "git_diff": ("🔀", "reading the diff of", "repo"),
    "git_show": ("🔀", "showing", "revision"),
    "fetch_url": ("🌐", "fetching", "url"),
    "web_search": ("🔎", "searching the web for", "query"),
    "current_time": ("🕒", "checking the time in", "timezone"),
    "add_to_date": ("📅", "calculating a date", None),
    "days_between": ("📅", "counting days", None),
    "run_command": ("💻", "running", "command"),
}


def _short(value: Any) -> str:
    text = str(value).replace("\n", " ").strip()
    return text if len(text) <= _MAX_ARG else text[: _MAX_ARG - 1] + "…"


def describe_call(server: str, tool: str, arguments: dict[str, Any]) -> str:
    """A one-line status for a running tool call."""
    known = _BUILTIN.get(tool) if server == "skills" else None
    if known is None:
        return f"🔧 {server}: {tool}…"
    emoji, verb, key = known
    value = arguments.get(key) if key else None
    if key == "url" and isinstance(value, str):
        value = urlsplit(value).netloc or value
    return f"{emoji} {verb} {_short(value)}…" if value not in (None, "") else f"{emoji} {verb}…"
