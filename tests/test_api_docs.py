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
