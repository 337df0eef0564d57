"""Claims on describe work, kept in the study's database so that two processes never pay twice.

A ``describe`` process claims each image (in a description set) just before it sends it, in one
``BEGIN IMMEDIATE`` transaction with the check that the image still needs a description; the claim is
removed in the transaction that stores the result. A second process on the same study therefore skips
what the first has claimed or finished and the two share the work. A claim whose process is gone (killed,
crashed) is stale and is taken over: on the same host when its process id no longer exists, on any host
once it has expired (claims are refreshed while their process works).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

#: Seconds a claim lasts unless its process refreshes it (each finished batch does).
TTL = 900.0


@dataclass(frozen=True)
class Claim:
    sha256: str
    owner: str
    pid: int
    host: str
    expires: float


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True


class Claims:
    """This process's claims on the images of one description set."""

    def __init__(self, con: sqlite3.Connection, set_id: int, *, ttl: float = TTL):
        self.con = con
        self.set_id = set_id
        self.ttl = ttl
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"

    def stale(self, claim: Claim, now: float) -> bool:
        """A claim nobody is working on: expired, or its process on this host is gone."""
        if claim.expires <= now:
            return True
        return claim.host == self.host and claim.pid != self.pid and not process_alive(claim.pid)

    def take(self, shas: list[str], still_todo: Callable[[str], bool]) -> tuple[list[str], list[Claim]]:
        """Claim those of ``shas`` that nobody else works on and that ``still_todo`` (asked inside the
        same transaction); returns (claimed by this process, claims held by other live processes)."""
        if not shas:
            return [], []
        now = time.time()
        mine: list[str] = []
        busy: list[Claim] = []
        self.con.execute("BEGIN IMMEDIATE")
        try:
            marks = ",".join("?" * len(shas))
            held = {
                r[0]: Claim(*r)
                for r in self.con.execute(
                    f"SELECT sha256, owner, pid, host, expires FROM claims WHERE set_id=? AND sha256 IN ({marks})",
                    (self.set_id, *shas),
                )
            }
            for sha in shas:
                claim = held.get(sha)
                if claim is not None and claim.owner != self.owner and not self.stale(claim, now):
                    busy.append(claim)
                    continue
                if not still_todo(sha):
                    continue
                self.con.execute(
                    """INSERT OR REPLACE INTO claims(set_id, sha256, owner, pid, host, expires)
                       VALUES (?, ?, ?, ?, ?, ?)""",
                    (self.set_id, sha, self.owner, self.pid, self.host, now + self.ttl),
                )
                mine.append(sha)
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")
        return mine, busy

    def release(self, shas: list[str]) -> None:
        """Drop this process's claims on ``shas`` (call inside the transaction that stores them)."""
        self.con.executemany(
            "DELETE FROM claims WHERE set_id=? AND sha256=? AND owner=?",
            [(self.set_id, sha, self.owner) for sha in shas],
        )

    def refresh(self) -> None:
        self.con.execute("UPDATE claims SET expires=? WHERE owner=?", (time.time() + self.ttl, self.owner))

    def release_all(self) -> None:
        self.con.execute("DELETE FROM claims WHERE owner=?", (self.owner,))


def describe_others(claims: list[Claim]) -> str:
    """'process 123 on host-a' (and others) for a message."""
    who = sorted({f"process {c.pid} on {c.host}" for c in claims})
    return ", ".join(who[:3]) + (f" and {len(who) - 3} more" if len(who) > 3 else "")
