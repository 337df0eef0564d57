"""Flagged descriptions: list them where a user decides, let a user keep them, count what is left out.

A description an output check flagged is stored with its reason. Its status says what happens to it:
'flagged' = kept apart (not embedded, not clustered), 'ok' = used (an imported text checked without
``--exclude-flagged``, or one a user accepted). Accepting keeps the reason, so the flag stays visible.
Images without a usable description ('flagged', 'failed' or not described yet) are left out of every run
on that set; :meth:`FlagsMixin.left_out` counts them for the run's record.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from connote.errors import UserError
from connote.study.descriptions import DescriptionsMixin
from connote.study.images import ImagesMixin

MIN_SHA_PREFIX = 6


@dataclass
class Flagged:
    set_name: str
    sha256: str
    path: str  # the image's first path under the images root
    reason: str
    text: str | None
    used: bool  # True: kept in use (accepted, or imported without --exclude-flagged)

    def as_dict(self) -> dict:
        return asdict(self)


class FlagsMixin(ImagesMixin, DescriptionsMixin):
    """Part of :class:`connote.study.Study`: flagged descriptions and the images left out of runs."""

    def flagged(self, set_name: str | None = None, *, include_used: bool = True) -> list[Flagged]:
        """Flagged descriptions of one set (or of all sets), in image path order."""
        sets = [self.resolve_description_set(set_name)] if set_name else self.description_sets()
        out = []
        for s in sets:
            rows = self.con.execute(  # the path of each flagged image only (not every image's)
                """SELECT d.sha256, d.status, d.reason, d.text,
                          (SELECT MIN(i.path) FROM images i WHERE i.sha256=d.sha256 AND i.status='ok') AS path
                   FROM descriptions d
                   WHERE d.set_id=? AND d.reason IS NOT NULL AND d.status IN ('flagged', 'ok')""",
                (s["id"],),
            ).fetchall()
            for r in rows:
                if r["status"] == "ok" and not include_used:
                    continue
                path = r["path"] or r["sha256"][:12]
                out.append(Flagged(s["name"], r["sha256"], path, r["reason"], r["text"], r["status"] == "ok"))
        return sorted(out, key=lambda f: (f.set_name, f.path))

    def resolve_images(self, refs: Iterable[str]) -> tuple[dict[str, str], list[str]]:
        """{ref: sha256} for image references (a path under the images root, a file name that is unique, a
        sha256 or a prefix of at least 6 hex digits), and the refs that name no image (or more than one)."""
        images = self.images()
        by_path = {r["path"]: r["sha256"] for r in images}
        by_name: dict[str, set[str]] = {}
        for r in images:
            by_name.setdefault(r["path"].rsplit("/", 1)[-1], set()).add(r["sha256"])
        shas = sorted({r["sha256"] for r in images})
        found, unknown = {}, []
        for ref in refs:
            key = ref.strip().replace("\\", "/").removeprefix("./")
            if key in by_path:
                found[ref] = by_path[key]
                continue
            if len(by_name.get(key, ())) == 1:
                found[ref] = next(iter(by_name[key]))
                continue
            hits = (
                [s for s in shas if s.startswith(key.lower())]
                if len(key) >= MIN_SHA_PREFIX and all(c in "0123456789abcdefABCDEF" for c in key)
                else []
            )
            if len(hits) == 1:
                found[ref] = hits[0]
            else:
                unknown.append(ref)
        return found, unknown

    def waiting_set(self) -> str | None:
        """The one description set holding flagged descriptions that are left out (None if no set does)."""
        names = sorted({f.set_name for f in self.flagged(include_used=False)})
        if len(names) > 1:
            raise UserError(
                f"flagged descriptions in sets {', '.join(map(repr, names))}: choose one with --name"
            )
        return names[0] if names else None

    def accept_flagged(self, set_name: str | None = None, refs: Iterable[str] | None = None) -> list[Flagged]:
        """Keep flagged descriptions of a set in use (all of them when ``refs`` is None); returns those accepted.

        ``set_name`` None: the one set with flagged descriptions left out. A reference that names no image, or
        an image without a flagged description in the set, is an error naming it (nothing is changed then).
        """
        set_name = set_name or self.waiting_set()
        if set_name is None:
            if refs:
                raise UserError("no flagged descriptions are left out (see `connote status`)")
            return []
        ds = self.resolve_description_set(set_name)
        waiting = {f.sha256: f for f in self.flagged(ds["name"], include_used=False)}
        if refs is None:
            chosen = list(waiting)
        else:
            refs = list(refs)
            found, unknown = self.resolve_images(refs)
            if unknown:
                raise UserError(f"not an image of the study (or not unique): {', '.join(unknown)}")
            not_flagged = [ref for ref, sha in found.items() if sha not in waiting]
            if not_flagged:
                raise UserError(
                    f"no flagged description in set {ds['name']!r} for: {', '.join(not_flagged)} "
                    "(see `connote status`)"
                )
            chosen = list(dict.fromkeys(found.values()))
        with self.transaction():
            self.con.executemany(
                "UPDATE descriptions SET status='ok' WHERE set_id=? AND sha256=? AND status='flagged'",
                [(ds["id"], sha) for sha in chosen],
            )
        out = [waiting[sha] for sha in chosen]
        for f in out:
            f.used = True
        return out

    def left_out(self, set_name: str | None = None) -> dict[str, int]:
        """Distinct images of the study without a usable description in a set, by cause."""
        ds = self.resolve_description_set(set_name)
        out = {"flagged": 0, "failed": 0, "not described": 0}
        for status, n in self.con.execute(  # counted in SQL: no row per image is loaded
            """SELECT d.status, COUNT(*) FROM (SELECT DISTINCT sha256 FROM images WHERE status='ok') i
               LEFT JOIN descriptions d ON d.set_id=? AND d.sha256=i.sha256 GROUP BY d.status""",
            (ds["id"],),
        ):
            if status in ("flagged", "failed"):
                out[status] += n
            elif status is None:
                out["not described"] += n
        out["total"] = sum(out.values())
        return out

    def run_left_out(self, kind: str, description_set: str | None, n_items: int) -> dict[str, int]:
        """What a run on these features leaves out, for its record: images without a usable description
        (text features, by cause), or without an image vector (image features)."""
        if kind == "text" and description_set:
            return self.left_out(description_set)
        n = self.count_unique_images() - n_items
        return {"no image vector": max(n, 0), "total": max(n, 0)}


# The functions of earlier releases, kept for one release: each takes the study first.
flagged = FlagsMixin.flagged
resolve_images = FlagsMixin.resolve_images
waiting_set = FlagsMixin.waiting_set
accept = FlagsMixin.accept_flagged
left_out = FlagsMixin.left_out
run_left_out = FlagsMixin.run_left_out
