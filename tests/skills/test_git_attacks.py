"""The git skill under attack (issue 12): no repository content may make git run a command.

Each attack plants configuration that, in plain git, runs ``touch <marker>``. The repositories
are planted three ways: by the operator with the real git CLI (a full history, stale index
stat info, a signed commit, a half-fetched partial clone, a submodule), and by a non-admin
through the real server's ``write_file`` (a ``.git`` layout and a bare layout). Every git tool
is then called through the real ``omni mcp``; no marker may appear. For the operator's
repositories a control run of plain git first proves the attack is live.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import ClientSession

from tests.skills.conftest import ADMIN, NON_ADMIN, RealServer, non_admin_root, text_of

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]

TOOLS: dict[str, dict[str, Any]] = {
    "git_status": {},
    "git_log": {},
    "git_diff": {},
    "git_show": {"revision": "HEAD"},
}
ENV = {"GIT_AUTHOR_NAME": "Ann", "GIT_AUTHOR_EMAIL": "a@x", "GIT_COMMITTER_NAME": "Ann",
       "GIT_COMMITTER_EMAIL": "a@x", "PATH": os.environ.get("PATH", "/usr/bin:/bin")}  # fmt: skip


@dataclass(frozen=True)
class Attack:
    """``config`` is appended to the repository's config; ``{cmd}`` becomes a marker command."""

    name: str
    config: str
    attributes: str = ""
    live: bool = True  # plain git runs it on a read (status, log, diff or show) of our repository
    allowed: bool = False  # the config itself is harmless-looking: the tools work, nothing runs


PARTIAL = '[core]\n\trepositoryformatversion = 1\n[extensions]\n\tpartialClone = origin\n[remote "origin"]\n'
ATTACKS = [
    Attack("core.fsmonitor", "[core]\n\tfsmonitor = {cmd}\n"),
    Attack("core.hooksPath", "[core]\n\thooksPath = {hooks}\n"),
    Attack("hooks folder", "", allowed=True),  # .git/hooks/post-index-change, no config at all
    # Never reached without a terminal, but a pager is a command: it must be refused all the same.
    Attack("core.pager", "[core]\n\tpager = {cmd}\n[pager]\n\tlog = {cmd}\n\tshow = {cmd}\n", live=False),
    Attack("diff.textconv", '[diff "t"]\n\ttextconv = {cmd}\n', attributes="*.txt diff=t\n"),
    Attack("diff.external", "[diff]\n\texternal = {cmd}\n"),
    Attack("diff.command", '[diff "t"]\n\tcommand = {cmd}\n', attributes="*.txt diff=t\n"),
    Attack("gpg.program", "[gpg]\n\tprogram = {script}\n[log]\n\tshowSignature = true\n"),
    Attack("filter.clean", '[filter "t"]\n\tclean = {cmd}\n', attributes="*.txt filter=t\n"),
    Attack("filter.smudge", '[filter "t"]\n\tsmudge = {cmd}\n', attributes="*.txt filter=t\n", live=False),
    Attack("filter.process", '[filter "t"]\n\tprocess = {cmd}\n', attributes="*.txt filter=t\n"),
    Attack("include.path", "[include]\n\tpath = extra.cfg\n"),
    Attack("includeIf", '[includeIf "gitdir:/"]\n\tpath = extra.cfg\n'),
    Attack(
        "config.worktree",
        "[core]\n\trepositoryformatversion = 1\n[extensions]\n\tworktreeConfig = true\n",
        allowed=True,
    ),
    Attack(
        "core.sshCommand",
        PARTIAL + "\turl = ssh://git@example.invalid/x\n\tpromisor = true\n[core]\n\tsshCommand = {cmd}\n",
    ),  # fmt: skip
    Attack("remote.uploadpack", PARTIAL + "\turl = {tmp}/nowhere\n\tpromisor = true\n\tuploadpack = {cmd}\n"),
    Attack(
        "protocol.ext.allow",
        PARTIAL + "\turl = ext::sh -c touch% {marker}\n\tpromisor = true\n[protocol]\n\tallow = always\n",
    ),  # fmt: skip
    Attack(
        "core.askPass",
        PARTIAL + "\turl = http://127.0.0.1:{port}/x\n\tpromisor = true\n[core]\n\taskPass = {script}\n",
    ),  # fmt: skip
    Attack(
        "credential.helper",
        PARTIAL + "\turl = http://127.0.0.1:{port}/x\n\tpromisor = true\n"
        '[credential]\n\thelper = "!touch {marker}; true"\n',
    ),  # fmt: skip
    Attack("submodule", "", allowed=True),  # the submodule's own config has core.fsmonitor
    Attack("core.editor", "[core]\n\teditor = {cmd}\n[sequence]\n\teditor = {cmd}\n", live=False),
    Attack("merge.driver", '[merge "t"]\n\tdriver = {cmd}\n', attributes="*.txt merge=t\n", live=False),
    Attack("uploadpack.packObjectsHook", "[uploadpack]\n\tpackObjectsHook = {cmd}\n", live=False),
]
INCLUDED = "[core]\n\tfsmonitor = {cmd}\n"  # what extra.cfg and config.worktree hold


