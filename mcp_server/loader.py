"""Find skill folders, parse their SKILL.md, import their tools.py and register what they offer.

A skill folder is a lowercase single word holding a ``SKILL.md`` (YAML front matter with at
least ``name`` and ``description``) and usually a ``tools.py``. Built-in skills and the folders
in ``OMNI_SKILLS_DIRS`` go through this same loader. A skill that cannot load is skipped and
recorded in :attr:`Registry.failures` with the file and the reason; the others keep working.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import inspect
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import yaml
from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.prompts import Prompt
from mcp.shared.exceptions import MCPError
from mcp_types import ToolAnnotations
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from skills._context import SkillsContext
from skills._tool import ENABLED_ATTR, PROMPT_ATTR, TOOL_ATTR

log = logging.getLogger(__name__)

BUILTIN_ROOT = Path(__file__).resolve().parent.parent / "skills"
TOOL_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
_FRONT_MATTER = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)", re.DOTALL)


class SkillMeta(BaseModel):
    """SKILL.md front matter (Agent Skills format); unknown keys are kept, not refused."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(pattern=r"^[a-z][a-z0-9]*$", max_length=64)
    description: str = Field(min_length=1, max_length=1024)


@dataclass(frozen=True, slots=True)
class Skill:
    name: str
    description: str
    folder: Path
    instructions: str
    tools: tuple[str, ...] = ()
    prompts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Failure:
    name: str
    file: Path
    reason: str


class SkillLoadError(Exception):
    def __init__(self, file: Path, reason: str) -> None:
        super().__init__(f"{file}: {reason}")
        self.file, self.reason = file, reason


class SkillDisabled(Exception):
    """The skill's ``enabled(context)`` said no: not an error, just absent."""


def skill_folders(root: Path) -> list[Path]:
    """The skill folders directly under ``root`` (those holding a SKILL.md), sorted."""
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name[0] not in "._" and (p / "SKILL.md").is_file()
    )


