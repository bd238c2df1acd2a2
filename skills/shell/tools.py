"""The shell skill: run a command in the workspace; loaded only when OMNI_SHELL_ENABLED is true."""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import asyncio
import contextlib
import os
import signal
from typing import Annotated

from pydantic import BaseModel, Field

from skills._context import SkillsContext, ToolContext, caller_of, caller_root
from skills._tool import SkillError, tool
from skills._workspace import inside_workspace

OUTPUT_CAP = 32 * 1024


def enabled(context: SkillsContext) -> bool:
    """The loader calls this: the skill exists only when the operator turned it on."""
    return context.shell_enabled


class CommandResult(BaseModel):
    exit_code: int
    stdout: str
    stderr: str
    timed_out: bool = False


def _cap(data: bytes) -> str:
    text = data.decode(errors="replace")
    return text if len(text) <= OUTPUT_CAP else text[:OUTPUT_CAP] + f"\n[truncated: {len(text)} characters]"


@tool(read_only=False, destructive=True, open_world=True)
async def run_command(
    ctx: ToolContext,
    command: Annotated[str, Field(min_length=1, description="A /bin/sh command line")],
    cwd: Annotated[str, Field(description="Folder relative to the workspace root")] = ".",
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 60.0,
) -> CommandResult:
    """Run a shell command in the workspace and return its exit code and (capped) output."""
    if not caller_of(ctx).unrestricted:
        raise SkillError("the shell is for admins only")
    folder = inside_workspace(await caller_root(ctx), cwd)
    if not folder.is_dir():
        raise SkillError(f"{cwd!r} is not a folder")
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *("/bin/sh", "-c", command),
        cwd=folder,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=pipe,
        stderr=pipe,
        start_new_session=True,
    )
    try:
        async with asyncio.timeout(timeout_s):
            out, err = await proc.communicate()
    except TimeoutError:
        # The command may have children: kill its whole process group, not just the shell.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = await proc.communicate()
        return CommandResult(exit_code=-9, stdout=_cap(out), stderr=_cap(err), timed_out=True)
    return CommandResult(exit_code=proc.returncode or 0, stdout=_cap(out), stderr=_cap(err))
