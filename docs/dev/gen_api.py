"""Regenerate docs/api.md from the public modules' __all__ and docstrings.

.venv/bin/python docs/dev/gen_api.py > docs/api.md
"""

import importlib
import inspect
import re

MODULES = [
    "ebm_ppl",
    "ebm_ppl.schedules",
    "ebm_ppl.energy",
    "ebm_ppl.checkpoint",
    "ebm_ppl.data",
    "ebm_ppl.distribution",
    "ebm_ppl.logz",
    "ebm_ppl.annealing_frames",
    "ebm_ppl.likelihood",
    "ebm_ppl.sampling.progressive",
    "ebm_ppl.sampling.hmc",
    "ebm_ppl.sampling.long_run",
    "ebm_ppl.sampling.numpyro_kernel",
    "ebm_ppl.sampling.drifting",
    "ebm_ppl.diagnostics",
    "ebm_ppl.inverse",
    "ebm_ppl.metrics",
    "ebm_ppl.train",
    "ebm_ppl.sharding",
    "ebm_ppl.plotting",
]


def first_paragraph(doc):
    doc = inspect.cleandoc(doc or "")
    return " ".join(doc.split("\n\n")[0].split()) if doc else ""


def without_addresses(text):
    """Memory addresses in default reprs (Flax's parent sentinel, functions) change every run."""
    return re.sub(r" at 0x[0-9a-f]+>", ">", text)


def signature(obj):
    try:
        return without_addresses(str(inspect.signature(obj)))
    except (TypeError, ValueError):
        return ""


def main():
    print("# API reference\n")
    print("Generated from the docstrings by `docs/dev/gen_api.py`; each module lists its `__all__`.\n")
    for name in MODULES:
        mod = importlib.import_module(name)
        print(f"## `{name}`\n")
        summary = first_paragraph(mod.__doc__)
        if summary:
            print(summary + "\n")
        for attr in getattr(mod, "__all__", []):
            obj = getattr(mod, attr, None)
            if obj is None or inspect.ismodule(obj):
                continue
            kind = "class" if inspect.isclass(obj) else ("function" if callable(obj) else "constant")
            sig = signature(obj) if kind != "constant" else ""
            doc = (
                first_paragraph(getattr(obj, "__doc__", ""))
                if kind != "constant"
                else without_addresses(repr(obj))[:80]
            )
            print(f"- `{attr}{sig}` ({kind}): {doc}")
        print()


if __name__ == "__main__":
    main()