class Unauthorized(BaseHTTPRequestHandler):
    """Answers every request with 401, so git asks a credential helper, then core.askPass."""

    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="x"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_GET

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
    thread.join()


@dataclass
class Planter:
    """Builds hostile repositories; every command they name touches ``markers/<attack>``."""

    tmp: Path
    port: int

    def __post_init__(self) -> None:
        self.markers = self.tmp / "markers"
        self.markers.mkdir()

    def marker(self, attack: Attack) -> Path:
        return self.markers / attack.name.replace(" ", "-")

    def fired(self) -> list[str]:
        return sorted(p.name for p in self.markers.iterdir())

    def executable(self, path: Path, attack: Attack) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"#!/bin/sh\ntouch {self.marker(attack)}\n")
        path.chmod(0o755)
        return path

    def render(self, text: str, attack: Attack) -> str:
        marker = self.marker(attack)
        slug = attack.name.replace(" ", "-")
        return text.format(
            cmd=f'"touch {marker}; true"',
            marker=marker,
            tmp=self.tmp,
            port=self.port,
            hooks=self.executable(self.tmp / "hooks" / slug / "post-index-change", attack).parent,
            script=self.executable(self.tmp / "bin" / slug, attack),
        )

    def files(self, attack: Attack, gitdir: str) -> dict[str, str]:
        """What a non-admin can write with write_file: text files only, no objects, no index."""
        prefix = f"{gitdir}/" if gitdir else ""
        files = {
            f"{prefix}HEAD": "ref: refs/heads/main\n",
            f"{prefix}config": "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
            + self.render(attack.config, attack),
            f"{prefix}objects/info/packs": "\n",
            f"{prefix}refs/heads/README": "not a ref\n",
            f"{prefix}extra.cfg": self.render(INCLUDED, attack),
            f"{prefix}config.worktree": self.render(INCLUDED, attack),
            "a.txt": "first\n",
        }
        if attack.attributes:
            files[".gitattributes"] = attack.attributes
        return files

    def full(self, repo: Path, attack: Attack) -> None:
        """What the operator can unpack: a real repository with history, planted with ``attack``."""
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        (repo / "a.txt").write_text("first\n")
        (repo / "b.txt").write_text("one\n")
        if attack.attributes:
            (repo / ".gitattributes").write_text(attack.attributes)
        git(repo, "add", "-A")
        git(repo, "commit", "-q", "-m", "first")
        (repo / "b.txt").write_text("two\n")
        git(repo, "commit", "-q", "-a", "-m", "second")
        if attack.name == "gpg.program":
            sign_head(repo)
        if attack.name == "submodule":
            submodule(repo, self.render(INCLUDED, attack))
        if "partialClone" in attack.config:  # the lazy fetch of a missing tree reaches the remote
            tree = git(repo, "rev-parse", "HEAD^{tree}")
            (repo / ".git" / "objects" / tree[:2] / tree[2:]).unlink()
        if attack.name == "hooks folder":
            self.executable(repo / ".git" / "hooks" / "post-index-change", attack)
        (repo / "b.txt").write_text("three\n")  # something to diff
        stale = time.time() + 3600  # same content, new mtime: status must re-read a.txt (clean filter)
        os.utime(repo / "a.txt", (stale, stale))
        git_dir = repo / ".git"
        (git_dir / "extra.cfg").write_text(self.render(INCLUDED, attack))
        (git_dir / "config.worktree").write_text(self.render(INCLUDED, attack))
        with (git_dir / "config").open("a") as fh:
            fh.write(self.render(attack.config, attack))


def git(repo: Path, *args: str, stdin: str | None = None) -> str:
    env = {**ENV, "HOME": str(repo)}
    done = subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=env, input=stdin
    )
    return done.stdout.strip()


