"""The git skill: read-only git commands on repositories inside the caller's workspace root.

A repository is data the caller may have written (a non-admin can create ``r/.git/config``
with the files skill) or the operator may have unpacked from anywhere, so git must not run
anything the repository asks for. git runs commands named by configuration
(``core.fsmonitor``, ``core.pager``, ``diff.external``, ``diff.<driver>.textconv`` and
``filter.<driver>.clean`` reached through ``.gitattributes``, ``gpg.program``,
``core.sshCommand`` after a lazy fetch, ``include.path`` pulling in more ...) and by hooks.
``-c key=value`` can override named keys but not unknown driver names, so overriding alone
is a denylist that can miss one. Instead, **git never reads the repository's config**:

1. We find the repository ourselves: the nearest ``.git`` (folder, symlink, or ``gitdir:``
   file) between the folder and the caller's root. Bare layouts are not repositories here.
   The git dir, its ``commondir`` and every entry linked below must resolve inside the root.
2. We parse the repository's ``config`` with ``git config --file F --no-includes --list``
   (git's own parser, which only parses) and refuse it if any key is outside ``ALLOWED``,
   naming the key. The allowed keys only describe the layout, branches and remotes; none
   names a program, a file to read or another config to include.
3. git runs with ``GIT_DIR`` = the real git dir (HEAD, index) and ``GIT_COMMON_DIR`` = a fresh
   private folder holding a config *we* wrote (format version and object format only) and
   symlinks to the repository's objects, refs, packed-refs, logs, info and shallow. git reads
   its config from the common dir, so the repository's ``config``, ``config.worktree`` (only
   read when our config enables it; it does not), hooks folder and ``objects/info/alternates``
   are never opened, and nothing the caller writes after the check can change that.
   The allowed keys travel as ``GIT_CONFIG_KEY_n`` (no ``-c`` quoting to get wrong).
4. System and global config are off (``GIT_CONFIG_NOSYSTEM``, ``GIT_CONFIG_GLOBAL=/dev/null``,
   an empty ``HOME``/``XDG_CONFIG_HOME``), system attributes too (``GIT_ATTR_NOSYSTEM``), and
   the environment holds nothing else of the server's. With every config source ours, no
   ``filter``/``diff`` driver exists, so ``.gitattributes`` naming one runs nothing.
5. A second layer, in case a step above is wrong: ``SAFETY`` overrides every key that names a
   program or a hook, ``GIT_ALLOW_PROTOCOL`` allows no transport (no fetch, lazy or not),
   ``GIT_OPTIONAL_LOCKS=0`` keeps ``status`` from writing the index, submodules are ignored (no
   child git in another repository), and the commands pass ``--no-ext-diff --no-textconv``.
"""

# Annotations are evaluated once, here: the SDK reads a tool's hints several times at start-up
# and string annotations (``from __future__ import annotations``) would be re-parsed each time.

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import anyio
from pydantic import Field

from skills import _process
from skills._context import ToolContext, caller_root, skills_context
from skills._tool import SkillError, prompt, tool
from skills._workspace import inside_workspace

TIMEOUT_S = 15.0
OUTPUT_CAP = 64 * 1024

