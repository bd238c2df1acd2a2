"""The git skill: read-only git commands on repositories inside the workspace."""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import asyncio
import os
import shutil
from typing import Annotated

from pydantic import Field

from skills._context import ToolContext, caller_root
from skills._tool import SkillError, prompt, tool
from skills._workspace import inside_workspace

TIMEOUT_S = 15.0
OUTPUT_CAP = 64 * 1024

RepoArg = Annotated[str, Field(description="Repository folder relative to the workspace root")]
# A revision is passed as one argv item; refusing a leading '-' keeps it from being read as an option.
RevArg = Annotated[
    str, Field(pattern=r"^[^-\s][^\s]*$", max_length=200, description="A commit, branch or tag")
]


async def _git(ctx: ToolContext, repo: str, *args: str) -> str:
    root = await caller_root(ctx)
    folder = inside_workspace(root, repo)
    if not folder.is_dir():
        raise SkillError(f"{repo!r} is not a folder")
    git = shutil.which("git")
    if git is None:
        raise SkillError("git is not installed on the server")
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_PAGER": "cat"}
    # A folder that is not a repository must not fall back to a repository above the workspace.
    env["GIT_CEILING_DIRECTORIES"] = str(root.parent)
    pipe = asyncio.subprocess.PIPE
    proc = await asyncio.create_subprocess_exec(
        *(git, "-C", str(folder), "--no-pager", "-c", "color.ui=never", *args),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=pipe,
        stderr=pipe,
        env=env,
    )
    try:
        async with asyncio.timeout(TIMEOUT_S):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise SkillError(f"git {args[0]} timed out after {TIMEOUT_S:.0f}s") from None
    if proc.returncode != 0:
        message = err.decode(errors="replace").strip().splitlines()
        raise SkillError(f"git {args[0]} failed: {message[0] if message else f'exit {proc.returncode}'}")
    text = out.decode(errors="replace")
    if len(text) > OUTPUT_CAP:
        text = text[:OUTPUT_CAP] + f"\n[truncated: output is {len(text)} characters]"
    return text or "(no output)"


@tool(read_only=True, idempotent=True)
async def git_status(ctx: ToolContext, repo: RepoArg = ".") -> str:
    """Show the branch and the working tree status of a repository."""
    return await _git(ctx, repo, "status", "--short", "--branch")


@tool(read_only=True, idempotent=True)
async def git_log(
    ctx: ToolContext,
    repo: RepoArg = ".",
    max_count: Annotated[int, Field(ge=1, le=200)] = 20,
    path: Annotated[str | None, Field(description="Only commits touching this path")] = None,
) -> str:
    """Show recent commits (hash, date, author, subject), newest first."""
    args = ["log", f"--max-count={max_count}", "--date=iso-strict", "--format=%h %ad %an: %s"]
    if path:
        args += ["--", path]
    return await _git(ctx, repo, *args)


@tool(read_only=True, idempotent=True)
async def git_diff(
    ctx: ToolContext,
    repo: RepoArg = ".",
    base: RevArg | None = None,
    target: RevArg | None = None,
    staged: bool = False,
) -> str:
    """Show uncommitted changes, staged changes, or the diff between two revisions."""
    args = ["diff", "--no-ext-diff"]
    if staged:
        args.append("--cached")
    args += [rev for rev in (base, target) if rev]
    return await _git(ctx, repo, *args, "--")


@tool(read_only=True, idempotent=True)
async def git_show(ctx: ToolContext, revision: RevArg = "HEAD", repo: RepoArg = ".") -> str:
    """Show one commit: message and patch."""
    return await _git(ctx, repo, "show", "--no-ext-diff", "--stat", "--patch", revision, "--")


@prompt(title="Review uncommitted changes")
async def review_changes(repo: str = ".") -> str:
    """Ask the model to review the uncommitted changes of a repository."""
    return (
        f"Review the uncommitted changes in the git repository {repo!r} of my workspace. "
        "Call git_status and git_diff first, then list bugs, risky changes and missing tests."
    )