def parse_skill_md(path: Path) -> tuple[SkillMeta, str]:
    """Front matter and the whole text of a SKILL.md, or SkillLoadError naming what is wrong."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SkillLoadError(path, f"cannot read: {exc}") from None
    match = _FRONT_MATTER.match(text)
    if match is None:
        raise SkillLoadError(path, "no YAML front matter (the file must start with a '---' block)")
    try:
        data = yaml.safe_load(match.group(1))
    except yaml.YAMLError as exc:
        raise SkillLoadError(path, f"bad front matter: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        raise SkillLoadError(path, "bad front matter: expected a mapping with name and description")
    try:
        meta = SkillMeta.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "front matter"
        raise SkillLoadError(path, f"bad front matter: {where}: {err['msg']}") from None
    return meta, text


def _package_name(folder: Path) -> str:
    root = folder.parent
    if root == BUILTIN_ROOT:
        return f"skills.{folder.name}"
    # Extra skill dirs get a name of their own so `web` there never clashes with skills.web.
    digest = hashlib.sha1(str(root).encode()).hexdigest()[:10]
    return f"omni_skill_{digest}_{folder.name}"


def _exec_file(name: str, path: Path, package: Path | None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        name, path, submodule_search_locations=[str(package)] if package else None
    )
    if spec is None:  # pragma: no cover - only for paths importlib cannot describe
        raise SkillLoadError(path, "cannot build an import spec")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # Compiled from source every time: a cached .pyc written in the same second as an edit
    # could otherwise hide the edit from a hot reload.
    code = compile(path.read_bytes(), str(path), "exec", dont_inherit=True)
    exec(code, module.__dict__)
    return module


def import_tools(folder: Path) -> ModuleType | None:
    """Import ``folder`` as a package and return its ``tools`` module (None when it has none)."""
    package = _package_name(folder)
    for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
        del sys.modules[key]
    tools_py = folder / "tools.py"
    init = folder / "__init__.py"
    current = init
    try:
        if init.is_file():
            _exec_file(package, init, folder)
        else:
            pkg = ModuleType(package)
            pkg.__path__ = [str(folder)]
            sys.modules[package] = pkg
        if not tools_py.is_file():
            return None
        current = tools_py
        return _exec_file(f"{package}.tools", tools_py, None)
    except SkillLoadError:
        raise
    except SyntaxError as exc:
        raise SkillLoadError(current, f"syntax error on line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # any import-time failure of third-party code is a broken skill
        for key in [k for k in sys.modules if k == package or k.startswith(package + ".")]:
            del sys.modules[key]
        raise SkillLoadError(current, f"import failed: {type(exc).__name__}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def collect(module: ModuleType) -> tuple[list[Callable[..., Any]], list[Callable[..., Any]]]:
    """Public async functions defined in the module: tools, and those marked @prompt."""
    tools: list[Callable[..., Any]] = []
    prompts: list[Callable[..., Any]] = []
    for name, obj in vars(module).items():
        if name.startswith("_") or not inspect.iscoroutinefunction(obj) or obj.__module__ != module.__name__:
            continue
        (prompts if hasattr(obj, PROMPT_ATTR) else tools).append(obj)
    return tools, prompts


def guard(fn: Callable[..., Awaitable[Any]], timeout: float) -> Callable[..., Awaitable[Any]]:
    """Bound a tool's run time and turn anything it raises into a one-line ToolError.

    The time limit is the server's own: a client that never cancels (or a tool stuck on a
    FIFO, a slow disk or a hung child) must not hold a request and its worker forever.
    """

    @functools.wraps(fn)
    async def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            with anyio.move_on_after(timeout):
                return await fn(*args, **kwargs)
            raise ToolError(f"{fn.__name__} took longer than {timeout:g} s and was stopped")
        except (ToolError, MCPError):
            raise
        except OSError as exc:
            where = f": {Path(str(exc.filename)).name}" if exc.filename else ""
            raise ToolError(f"{exc.strerror or type(exc).__name__}{where}") from None
        except Exception as exc:  # the MCP edge: a tool's crash becomes words for the model
            log.warning("tool %s crashed", fn.__name__, exc_info=True)
            raise ToolError(f"{type(exc).__name__}: {_first_line(exc)}") from None

    return guarded


def _always(_: SkillsContext) -> bool:
    return True


def _structured(fn: Callable[..., Any]) -> bool | None:
    # Plain text stays plain text; data (models, dicts, lists) gets structured output.
    return False if inspect.signature(fn).return_annotation in (str, "str") else None


@dataclass
class Registry:
    """The skills loaded into one server, and the ones that failed."""

    server: MCPServer[Any]
    context: SkillsContext
    roots: Sequence[Path]
    skills: dict[str, Skill] = field(default_factory=dict)
    failures: dict[Path, Failure] = field(default_factory=dict)
    disabled: set[str] = field(default_factory=set)

    def load_all(self) -> None:
        for root in self.roots:
            if not root.is_dir():
                log.warning("skills dir %s does not exist; skipped", root)
                continue
            for folder in skill_folders(root):
                self.load(folder)
        log.info(
            "skills loaded: %s (%d tools); failed: %s",
            ", ".join(self.skills) or "none",
            self.tool_count,
            ", ".join(f.name for f in self.failures.values()) or "none",
        )

    @property
    def tool_count(self) -> int:
        return sum(len(s.tools) for s in self.skills.values())

    def owner(self, folder: Path) -> Skill | None:
        return next((s for s in self.skills.values() if s.folder == folder), None)

    def load(self, folder: Path) -> Skill | None:
        """Load one skill folder; on failure log one line and record it."""
        self.failures.pop(folder, None)
        self.disabled.discard(folder.name)
        try:
            skill = self._load(folder)
        except SkillDisabled:
            self.disabled.add(folder.name)
            log.info("skill %s is disabled by its settings", folder.name)
            return None
        except SkillLoadError as exc:
            log.error("skill %s skipped: %s: %s", folder.name, exc.file, exc.reason)
            self.failures[folder] = Failure(name=folder.name, file=exc.file, reason=exc.reason)
            return None
        self.skills[skill.name] = skill
        return skill

    def unload(self, folder: Path) -> Skill | None:
        """Withdraw a skill's tools and prompts (and forget a failure) for this folder."""
        self.failures.pop(folder, None)
        skill = self.owner(folder)
        if skill is None:
            return None
        for name in skill.tools:
            self.server.remove_tool(name)
        for name in skill.prompts:
            self.server.remove_prompt(name)
        del self.skills[skill.name]
        return skill

    def refresh(self, folders: Iterable[Path]) -> bool:
        """Reload changed, added or removed skill folders; True when anything changed."""
        changed = False
        for folder in sorted(set(folders)):
            before = (self.owner(folder), self.failures.get(folder))
            self.unload(folder)
            if (folder / "SKILL.md").is_file():
                self.load(folder)
            after = (self.owner(folder), self.failures.get(folder))
            changed = changed or before != after or after[0] is not None
            log.info("skill folder %s reloaded", folder)
        return changed

    def _load(self, folder: Path) -> Skill:
        skill_md = folder / "SKILL.md"
        meta, text = parse_skill_md(skill_md)
        if meta.name != folder.name:
            raise SkillLoadError(skill_md, f"name {meta.name!r} does not match its folder {folder.name!r}")
        if meta.name in self.skills:
            raise SkillLoadError(
                skill_md,
                f"a skill named {meta.name!r} is already loaded from {self.skills[meta.name].folder}",
            )
        module = import_tools(folder)
        tools, prompts = collect(module) if module else ([], [])
        enabled = getattr(module, "enabled", None)
        if callable(enabled) and not enabled(self.context):
            raise SkillDisabled(meta.name)
        tools = [fn for fn in tools if getattr(fn, ENABLED_ATTR, _always)(self.context)]
        self._check_names(folder, [fn.__name__ for fn in tools], [fn.__name__ for fn in prompts])
        tool_names = self._register_tools(folder, tools)
        prompt_names = self._register_prompts(folder, prompts, tool_names)
        return Skill(meta.name, meta.description, folder, text, tool_names, prompt_names)

    def _check_names(self, folder: Path, tools: list[str], prompts: list[str]) -> None:
        tools_py = folder / "tools.py"
        taken = {t: s.name for s in self.skills.values() for t in s.tools}
        taken_prompts = {p: s.name for s in self.skills.values() for p in s.prompts}
        for name in tools:
            if not TOOL_NAME.match(name):
                raise SkillLoadError(tools_py, f"tool name {name!r} is not valid (letters, digits, _ and -)")
            if name in taken:
                raise SkillLoadError(
                    tools_py, f"duplicate tool name {name!r} (already provided by skill {taken[name]!r})"
                )
        for name in prompts:
            if name in taken_prompts:
                raise SkillLoadError(
                    tools_py, f"duplicate prompt name {name!r} (skill {taken_prompts[name]!r})"
                )

    def _register_tools(self, folder: Path, tools: list[Callable[..., Any]]) -> tuple[str, ...]:
        added: list[str] = []
        try:
            for fn in tools:
                annotations = getattr(fn, TOOL_ATTR, None)
                self.server.add_tool(
                    guard(fn, self.context.tool_timeout),
                    name=fn.__name__,
                    description=inspect.getdoc(fn) or fn.__name__,
                    annotations=annotations if isinstance(annotations, ToolAnnotations) else None,
                    structured_output=_structured(fn),
                    meta={"omni/skill": folder.name},
                )
                added.append(fn.__name__)
        except Exception as exc:  # a signature the SDK cannot turn into a schema
            for name in added:
                self.server.remove_tool(name)
            raise SkillLoadError(folder / "tools.py", f"tool {fn.__name__!r}: {_first_line(exc)}") from None
        return tuple(added)

    def _register_prompts(
        self, folder: Path, prompts: list[Callable[..., Any]], tool_names: tuple[str, ...]
    ) -> tuple[str, ...]:
        added: list[str] = []
        try:
            for fn in prompts:
                title = getattr(fn, PROMPT_ATTR, "") or None
                self.server.add_prompt(Prompt.from_function(fn, name=fn.__name__, title=title))
                added.append(fn.__name__)
        except Exception as exc:
            for name in added:
                self.server.remove_prompt(name)
            for name in tool_names:
                self.server.remove_tool(name)
            raise SkillLoadError(folder / "tools.py", f"prompt {fn.__name__!r}: {_first_line(exc)}") from None
        return tuple(added)

    def status(self) -> dict[str, Any]:
        """What /ready and omni://status report."""
        return {
            "skills": sorted(self.skills),
            "tools": self.tool_count,
            "failed": [
                {"name": f.name, "file": str(f.file), "reason": f.reason} for f in self.failures.values()
            ],
        }