# Repository config keys git may see (lower-case section and name; ``*`` is a subsection).
# Each one only describes the repository; none names a program, a path or another config.
ALLOWED = frozenset(
    {
        *(f"core.{k}" for k in ("repositoryformatversion", "filemode", "bare", "logallrefupdates")),
        *(f"core.{k}" for k in ("ignorecase", "precomposeunicode", "symlinks", "autocrlf", "eol")),
        *(f"core.{k}" for k in ("safecrlf", "quotepath", "checkstat", "trustctime", "abbrev")),
        *(f"core.{k}" for k in ("sharedrepository", "sparsecheckout", "sparsecheckoutcone")),
        "extensions.objectformat",
        "extensions.worktreeconfig",  # accepted, not passed on: config.worktree is never read
        *(f"remote.*.{k}" for k in ("url", "pushurl", "fetch", "push", "tagopt", "prune", "mirror")),
        *(f"branch.*.{k}" for k in ("remote", "pushremote", "merge", "rebase", "description")),
        "user.name",
        "user.email",
        "init.defaultbranch",
        "pull.rebase",
        "pull.ff",
        "push.default",
        "push.autosetupremote",
        "fetch.prune",
        "submodule.*.url",
        "submodule.*.active",
        "lfs.repositoryformatversion",
    }
)
# Read by us (written into our config file) or meaningless with our layout: not passed on.
_NOT_PASSED = {
    "core.repositoryformatversion",
    "core.bare",
    "extensions.objectformat",
    "extensions.worktreeconfig",
}

