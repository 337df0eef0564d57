"""Claims on paid work, kept in the study's database so that two processes never pay twice.

Every paid call claims its item first: ``describe`` an image of a description set, ``embed`` a text through an
API, ``label`` a cluster, an LLM coder a pair or a set. A claim names its *scope* (what kind of work, and in
what: ``describe:3``, ``embed:NAME``, ``label:RUN:LABELLER``, ``rate:SAMPLE:CODER``; :func:`scope` builds the
string) and the *key* of the item within it. A process claims its items just before it sends them, in one
``BEGIN IMMEDIATE`` transaction with the check that each item still needs doing; the claim is removed in the
transaction that stores the result. A second process on the same study therefore skips what the first has
claimed or finished and the two share the work. A claim whose process is gone (killed, crashed) is stale and is
taken over: on the same host when its process id no longer exists, on any host once it has expired (claims are
refreshed while their process works).
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


def scope(kind: str, *parts: object) -> str:
    """The scope string of a kind of work: ``scope('label', 5, 'llm:gpt')`` -> ``'label:5:llm:gpt'``."""
    return ":".join([kind, *(str(p) for p in parts)])


@dataclass(frozen=True)
class Claim:
    key: str
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
    """This process's claims on the items of one scope of work.

    ``where`` is a scope string (:func:`scope`) or, for describing, the id of the description set (the
    scope ``describe:SET_ID``)."""

    def __init__(self, con: sqlite3.Connection, where: int | str, *, ttl: float = TTL):
        self.con = con
        self.scope = where if isinstance(where, str) else scope("describe", where)
        self.ttl = ttl
        self.pid = os.getpid()
        self.host = socket.gethostname()
        self.owner = f"{self.host}:{self.pid}:{uuid.uuid4().hex[:12]}"

    def stale(self, claim: Claim, now: float) -> bool:
        """A claim nobody is working on: expired, or its process on this host is gone."""
        if claim.expires <= now:
            return True
        return claim.host == self.host and claim.pid != self.pid and not process_alive(claim.pid)

    def take(self, keys: list[str], still_todo: Callable[[str], bool]) -> tuple[list[str], list[Claim]]:
        """Claim those of ``keys`` that nobody else works on and that ``still_todo`` (asked inside the
        same transaction); returns (claimed by this process, claims held by other live processes)."""
        if not keys:
            return [], []
        now = time.time()
        mine: list[str] = []
        busy: list[Claim] = []
        self.con.execute("BEGIN IMMEDIATE")
        try:
            marks = ",".join("?" * len(keys))
            held = {
                r[0]: Claim(*r)
                for r in self.con.execute(
                    f"SELECT key, owner, pid, host, expires FROM claims WHERE scope=? AND key IN ({marks})",
                    (self.scope, *keys),
                )
            }
            for key in keys:
                claim = held.get(key)
                if claim is not None and claim.owner != self.owner and not self.stale(claim, now):
                    busy.append(claim)
                    continue
                if not still_todo(key):
                    continue
                self.con.execute(
                    """INSERT OR REPLACE INTO claims(scope, key, owner, pid, host, expires)
                       VALUES (?, ?, ?, ?, ?, ?)""",
                    (self.scope, key, self.owner, self.pid, self.host, now + self.ttl),
                )
                mine.append(key)
        except BaseException:
            if self.con.in_transaction:  # SQLite ends some failed transactions itself (a full disk)
                self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")
        return mine, busy

    def release(self, keys: list[str]) -> None:
        """Drop this process's claims on ``keys`` (call inside the transaction that stores them)."""
        self.con.executemany(
            "DELETE FROM claims WHERE scope=? AND key=? AND owner=?",
            [(self.scope, key, self.owner) for key in keys],
        )

    def refresh(self) -> None:
        self.con.execute("UPDATE claims SET expires=? WHERE owner=?", (time.time() + self.ttl, self.owner))

    def release_all(self) -> None:
        self.con.execute("DELETE FROM claims WHERE owner=?", (self.owner,))


def describe_others(claims: list[Claim]) -> str:
    """'process 123 on host-a' (and others) for a message."""
    who = sorted({f"process {c.pid} on {c.host}" for c in claims})
    return ", ".join(who[:3]) + (f" and {len(who) - 3} more" if len(who) > 3 else "")
