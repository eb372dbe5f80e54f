"""The package's import layers: a module imports only from its own layer or below, and no import
cycle exists. Imports are read from the source (top-level and function-local alike, since a local
import is a dependency all the same).

Layers, lowest first (a module belongs to the longest prefix listed):

    base          schedules, sharding, data, annealing frames, jax helpers, the version
    energy        the energy protocol, oracles, targets, networks; checkpoints (they build energies)
    kernels       progressive kernel, top-level sampler, HMC/NUTS glue, long-run chains
    estimators    logz, likelihoods (bits/dim, ELBO, ODE), the drifting sampler
    distribution  EBMPrior and the NumPyro kernel
    inverse       forward operators and posteriors
    edges         metrics, plotting, ArviZ diagnostics, agreement checks, evaluations with plots
    train         objectives, step, loop
    cli           the command line
    root          ``ebm_ppl/__init__`` (the public facade)

A package ``__init__`` may import its own submodules whatever their layer (it is a facade).
"""

from __future__ import annotations

import ast
import os

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "ebm_ppl")

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "base",
        (
            "ebm_ppl._version",
            "ebm_ppl._jax_utils",
            "ebm_ppl._json",
            "ebm_ppl.schedules",
            "ebm_ppl.sharding",
            "ebm_ppl.data",
            "ebm_ppl.annealing_frames",
        ),
    ),
    ("energy", ("ebm_ppl.energy", "ebm_ppl.checkpoint")),
    (
        "kernels",
        (
            "ebm_ppl.sampling.progressive",
            "ebm_ppl.sampling.top_level",
            "ebm_ppl.sampling.hmc",
            "ebm_ppl.sampling.long_run",
        ),
    ),
    ("estimators", ("ebm_ppl.logz", "ebm_ppl.likelihood", "ebm_ppl.likelihood_bounds", "ebm_ppl.sampling.drifting")),
    ("distribution", ("ebm_ppl.distribution", "ebm_ppl.sampling.numpyro_kernel", "ebm_ppl.sampling")),
    ("inverse", ("ebm_ppl.inverse",)),
    (
        "edges",
        (
            "ebm_ppl.metrics",
            "ebm_ppl.plotting",
            "ebm_ppl.diagnostics",
            "ebm_ppl.agreement",
            "ebm_ppl.inverse.experiment",
            "ebm_ppl.inverse.metrics",
        ),
    ),
    ("train", ("ebm_ppl.train",)),
    ("cli", ("ebm_ppl.cli",)),
    ("root", ("ebm_ppl",)),
]
RANK = {name: i for i, (name, _) in enumerate(LAYERS)}

# Upward imports kept on purpose, each with its reason.
ALLOWED = {
    # the deprecated alias of ebm_ppl.plotting.plot_step_sizes (one release), imported when called
    ("ebm_ppl.sampling.long_run", "ebm_ppl.plotting"),
    # the deprecated evaluation names of the drifting package (one release), imported when used
    ("ebm_ppl.sampling.drifting", "ebm_ppl.metrics"),
    ("ebm_ppl.sampling.drifting", "ebm_ppl.metrics.mmd"),
    ("ebm_ppl.sampling.drifting", "ebm_ppl.metrics.sampler_evaluation"),
    ("ebm_ppl.sampling.drifting", "ebm_ppl.plotting"),
}


def layer_of(module: str) -> str:
    best, best_len = None, -1
    for name, prefixes in LAYERS:
        for p in prefixes:
            if (module == p or module.startswith(p + ".")) and len(p) > best_len:
                best, best_len = name, len(p)
    if best is None:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS in tests/test_layering.py")
    return best


def _modules(package_dir: str = PACKAGE, package: str = "ebm_ppl") -> dict[str, str]:
    out = {}
    for folder, _, files in os.walk(package_dir):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(folder, f)
                rel = os.path.relpath(path, os.path.dirname(package_dir))[:-3].replace(os.sep, ".")
                out[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return out


def import_graph(modules: dict[str, str]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (``from a import b`` counts ``a.b`` when it is a module)."""
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        with open(path) as fh:
            tree = ast.parse(fh.read(), path)
        targets: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                for a in node.names:
                    targets.add(f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod)
        deps = set()
        for t in targets:
            while t and t not in modules and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in modules and t != name:
                deps.add(t)
        graph[name] = deps
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for mod, deps in sorted(graph.items()):
        for dep in sorted(deps):
            if (mod, dep) in ALLOWED:
                continue
            own_facade = graph.get(mod) is not None and dep.startswith(mod + ".")
            if own_facade:
                continue
            if RANK[layer_of(dep)] > RANK[layer_of(mod)]:
                bad.append(f"{mod} ({layer_of(mod)}) imports {dep} ({layer_of(dep)})")
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
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
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


@pytest.fixture(scope="module")
def graph():
    return import_graph(_modules())


def test_every_module_has_a_layer(graph):
    for mod in graph:
        layer_of(mod)


def test_no_module_imports_from_a_higher_layer(graph):
    bad = upward_imports(graph)
    assert not bad, "upward imports:\n  " + "\n  ".join(bad)


def test_no_import_cycles(graph):
    # a package facade importing its own submodules is not a cycle of logic: leave those edges out
    logic = {m: {d for d in deps if not d.startswith(m + ".")} for m, deps in graph.items()}
    found = cycles(logic)
    assert not found, f"import cycles: {found}"


def test_the_checks_catch_an_upward_import_and_a_cycle():
    """The checks themselves fail on a graph with a kernel importing the CLI and a two-module cycle."""
    fake = {
        "ebm_ppl.sampling.hmc": {"ebm_ppl.cli.sample"},
        "ebm_ppl.cli.sample": {"ebm_ppl.sampling.hmc"},
        "ebm_ppl.schedules": set(),
    }
    assert upward_imports(fake) == ["ebm_ppl.sampling.hmc (kernels) imports ebm_ppl.cli.sample (cli)"]
    assert cycles(fake) == [["ebm_ppl.cli.sample", "ebm_ppl.sampling.hmc"]]


def test_tests_mirror_the_package_layout():
    """tests/<name>/ exists only for a package ebm_ppl/<name>/, and tests at the top level are of
    top-level modules or of the project as a whole (layering, docs, the model zoo)."""
    tests_dir = os.path.join(ROOT, "tests")
    for entry in sorted(os.listdir(tests_dir)):
        full = os.path.join(tests_dir, entry)
        if os.path.isdir(full) and not entry.startswith((".", "__")):
            assert os.path.isfile(os.path.join(PACKAGE, entry, "__init__.py")), (
                f"tests/{entry}/ has no package ebm_ppl/{entry}/ to mirror"
            )
            assert any(f.startswith("test_") for f in os.listdir(full)), f"tests/{entry}/ holds no test module"
