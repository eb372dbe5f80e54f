"""Every code block in README.md and docs/*.md runs as written.

* ```python blocks run in order, one namespace per file, from the repository root (so
  ``models/...`` paths resolve), with a wall-clock guard; they are written with small budgets so
  each file's blocks take seconds.
* ```bash blocks: every ``ebm-ppl ...`` line must parse with the real command-line parser (the
  command exists, every option is spelled right and its value is accepted); ``make`` lines must
  name a target of the Makefile. Running them is the job of the commands' own tests: training and
  benchmarks take minutes.
"""

from __future__ import annotations

import argparse
import glob
import os
import re
import shlex
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = ["README.md"] + sorted(os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "docs", "*.md")))
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)
#: a doc's python blocks must finish within this (they are examples, not benchmarks)
PYTHON_BUDGET_S = 120
#: docs whose python blocks are not run here (none: every block of README.md and docs/*.md runs;
#: the shell blocks of every doc are checked below)
NOT_YET_RUN: set[str] = set()


def _blocks(doc: str, lang: str) -> list[str]:
    with open(os.path.join(ROOT, doc), encoding="utf-8") as fh:
        text = fh.read()
    return [m.group(2) for m in FENCE.finditer(text) if m.group(1) == lang]


def _docs_with(lang):
    return [d for d in DOCS if _blocks(d, lang)]


@pytest.mark.parametrize("doc", [d for d in _docs_with("python") if d not in NOT_YET_RUN])
def test_python_blocks_run(doc, monkeypatch, tmp_path):
    import matplotlib

    matplotlib.use("Agg")  # the test process only: examples that plot must not need a display
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("EBM_PPL_DOCS_OUT", str(tmp_path))
    namespace = {"__name__": f"docs:{doc}"}
    t0 = time.time()
    for i, block in enumerate(_blocks(doc, "python")):
        code = compile(block, f"{doc} python block {i + 1}", "exec")
        exec(code, namespace)  # noqa: S102 - running the documentation is the point
    assert time.time() - t0 < PYTHON_BUDGET_S, f"{doc}: python blocks took {time.time() - t0:.0f} s"


def _command_lines(block: str) -> list[str]:
    lines, current = [], ""
    for raw in block.splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        current += line
        if current.strip():
            lines.append(current.strip())
        current = ""
    return lines


def _make_targets():
    with open(os.path.join(ROOT, "Makefile"), encoding="utf-8") as fh:
        return set(re.findall(r"^([A-Za-z][\w-]*):", fh.read(), re.M))


@pytest.mark.parametrize("doc", _docs_with("bash"))
def test_shell_blocks_parse(doc, monkeypatch):
    from ebm_ppl.cli import build_parser

    parser, _ = build_parser()
    targets = _make_targets()

    def fail(message):  # argparse calls error() -> exit; turn it into an assertion with the line
        raise AssertionError(message)

    for block in _blocks(doc, "bash"):
        for line in _command_lines(block):
            words = shlex.split(line)
            env = [w for w in words if re.match(r"^[A-Z_]+=", w)]
            words = words[len(env) :]
            if not words:
                continue
            prog = os.path.basename(words[0])
            if prog == "ebm-ppl":
                monkeypatch.setattr(
                    argparse.ArgumentParser, "error", lambda self, msg, line=line: fail(f"{doc}: `{line}`: {msg}")
                )
                parser.parse_args(words[1:])
            elif prog == "make":
                for target in (w for w in words[1:] if not w.startswith("-") and "=" not in w):
                    assert target in targets, f"{doc}: `{line}`: no make target {target!r}"
            elif prog in ("python", "python3") or prog.endswith("/python"):
                script = next((w for w in words[1:] if w.endswith(".py")), None)
                if script is not None:
                    assert os.path.isfile(os.path.join(ROOT, script)), f"{doc}: `{line}`: no script {script}"
