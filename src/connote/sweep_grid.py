"""A sweep's grid: which S3/S4 settings to run, and how they are fitted to a collection.

A grid is ``"paper"`` (connote/grids/paper.toml, the paper's UMAP 5/10 components x 5/15/30 neighbours,
PCA 5/10/20 components and 80% variance, min cluster sizes 50/100/200), a TOML file of the same shape, a
dict of that shape, or a :class:`Grid`. :func:`plan` fits it to ``n`` items of ``dim`` features
(neighbours and components clamped, min cluster sizes scaled by n / reference_n), saying what it changed.
Pure settings: :mod:`connote.sweeps` runs them.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field
from pathlib import Path

from connote.errors import UserError
from connote.numbers import real, whole
from connote.toml_files import read_toml


@dataclass
class Grid:
    name: str
    umap: list[tuple[int, int]]  # (components, neighbours)
    pca: list[tuple[str, float]]  # ('components', 5) | ('variance', 0.8)
    min_cluster_sizes: list[int]
    metric: str = "cosine"
    reference_n: int | None = None
    min_cluster_size_floor: int = 5
    evoc: list[dict] = field(default_factory=list)  # EVoC settings (options by name), each fit's layers runs

    @classmethod
    def from_dict(cls, d: dict, name: str | None = None) -> Grid:
        known = {"name", "reference_n", "min_cluster_size_floor", "min_cluster_size", "umap", "pca", "evoc"}
        bad = set(d) - known
        if bad:
            raise UserError(
                f"unknown grid entries {', '.join(sorted(bad))} (known: {', '.join(sorted(known))})"
            )
        try:
            u = d.get("umap") or {}
            p = d.get("pca") or {}
            umap = [
                (whole(c, "[umap] components"), whole(k, "[umap] neighbors"))
                for c in _list(u.get("components", []))
                for k in _list(u.get("neighbors", []))
            ]
            pca: list[tuple[str, float]] = [
                ("components", whole(c, "[pca] components")) for c in _list(p.get("components", []))
            ]
            pca += [("variance", real(v, "[pca] variance")) for v in _list(p.get("variance", []))]
            mcs = [whole(m, "min_cluster_size") for m in _list(d.get("min_cluster_size", []))]
            ref = d.get("reference_n")
            grid = cls(
                name=str(d.get("name") or name or "grid"),
                umap=umap,
                pca=pca,
                min_cluster_sizes=mcs,
                metric=str(u.get("metric", "cosine")),
                reference_n=whole(ref, "reference_n", low=1) if ref else None,
                min_cluster_size_floor=whole(
                    d.get("min_cluster_size_floor", 5), "min_cluster_size_floor", low=2
                ),
                evoc=_evoc_settings(d.get("evoc", False)),
            )
        except (TypeError, ValueError) as exc:
            raise UserError(f"bad number in grid: {exc}") from None
        if not (grid.umap or grid.pca or grid.evoc):
            raise UserError(
                "the grid has no reductions: give [umap] components and neighbors, or [pca], or [evoc]"
            )
        if not grid.min_cluster_sizes and (grid.umap or grid.pca):
            raise UserError("the grid has no min_cluster_size list")
        if any(m < 2 for m in grid.min_cluster_sizes):
            raise UserError("min cluster sizes must be at least 2")
        from connote import registry

        for spec in grid.reduce_specs():  # each setting checked as the command line's --reduce is
            registry.reducer(spec)
        return grid

    def reduce_specs(self) -> list[str]:
        metric = "" if self.metric == "cosine" else f",metric={self.metric}"
        out = [f"umap:components={c},neighbors={k}{metric}" for c, k in self.umap]
        out += [f"pca:{kind}={value:g}" for kind, value in self.pca]
        return out


def _list(v) -> list:
    return list(v) if isinstance(v, (list, tuple)) else [v]


def evoc_options() -> dict:
    """What an [evoc] grid entry may set, with the check of each (each a value or a list; every combination
    is one EVoC fit per seed)."""
    from connote.evoc import OPTIONS

    return OPTIONS


def _evoc_settings(entry) -> list[dict]:
    """The EVoC settings of a grid's ``[evoc]`` table (``evoc = true`` or an empty table: EVoC's defaults)."""
    if entry is False:
        return []
    if entry is True:
        return [{}]
    if not isinstance(entry, dict):
        raise UserError("[evoc] must be a table of EVoC options (or evoc = true)")
    bad = sorted(set(entry) - set(evoc_options()))
    if bad:
        raise UserError(f"unknown [evoc] options {', '.join(bad)} (known: {', '.join(evoc_options())})")
    names = sorted(entry)
    values = [[evoc_options()[k](v, f"[evoc] {k}") for v in _list(entry[k])] for k in names]
    return [dict(zip(names, combo)) for combo in itertools.product(*values)]


#: The paper's grid (UMAP 5/10 x 5/15/30, PCA 5/10/20/80%, min cluster size 50/100/200).
PAPER_GRID_FILE = Path(__file__).parent / "grids" / "paper.toml"


def load_grid(grid: str | os.PathLike | dict | Grid = "paper") -> Grid:
    """'paper' (connote/grids/paper.toml), a TOML file of the same shape, a dict of that shape, or a Grid."""
    if isinstance(grid, Grid):
        return grid
    if isinstance(grid, dict):
        return Grid.from_dict(grid)
    path = PAPER_GRID_FILE if str(grid) == "paper" else Path(grid)
    if not path.is_file():
        raise UserError(f"grid {str(grid)!r}: not 'paper' and no such file")
    data = read_toml(path, "grid file")
    try:
        return Grid.from_dict(data, name=path.stem)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None


@dataclass
class Plan:
    """The grid fitted to a collection of ``n`` items (neighbours/components clamped, sizes scaled)."""

    reduce_specs: list[str]
    min_cluster_sizes: list[int]
    notes: list[str]
    evoc: list[dict] = field(default_factory=list)


def plan(grid: Grid, n: int, dim: int) -> Plan:
    notes: list[str] = []
    mcs = list(dict.fromkeys(grid.min_cluster_sizes))
    if grid.reference_n and n < grid.reference_n:
        cap = max(2, n // 3)
        scaled = [
            int(min(cap, max(grid.min_cluster_size_floor, round(m * n / grid.reference_n)))) for m in mcs
        ]
        scaled = list(dict.fromkeys(max(2, s) for s in scaled))
        if scaled != mcs:
            notes.append(
                f"{n} items is fewer than the {grid.name} grid's {grid.reference_n}: min cluster sizes "
                f"{', '.join(map(str, mcs))} scaled by n/{grid.reference_n} to {', '.join(map(str, scaled))}"
                f" (floor {grid.min_cluster_size_floor})"
            )
        mcs = scaled
    umap_pairs, clamped = [], []
    for c, k in grid.umap:
        c2, k2 = max(1, min(c, n - 2)), max(2, min(k, n - 1))
        if (c2, k2) != (c, k):
            clamped.append(f"{c}x{k}->{c2}x{k2}")
        umap_pairs.append((c2, k2))
    if clamped:
        notes.append(f"UMAP components x neighbours clamped to fit {n} items: {', '.join(clamped)}")
    pca = []
    for kind, value in grid.pca:
        if kind == "components" and value > min(n, dim):
            notes.append(f"PCA components {int(value)} clamped to {min(n, dim)} to fit {n} x {dim} features")
            value = min(n, dim)
        pca.append((kind, value))
    fitted = Grid(grid.name, umap_pairs, pca, mcs, grid.metric, None, grid.min_cluster_size_floor)
    return Plan(list(dict.fromkeys(fitted.reduce_specs())), mcs, notes, list(grid.evoc))