def sign_head(repo: Path) -> None:
    """Put a commit carrying a (bogus) PGP signature on top: showing it runs gpg.program."""
    tree, parent = git(repo, "rev-parse", "HEAD^{tree}"), git(repo, "rev-parse", "HEAD")
    body = (
        f"tree {tree}\nparent {parent}\nauthor Ann <a@x> 1700000000 +0000\n"
        "committer Ann <a@x> 1700000000 +0000\ngpgsig -----BEGIN PGP SIGNATURE-----\n \n"
        " iQEzBAABCAAdFiEE\n -----END PGP SIGNATURE-----\n\nsigned\n"
    )
    commit = git(repo, "hash-object", "-t", "commit", "-w", "--stdin", stdin=body)
    git(repo, "update-ref", "refs/heads/main", commit)


def submodule(repo: Path, hostile: str) -> None:
    """A checked-out submodule whose own config is hostile; plain ``git status`` recurses into it."""
    sub = repo / "sub"
    sub.mkdir()
    git(sub, "init", "-q", "-b", "main")
    (sub / "y.txt").write_text("y\n")
    git(sub, "add", "y.txt")
    git(sub, "commit", "-q", "-m", "sub")
    (repo / ".gitmodules").write_text('[submodule "sub"]\n\tpath = sub\n\turl = ./sub\n')
    git(repo, "add", "sub", ".gitmodules")
    git(repo, "commit", "-q", "-m", "add sub")
    with (sub / ".git" / "config").open("a") as fh:
        fh.write(hostile)
    stale = time.time() + 3600
    os.utime(sub / "y.txt", (stale, stale))


def plain_git(repo: Path, tool: str) -> None:
    """git as the skill used to run it: the server's environment, the repository's config."""
    args = {"git_status": ["status"], "git_log": ["log", "-3"], "git_diff": ["diff"], "git_show": ["show"]}
    env = {**os.environ, "HOME": str(repo), "GIT_TERMINAL_PROMPT": "0"}
    subprocess.run(
        ["git", "-C", str(repo), *args[tool]], capture_output=True, env=env, timeout=30, check=False
    )


@pytest.fixture
def planter(tmp_path: Path, port: int) -> Planter:
    return Planter(tmp_path, port)


async def sweep(session: ClientSession, meta: dict[str, Any], repos: dict[Attack, str]) -> dict[str, str]:
    """Call every git tool on every repository, concurrently; return what each call said."""
    said: dict[str, str] = {}

    async def one(attack: Attack, repo: str, tool: str, args: dict[str, Any]) -> None:
        result = await session.call_tool(tool, {"repo": repo, **args}, meta=meta)
        said[f"{attack.name} {tool}"] = ("error: " if result.is_error else "") + text_of(result)

    async with anyio.create_task_group() as calls:
        for attack, repo in repos.items():
            for tool, args in TOOLS.items():
                calls.start_soon(one, attack, repo, tool, args)
    return said


async def test_operator_repositories_run_nothing(
    real_server: RealServer, workspace: Path, planter: Planter, tmp_path: Path
) -> None:
    repos = {attack: f"op-{n}" for n, attack in enumerate(ATTACKS)}
    for attack, repo in repos.items():
        planter.full(tmp_path / "made" / repo, attack)
        shutil.copytree(tmp_path / "made" / repo, workspace / repo, symlinks=True)
        if attack.live:  # control: plain git on the other copy runs the planted command
            for tool in TOOLS:
                plain_git(tmp_path / "made" / repo, tool)
            assert planter.fired(), f"the {attack.name} attack does not work on plain git: the test is broken"
            shutil.rmtree(planter.markers)
            planter.markers.mkdir()
    async with real_server() as session:
        said = await sweep(session, ADMIN, repos)
    assert planter.fired() == [], said
    for attack in ATTACKS:
        for tool in TOOLS:
            text = said[f"{attack.name} {tool}"]
            if attack.allowed:
                assert not text.startswith("error"), (attack.name, tool, text)
            else:
                assert "does not allow" in text, (attack.name, tool, text)


@pytest.mark.parametrize("layout", ["dotgit", "bare"])
async def test_non_admin_written_repositories_run_nothing(
    real_server: RealServer, workspace: Path, planter: Planter, layout: str
) -> None:
    root = non_admin_root(workspace)
    repos = {attack: f"w-{n}" for n, attack in enumerate(ATTACKS)}
    async with real_server() as session:
        for attack, repo in repos.items():
            for path, content in planter.files(attack, ".git" if layout == "dotgit" else "").items():
                target = f"{repo}/{path}"
                result = await session.call_tool(
                    "write_file", {"path": target, "content": content}, meta=NON_ADMIN
                )
                if result.is_error:
                    # The files skill may refuse writes inside .git: plant the file as an attacker
                    # would have on the old server, and still require that nothing runs.
                    assert layout == "dotgit" and ".git" in text_of(result), text_of(result)
                    (root / target).parent.mkdir(parents=True, exist_ok=True)
                    (root / target).write_text(content)
        said = await sweep(session, NON_ADMIN, repos)
    assert planter.fired() == [], said
    for attack in ATTACKS:
        for tool in TOOLS:
            text = said[f"{attack.name} {tool}"]
            if layout == "bare":
                assert "not a git repository" in text, (attack.name, tool, text)
            elif not attack.allowed:
                assert "does not allow" in text, (attack.name, tool, text)


