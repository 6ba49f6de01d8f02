"""Whether a process named by host and pid (a lease owner, an export lock's
holder) has ended: decided only for processes of this machine."""

from __future__ import annotations

import os
import socket


def process_gone(host, pid) -> bool:
    """Whether ``pid`` on ``host`` is a process of this machine that has
    ended (False when it runs, when it is on another machine, or when that
    cannot be told)."""
    if host != socket.gethostname() or not isinstance(pid, int) or pid <= 0:
        return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # it exists (another user's) or cannot be asked
        return False
    return False


def owner_gone(owner: str) -> bool:
    """:func:`process_gone` of an owner name ``host:pid:random`` (a Ray
    worker's ``host:pid:random/w0`` names its driver)."""
    parts = str(owner).split("/")[0].rsplit(":", 2)
    if len(parts) != 3:
        return False
    try:
        return process_gone(parts[0], int(parts[1]))
    except ValueError:
        return False
