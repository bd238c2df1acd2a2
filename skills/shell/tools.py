"""The shell skill: run a command in the workspace; loaded only when OMNI_SHELL_ENABLED is true.

This is not a sandbox. A command runs as the server's OS user: it can read and write whatever
that user can, anywhere on the machine, and reach the network. The workspace is only its
working folder. What it does not get is the server's environment (the Telegram token, the LLM
key, provider keys): see :func:`skills._process.minimal_env`.
"""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

from typing import Annotated

from pydantic import BaseModel, Field

from skills import _process
from skills._context import SkillsContext, ToolContext, caller_of, caller_root, skills_context
from skills._tool import SkillError, tool
from skills._workspace import inside_workspace

OUTPUT_CAP = 32 * 1024
# The command's own deadline ends this much before the server's per-tool limit, so the tool
# reports ``timed_out`` with the output so far instead of being cancelled with nothing.
_TIMEOUT_MARGIN_S = 1.0


def enabled(context: SkillsContext) -> bool:
    """The loader calls this: the skill exists only when the operator turned it on."""
    return context.shell_enabled


class CommandResult(BaseModel):
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False
    truncated: bool = False


def _text(data: bytes, truncated: bool) -> str:
    text = data.decode(errors="replace")
    if truncated and len(data) >= OUTPUT_CAP:
        text += f"\n[truncated at {OUTPUT_CAP} bytes; the command was stopped]"
    return text


def _deadline(asked: float, tool_timeout: float) -> float:
    return min(asked, max(tool_timeout - _TIMEOUT_MARGIN_S, tool_timeout / 2))


@tool(read_only=False, destructive=True, open_world=True)
async def run_command(
    ctx: ToolContext,
    command: Annotated[str, Field(min_length=1, description="A /bin/sh command line")],
    cwd: Annotated[str, Field(description="Folder relative to the workspace root")] = ".",
    timeout_s: Annotated[
        float, Field(gt=0, le=600, description="Seconds before the command is killed (capped by the server)")
    ] = 60.0,
) -> CommandResult:
    """Run a shell command in the workspace and return its exit code and (capped) output."""
    if not caller_of(ctx).unrestricted:
        raise SkillError("the shell is for admins only")
    root = await caller_root(ctx)
    folder = inside_workspace(root, cwd)
    if not folder.is_dir():
        raise SkillError(f"{cwd!r} is not a folder")
    env = _process.minimal_env(HOME=str(root.resolve()), TERM="dumb")
    done = await _process.run(
        ("/bin/sh", "-c", command),
        cwd=folder,
        env=env,
        seconds=_deadline(timeout_s, skills_context(ctx).tool_timeout),
        cap=OUTPUT_CAP,
    )
    return CommandResult(
        exit_code=done.exit_code,
        stdout=_text(done.stdout, done.truncated),
        stderr=_text(done.stderr, done.truncated),
        timed_out=done.timed_out,
        truncated=done.truncated,
    )