async def test_plain_repositories_still_work(real_server: RealServer, workspace: Path) -> None:
    for root in (workspace, non_admin_root(workspace)):
        repo = root / "proj"
        repo.mkdir(parents=True)
        git(repo, "init", "-q", "-b", "main")
        (repo / "a.txt").write_text("first\n")
        git(repo, "add", "a.txt")
        git(repo, "commit", "-q", "-m", "first commit")
        # An upstream that is one commit behind: status reports it, from allowed config keys.
        git(repo, "update-ref", "refs/remotes/origin/main", "HEAD")
        git(repo, "config", "remote.origin.url", "https://example.invalid/proj.git")
        git(repo, "config", "remote.origin.fetch", "+refs/heads/*:refs/remotes/origin/*")
        git(repo, "config", "branch.main.remote", "origin")
        git(repo, "config", "branch.main.merge", "refs/heads/main")
        (repo / "a.txt").write_text("second\n")
        git(repo, "commit", "-q", "-a", "-m", "second commit")
        (repo / "a.txt").write_text("third\n")
        (repo / "sub").mkdir()
    # A linked worktree: its .git is a "gitdir:" file and its git dir has a "commondir" file.
    git(workspace / "proj", "worktree", "add", "-q", "-b", "side", str(workspace / "side"))
    (workspace / "side" / "b.txt").write_text("new\n")
    async with real_server() as session:
        for meta in (ADMIN, NON_ADMIN):

            async def call(tool: str, repo: str = "proj", meta: dict[str, Any] = meta, **args: Any) -> str:
                result = await session.call_tool(tool, {"repo": repo, **args}, meta=meta)
                assert not result.is_error, text_of(result)
                return text_of(result)

            status = await call("git_status")
            assert "## main...origin/main [ahead 1]" in status and "M a.txt" in status
            assert "Ann: second commit" in await call("git_log")
            diff = await call("git_diff")
            assert "-second" in diff and "+third" in diff
            show = await call("git_show", revision="HEAD~1")
            assert "first commit" in show and "+first" in show
            assert "a.txt" in await call("git_status", repo="proj/sub")  # from a folder inside
        side = await session.call_tool("git_status", {"repo": "side"}, meta=ADMIN)
        assert "## side" in text_of(side) and "?? b.txt" in text_of(side), text_of(side)


async def test_repositories_leading_outside_the_root_are_refused(
    real_server: RealServer, workspace: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    git(outside, "init", "-q", "-b", "main")
    (outside / "secret.txt").write_text("SECRET\n")
    git(outside, "add", "secret.txt")
    git(outside, "commit", "-q", "-m", "SECRET subject")
    root = non_admin_root(workspace)
    cases = {
        "gitfile": lambda r: (r / ".git").write_text(f"gitdir: {outside / '.git'}\n"),
        "gitfile-relative": lambda r: (r / ".git").write_text("gitdir: ../../../../outside/.git\n"),
        "symlink": lambda r: (r / ".git").symlink_to(outside / ".git"),
        "objects-symlink": lambda r: _objects_link(r, outside),
        "worktree": lambda r: _with_worktree(r, outside),
    }
    for name, plant in cases.items():
        (root / name).mkdir(parents=True)
        plant(root / name)
    git(workspace, "clone", "-q", "--shared", str(outside), str(root / "alternates"))
    async with real_server() as session:
        for name in [*cases, "alternates"]:
            for tool, args in TOOLS.items():
                result = await session.call_tool(tool, {"repo": name, **args}, meta=NON_ADMIN)
                assert "SECRET subject" not in text_of(result), (name, tool, text_of(result))
                if name == "alternates":  # objects borrowed from outside are not there for git
                    assert result.is_error or tool == "git_diff", (name, tool, text_of(result))
                    continue
                assert result.is_error, (name, tool, text_of(result))
                if name != "worktree":
                    assert "outside your workspace" in text_of(result), (name, tool, text_of(result))


def _objects_link(repo: Path, outside: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    shutil.rmtree(repo / ".git" / "objects")
    (repo / ".git" / "objects").symlink_to(outside / ".git" / "objects")
    git(repo, "update-ref", "refs/heads/main", git(outside, "rev-parse", "HEAD"))


def _with_worktree(repo: Path, outside: Path) -> None:
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "core.worktree", str(outside))