# The second layer: every key that names a program, a hook or a fetch, set harmless.
SAFETY: tuple[tuple[str, str], ...] = (
    ("core.fsmonitor", "false"),
    ("core.untrackedcache", "false"),
    ("core.hookspath", "/dev/null"),
    ("core.pager", "cat"),
    ("core.editor", "false"),
    ("sequence.editor", "false"),
    ("core.sshcommand", "false"),
    ("core.askpass", ""),
    ("credential.helper", ""),
    ("core.alternaterefscommand", ""),
    ("uploadpack.packobjectshook", ""),
    ("diff.external", ""),
    ("gpg.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.x509.program", "false"),
    ("log.showsignature", "false"),
    ("protocol.allow", "never"),
    *((f"protocol.{p}.allow", "never") for p in ("file", "git", "ssh", "http", "https", "ext")),
    ("safe.bareRepository", "explicit"),
    ("submodule.recurse", "false"),
    ("fetch.recursesubmodules", "false"),
    ("diff.ignoresubmodules", "all"),
    ("diff.submodule", "short"),
    ("status.submodulesummary", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("color.ui", "never"),
)

# What git may reach in the repository's common dir (through our symlinks); ``objects`` is
# rebuilt entry by entry so that ``objects/info/alternates`` stays out.
_COMMON_ENTRIES = ("refs", "packed-refs", "logs", "info", "shallow")
_OBJECT_INFO_ENTRIES = ("packs", "commit-graph", "commit-graphs")
_SMALL_FILE = 4096

RepoArg = Annotated[str, Field(description="Repository folder relative to the workspace root")]
# A revision is passed as one argv item; refusing a leading '-' keeps it from being read as an option.
RevArg = Annotated[
    str, Field(pattern=r"^[^-\s][^\s]*$", max_length=200, description="A commit, branch or tag")
]


@dataclass(frozen=True, slots=True)
class Repository:
    """Where git will look, every path resolved and checked to be inside the caller's root."""

    root: Path
    worktree: Path
    gitdir: Path  # per-worktree files: HEAD, index
    commondir: Path  # shared files: config, objects, refs (the same as gitdir unless a linked worktree)


def _inside(root: Path, path: Path, what: str) -> Path:
    resolved = path.resolve()
    if resolved != root and not resolved.is_relative_to(root):
        raise SkillError(f"{what} leads outside your workspace; refusing to use this repository")
    return resolved


def _pointer(file: Path, prefix: str) -> str:
    # ``.git`` files say ``gitdir: <path>``; a worktree's ``commondir`` file is just a path.
    with file.open("rb") as fh:
        text = fh.read(_SMALL_FILE).decode(errors="replace").strip()
    if not text.startswith(prefix) or "\n" in text:
        raise SkillError(f"{file.name} is not a valid git pointer file")
    return text.removeprefix(prefix).strip()


def _locate(root: Path, folder: Path) -> Repository:
    """The repository git would use for ``folder``, found without git and kept inside ``root``."""
    for top in (folder, *folder.parents):
        dot = top / ".git"
        if os.path.lexists(dot):
            break
        if top == root:
            raise SkillError("not a git repository (no .git folder here or above, up to your workspace root)")
    else:  # pragma: no cover - folder is always inside root
        raise SkillError("not a git repository")
    if dot.is_file() and not dot.is_symlink():
        gitdir = _inside(root, top / _pointer(dot, "gitdir:"), ".git (gitdir:)")
    else:
        gitdir = _inside(root, dot, ".git")
    if not gitdir.is_dir():
        raise SkillError("not a git repository (.git is not a folder)")
    commondir = gitdir
    if (gitdir / "commondir").is_file():
        commondir = _inside(root, gitdir / _pointer(gitdir / "commondir", ""), "commondir")
    return Repository(root=root, worktree=top, gitdir=gitdir, commondir=commondir)


def _shadow(repo: Repository, into: Path, format_version: str, object_format: str | None) -> None:
    """Build the private common dir git will read: our config, links to the repository's data."""
    lines = ["[core]", f"\trepositoryformatversion = {format_version}", "\tbare = false"]
    if object_format:
        lines += ["[extensions]", f"\tobjectformat = {object_format}"]
    (into / "config").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name in _COMMON_ENTRIES:
        source = repo.commondir / name
        if os.path.lexists(source):
            (into / name).symlink_to(_inside(repo.root, source, name))
    objects = _inside(repo.root, repo.commondir / "objects", "objects")
    if not objects.is_dir():
        raise SkillError("not a git repository (no objects folder)")
    (into / "objects" / "info").mkdir(parents=True)
    for entry in objects.iterdir():
        if entry.name != "info":
            (into / "objects" / entry.name).symlink_to(_inside(repo.root, entry, f"objects/{entry.name}"))
    for name in _OBJECT_INFO_ENTRIES:
        source = objects / "info" / name
        if os.path.lexists(source):
            (into / "objects" / "info" / name).symlink_to(_inside(repo.root, source, f"objects/info/{name}"))


def _base_env(home: Path) -> dict[str, str]:
    return _process.minimal_env(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL="/dev/null",
        GIT_ATTR_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        GIT_OPTIONAL_LOCKS="0",
        GIT_NO_REPLACE_OBJECTS="1",
        GIT_NO_LAZY_FETCH="1",
        # A list naming no real protocol: every transport (ssh, http, file, ext::) is refused.
        GIT_ALLOW_PROTOCOL="none",
        GIT_PROTOCOL_FROM_USER="0",
        # Nothing may be found by walking up from a folder we did not choose.
        GIT_CEILING_DIRECTORIES=str(home.parent),
    )


def _config_env(pairs: list[tuple[str, str]]) -> dict[str, str]:
    env = {"GIT_CONFIG_COUNT": str(len(pairs))}
    for n, (key, value) in enumerate(pairs):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def _pattern(key: str) -> str:
    section, _, rest = key.partition(".")
    middle, _, name = rest.rpartition(".")
    return f"{section}.*.{name}" if middle else key


async def _read_config(git: str, repo: Repository, scratch: Path) -> list[tuple[str, str]]:
    """The repository's config entries, in order, or SkillError naming the first key not allowed."""
    path = repo.commondir / "config"
    if not path.is_file():
        return []
    done = await _process.run(
        (git, "config", "--file", str(path), "--no-includes", "--null", "--list"),
        cwd=scratch,
        env=_base_env(scratch),
        seconds=TIMEOUT_S,
        cap=OUTPUT_CAP,
    )
    if done.exit_code != 0 or done.truncated:
        raise SkillError("the repository's config could not be read; refusing to use it")
    entries: list[tuple[str, str]] = []
    for item in done.stdout.decode(errors="replace").split("\0")[:-1]:
        key, newline, value = item.partition("\n")
        if _pattern(key.lower()) not in ALLOWED:
            raise SkillError(
                f"the repository's config sets {key!r}, which the git skill does not allow "
                "(it could run a program or reach outside the repository); remove it to use these tools"
            )
        entries.append((key, value if newline else "true"))
    return entries


async def _git(ctx: ToolContext, repo_arg: str, *args: str) -> str:
    root = (await caller_root(ctx)).resolve()
    folder = inside_workspace(root, repo_arg)
    if not folder.is_dir():
        raise SkillError(f"{repo_arg!r} is not a folder")
    git = shutil.which("git")
    if git is None:
        raise SkillError("git is not installed on the server")
    repo = await anyio.to_thread.run_sync(_locate, root, folder)
    timeout = min(TIMEOUT_S, skills_context(ctx).tool_timeout)
    with tempfile.TemporaryDirectory(prefix="omni-git-") as tmp:
        scratch, common = Path(tmp) / "home", Path(tmp) / "common"
        scratch.mkdir()
        common.mkdir()
        entries = await _read_config(git, repo, scratch)
        settings = {key.lower(): value for key, value in entries}
        version = settings.get("core.repositoryformatversion", "0")
        object_format = settings.get("extensions.objectformat")
        if version not in ("0", "1") or object_format not in (None, "sha1", "sha256"):
            raise SkillError("unsupported repository format")
        await anyio.to_thread.run_sync(
            _shadow, repo, common, version, object_format if version == "1" else None
        )
        passed = [(k, v) for k, v in entries if k.lower() not in _NOT_PASSED]
        env = {
            **_base_env(scratch),
            "GIT_DIR": str(repo.gitdir),
            "GIT_COMMON_DIR": str(common),
            "GIT_WORK_TREE": str(repo.worktree),
            **_config_env([*passed, *SAFETY]),
        }
        done = await _process.run(
            (git, "--no-pager", *args), cwd=folder, env=env, seconds=timeout, cap=OUTPUT_CAP
        )
    if done.timed_out:
        raise SkillError(f"git {args[0]} timed out after {timeout:g}s")
    text = done.stdout.decode(errors="replace")
    if done.truncated:
        return text + f"\n[truncated: output passed {OUTPUT_CAP} bytes and git was stopped]"
    if done.exit_code != 0:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        raise SkillError(f"git {args[0]} failed: {message[0] if message else f'exit {done.exit_code}'}")
    return text or "(no output)"


@tool(read_only=True, idempotent=True)
async def git_status(ctx: ToolContext, repo: RepoArg = ".") -> str:
    """Show the branch and the working tree status of a repository."""
    return await _git(ctx, repo, "status", "--short", "--branch", "--ignore-submodules=all")


@tool(read_only=True, idempotent=True)
async def git_log(
    ctx: ToolContext,
    repo: RepoArg = ".",
    max_count: Annotated[int, Field(ge=1, le=200)] = 20,
    path: Annotated[str | None, Field(description="Only commits touching this path")] = None,
) -> str:
    """Show recent commits (hash, date, author, subject), newest first."""
    args = ["log", "--no-show-signature", f"--max-count={max_count}", "--date=iso-strict"]
    args.append("--format=%h %ad %an: %s")
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
    args = ["diff", "--no-ext-diff", "--no-textconv", "--ignore-submodules=all"]
    if staged:
        args.append("--cached")
    args += [rev for rev in (base, target) if rev]
    return await _git(ctx, repo, *args, "--")


@tool(read_only=True, idempotent=True)
async def git_show(ctx: ToolContext, revision: RevArg = "HEAD", repo: RepoArg = ".") -> str:
    """Show one commit: message and patch."""
    args = ("show", "--no-show-signature", "--no-ext-diff", "--no-textconv", "--stat", "--patch")
    return await _git(ctx, repo, *args, revision, "--")


@prompt(title="Review uncommitted changes")
async def review_changes(repo: str = ".") -> str:
    """Ask the model to review the uncommitted changes of a repository."""
    return (
        f"Review the uncommitted changes in the git repository {repo!r} of my workspace. "
        "Call git_status and git_diff first, then list bugs, risky changes and missing tests."
    )
