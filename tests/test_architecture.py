"""The layers of docs/architecture.md, checked: every import (at module level or inside a function) points
to the module's own layer or below, and no two modules import each other, directly or round a loop.

The modules are parsed with ast (nothing is imported), so the check is fast and sees lazy imports too.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PKG = SRC / "connote"

#: Bottom up; a module imports only from its own layer or below. A name is a module or a package (then
#: every module in it). The picture at the top of docs/architecture.md shows the same table.
LAYERS: list[tuple[str, list[str]]] = [
    (
        "leaves",
        [
            "errors",
            "numbers",
            "safe_write",
            "defaults",
            "specs",
            "params",
            "printable",
            "provenance",
            "image_names",
            "images",
            "tables",
            "toml_files",
            "knn",
            "mst",
            "gpu",
            "jit",
        ],
    ),
    ("storage", ["study"]),
    (
        "stages and metrics",
        [
            "describers",
            "embedders",
            "models",
            "reduce",
            "clustering",
            "keywords",
            "evaluate",
            "registry",
            "paid",
            "testing",
        ],
    ),
    (
        "planning and computing",
        [
            "fitting",
            "evoc",
            "seeds",
            "features",
            "listing",
            "layout",
            "explaining",
            "sweeps",
            "sweep_grid",
            "sweep_pool",
            "derive",
            "labels",
            "metadata",
            "executors",
            "grids",
        ],
    ),
    ("the Python API, validation, reports", ["steps", "coding", "reports"]),
    ("command line", ["cli", "__main__", "__init__"]),
]


#: Modules whose layer is not their package's: the embed runner (embedders/__init__.py) streams batches
#: through an executor into the vector store, so it sits with the executors, above the embedders it runs.
OWN_LAYER = {"connote.embedders": "planning and computing"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1 and parts != ["connote", "__init__"]:
        parts = parts[:-1]
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PKG.rglob("*.py"))}


def layer_of(module: str) -> int:
    if module in OWN_LAYER:
        return [name for name, _ in LAYERS].index(OWN_LAYER[module])
    top = module.split(".")[1] if "." in module else "__init__"
    for i, (_, names) in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module} is in no layer: add it to LAYERS here and to docs/architecture.md")


def walk_runtime(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (imports for annotations only)."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            test = child.test if isinstance(child, ast.If) else None
            if test is not None and "TYPE_CHECKING" in ast.unparse(test):
                todo.extend(child.orelse)
                continue
            todo.append(child)


def imports_of(module: str) -> set[str]:
    """The connote modules ``module`` imports, anywhere in its code (``from connote.study import labels``
    is connote.study.labels; ``from connote.study import Study`` is connote.study)."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in walk_runtime(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == "connote")
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            if base.split(".")[0] != "connote":
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                out.add(sub if sub in MODULES else base)
    out.discard(module)
    return {m for m in out if m in MODULES}


GRAPH = {m: imports_of(m) for m in MODULES}


def test_every_module_has_a_layer():
    for m in MODULES:
        layer_of(m)


def test_imports_point_down():
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]})"
        for m, targets in GRAPH.items()
        for t in sorted(targets)
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, "imports that point up a layer:\n" + "\n".join(upward)


def test_storage_imports_only_leaves():
    """The study layer stores: it knows no stage, no metric, no layout."""
    bad = [
        f"{m} imports {t}"
        for m, targets in GRAPH.items()
        if m.startswith("connote.study")
        for t in targets
        if not t.startswith("connote.study") and layer_of(t) != 0
    ]
    assert not bad


def cycles_of(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's): each a set of modules that
    import each other, directly or round a loop."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycles():
    """No module imports one that imports it back, at module level or inside a function, round any loop;
    a package's __init__ importing its own modules is not a cycle unless one of them imports something
    that imports the package back. (Imports under ``if TYPE_CHECKING:`` are for annotations only.)"""
    cycles = cycles_of(GRAPH)
    assert not cycles, "modules that import each other (directly or round a loop): " + "; ".join(
        " <-> ".join(c) for c in cycles
    )


def test_the_cycle_check_finds_a_loop():
    """The check can fail: a loop of three and a pair are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"e"}, "e": {"d", "f"}, "f": set()}
    assert sorted(cycles_of(graph)) == [["a", "b", "c"], ["d", "e"]]
    assert cycles_of({"a": {"b"}, "b": {"c"}, "c": set()}) == []


@pytest.mark.parametrize(
    ("module", "expected"),
    [("connote.study.runs", "connote.study.common"), ("connote.features", "connote.study.runs")],
)
def test_the_check_sees_imports(module, expected):
    """The graph is not empty by mistake: known imports are found."""
    assert expected in GRAPH[module]


SQL = re.compile(
    r"\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b",
    re.I | re.S,
)


def test_sql_lives_in_the_study_layer():
    """No SQL text outside connote.study: every query is a Study method (or a study module's function)."""
    found = []
    for m, path in MODULES.items():
        if m.startswith("connote.study"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and SQL.search(node.value):
                found.append(f"{path.relative_to(SRC)}:{node.lineno}: {node.value.strip()[:60]!r}")
    assert not found, "SQL outside connote.study:\n" + "\n".join(found)


#: Parameters whose default is one of the pipeline's defaults: it must be a name from connote.defaults (or
#: None, resolved there), never a literal written again.
DEFAULTED = {
    "seed",
    "seeds",
    "random_state",
    "top_k",
    "min_cluster_size",
    "selection",
    "cluster_selection_method",
    "n_components",
    "n_neighbors",
    "reduce",
    "describer",
    "embedder",
    "text_embedder",
    "image_embedder",
    "n_descriptions",
    "per_cluster",
}

#: (module, parameter) whose literal default is not connote's: EVoC's own settings (the evoc package's
#: defaults, not the UMAP + HDBSCAN pipeline's), and the fake server's fault seed (a test double).
NOT_CONNOTES = {
    ("connote.evoc", "n_neighbors"),
    ("connote.evoc", "min_samples"),
    ("connote.testing.fake_openai", "seed"),
}


def test_defaults_are_defined_once():
    """No function outside connote/defaults.py writes a pipeline default as a literal (``top_k=10``,
    ``seed=42``, ``n_neighbors=15``, ``reduce="umap:..."``): each reads it from connote.defaults."""
    found = []
    for m, path in MODULES.items():
        if m == "connote.defaults":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            a = node.args
            positional = a.posonlyargs + a.args
            pairs = list(zip(positional[len(positional) - len(a.defaults) :], a.defaults))
            pairs += [(arg, d) for arg, d in zip(a.kwonlyargs, a.kw_defaults) if d is not None]
            for arg, default in pairs:
                literal = [
                    n for n in ast.walk(default) if isinstance(n, ast.Constant) and n.value is not None
                ]
                if arg.arg in DEFAULTED and literal and (m, arg.arg) not in NOT_CONNOTES:
                    found.append(
                        f"{path.relative_to(SRC)}:{default.lineno}: {node.name}({arg.arg}={ast.unparse(default)})"
                    )
    assert not found, "defaults written outside connote/defaults.py:\n" + "\n".join(found)
