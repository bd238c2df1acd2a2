"""Who is working on an update: a worker's name, and whether a worker on this machine is gone.

A worker's name is ``host:pid:start`` (``start``: when the process began, in the kernel's clock
ticks), unique across restarts even where a restarted process gets the same pid, as PID 1 in a
container does. The ledger keeps it as the claimant of each update a worker answers; a claim
whose worker is gone may be taken over at once instead of when its lease runs out, which is
what lets a restart on the same machine resume straight away.
"""

from __future__ import annotations

import os
import socket
from functools import cache


def _start_ticks(pid: int) -> str | None:
    """When process ``pid`` started (field 22 of /proc/PID/stat); None if there is no such process."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rpartition(")")[2].split()  # the name may hold spaces and parens
    except OSError:
        return None
    return fields[19] if len(fields) > 19 else "?"


@cache
def host() -> str:
    return socket.gethostname()[:24] or "host"


def worker_name() -> str:
    """This process's name as a claimant (fits the ledger's 64 characters)."""
    pid = os.getpid()
    return f"{host()}:{pid}:{_start_ticks(pid) or '?'}"


def gone(claimant: str) -> bool:
    """Whether ``claimant`` is a worker of this machine that no longer runs. A worker of another
    machine, or a name in another form, is not known to be gone: its lease decides."""
    name, _, rest = claimant.partition(":")
    pid_text, _, start = rest.partition(":")
    if name != host() or not pid_text.isdigit() or not start:
        return False
    pid = int(pid_text)
    if not os.path.isdir("/proc/self"):  # no procfs (macOS): whether the pid runs at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:  # it runs, as another user
            return False
        return False
    ticks = _start_ticks(pid)
    return ticks is None or (start != "?" and ticks != start)
