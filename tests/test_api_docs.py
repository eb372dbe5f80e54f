"""docs/api.md is what docs/dev/gen_api.py writes from the public modules' ``__all__`` and
docstrings today: a change to a public signature or docstring must come with the regenerated page."""

from __future__ import annotations

import difflib
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_api_page_is_current():
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    fresh = subprocess.run(
        [sys.executable, os.path.join(ROOT, "docs", "dev", "gen_api.py")],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        cwd=ROOT,
    ).stdout
    with open(os.path.join(ROOT, "docs", "api.md")) as fh:
        stored = fh.read()
    if fresh != stored:
        diff = "".join(
            list(difflib.unified_diff(stored.splitlines(True), fresh.splitlines(True), "docs/api.md", "generated"))[:40]
        )
        raise AssertionError(
            "docs/api.md is stale; regenerate it with `.venv/bin/python docs/dev/gen_api.py > docs/api.md`:\n" + diff
        )


def test_library_text_points_only_at_files_in_the_repository():
    """Docstrings and messages cite docs/*.md, benchmarks/ and tests/ paths that exist (no design
    file outside the repository)."""
    import re

    missing = []
    for folder, _, files in os.walk(os.path.join(ROOT, "ebm_ppl")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
            if "DESIGN.md" in text:
                missing.append(f"{os.path.relpath(path, ROOT)}: DESIGN.md")
            for ref in re.findall(r"\b((?:docs|benchmarks|tests)/[\w./-]+\.(?:md|py|json))", text):
                if not os.path.exists(os.path.join(ROOT, ref)):
                    missing.append(f"{os.path.relpath(path, ROOT)}: {ref}")
    assert not missing, "references to files that are not in the repository:\n  " + "\n  ".join(missing)


#: most keyword options a public function takes before they belong in a config NamedTuple
MAX_OPTIONS = 10


def _options_over_limit(functions) -> list[str]:
    import inspect

    over = []
    for name, fn in functions:
        params = inspect.signature(fn).parameters.values()
        options = [p for p in params if p.default is not p.empty and p.kind is not p.VAR_KEYWORD]
        if len(options) > MAX_OPTIONS:
            over.append(f"{name} ({len(options)} options)")
    return over


def test_public_functions_put_many_options_in_a_config():
    """No public function of the API page's modules takes more than MAX_OPTIONS keyword options
    (docs/conventions.md: more go into a config NamedTuple, like logz.AnnealingConfig)."""
    import importlib
    import inspect
    import warnings

    sys.path.insert(0, os.path.join(ROOT, "docs", "dev"))
    try:
        from gen_api import MODULES
    finally:
        sys.path.pop(0)
    functions = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module_name in MODULES:
            module = importlib.import_module(module_name)
            for name in getattr(module, "__all__", []):
                obj = getattr(module, name)
                if inspect.isfunction(obj):
                    functions.setdefault(f"{obj.__module__}.{obj.__qualname__}", obj)
    assert len(functions) > 100
    assert _options_over_limit(sorted(functions.items())) == []
    # the check sees a function with too many options
    assert _options_over_limit(
        [("probe", lambda a, *, b1=1, b2=2, b3=3, b4=4, b5=5, b6=6, b7=7, b8=8, b9=9, b10=10, b11=11: a)]
    ) == ["probe (11 options)"]
