"""Write skill folders for tests."""

from __future__ import annotations

from pathlib import Path

GOOD_TOOLS = '''
from skills._tool import tool


@tool(read_only=True)
async def greet(name: str) -> str:
    """Say hello."""
    return f"hello {name}"


async def boom() -> str:
    """Always fails."""
    raise RuntimeError("kaboom\\nsecond line")
'''


def write_skill(root: Path, name: str, tools: str | None = GOOD_TOOLS, *, meta: str | None = None) -> Path:
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    front = meta if meta is not None else f"name: {name}\ndescription: The {name} test skill."
    (folder / "SKILL.md").write_text(f"---\n{front}\n---\n# {name}\nUse it well.\n")
    if tools is not None:
        (folder / "tools.py").write_text(tools)
    return folder


def write_broken_skills(root: Path) -> dict[str, str]:
    """Broken skills of every kind; returns name -> a fragment of the expected reason."""
    write_skill(root, "syntaxbad", "async def oops(:\n    pass\n")
    write_skill(root, "badmeta", meta="name: badmeta")
    write_skill(root, "badyaml", meta="name: [unclosed")
    write_skill(root, "importbad", "import no_such_module_xyz\n")
    write_skill(root, "dupe", "async def read_file(path: str) -> str:\n    return path\n")
    write_skill(root, "mismatch", meta="name: other\ndescription: wrong name")
    write_skill(root, "web", "async def web_two() -> str:\n    return 'x'\n")
    return {
        "syntaxbad": "syntax error on line 1",
        "badmeta": "description",
        "badyaml": "bad front matter",
        "importbad": "ModuleNotFoundError",
        "dupe": "duplicate tool name 'read_file'",
        "mismatch": "does not match its folder",
        "web": "already loaded",
    }
