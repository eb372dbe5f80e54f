"""The log Z cache of a checkpoint: ``logz/level_<t>.json``, each tied to the parameters it was
estimated for by their SHA-256 (an entry for other parameters is ignored)."""

from __future__ import annotations

import hashlib
import json
import math
import os

from ebm_ppl._json import to_jsonable
from ebm_ppl.checkpoint.files import (
    LOGZ_DIR,
    PARAMS_FILE,
    CheckpointError,
    _check_dir,
    atomic_write_text,
    read_config,
)

__all__ = ["params_digest", "save_logz", "load_logz", "read_logz_entries", "lookup_logz"]


def params_digest(path) -> str | None:
    fname = os.path.join(os.fspath(path), PARAMS_FILE)
    if not os.path.isfile(fname):
        return None
    with open(fname, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


def save_logz(path, estimate: dict) -> str:
    """Cache a log Z estimate: ``estimate`` needs ``level`` (int) and ``log_z`` (float); every other
    JSON-serialisable field (method, ess, num_particles, seed, stderr, ...) is kept as metadata.
    The parameters' digest and the checkpoint step are added so stale entries are detected."""
    path = _check_dir(path)
    if "level" not in estimate or "log_z" not in estimate:
        raise ValueError("a log Z estimate needs 'level' and 'log_z'")
    level = int(estimate["level"])
    entry = to_jsonable(dict(estimate), nonfinite_to_null=False)
    entry["level"] = level
    entry["params_sha256"] = params_digest(path)
    try:
        entry.setdefault("checkpoint_step", read_config(path)["step"])
    except CheckpointError:
        pass
    return atomic_write_text(os.path.join(path, LOGZ_DIR, f"level_{level}.json"), json.dumps(entry, indent=2) + "\n")


def _read_logz_entry(fname: str, digest: str | None) -> dict | None:
    """A stored entry, or None when made for other parameters (``digest``) or not finite."""
    try:
        with open(fname, encoding="utf-8") as fh:
            entry = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{fname}: corrupt JSON ({err})") from None
    if entry.get("params_sha256") not in (None, digest):
        return None
    if isinstance(entry.get("log_z"), (int, float)) and not math.isfinite(entry["log_z"]):
        return None
    return entry


def read_logz_entries(path) -> dict[int, dict]:
    """Every cached estimate of a checkpoint that was made for its current parameters, by level
    (the parameters are hashed once). :func:`lookup_logz` finds a level's value in them."""
    path = _check_dir(path)
    folder = os.path.join(path, LOGZ_DIR)
    if not os.path.isdir(folder):
        return {}
    digest = params_digest(path)
    entries: dict[int, dict] = {}
    for name in sorted(os.listdir(folder)):
        if name.startswith("level_") and name.endswith(".json"):
            try:
                level = int(name[len("level_") : -len(".json")])
            except ValueError:
                continue
            entry = _read_logz_entry(os.path.join(folder, name), digest)
            if entry is not None:
                entries[level] = entry
    return entries


def lookup_logz(entries: dict[int, dict], level: int) -> dict | None:
    """The estimate for ``level`` among ``entries`` (:func:`read_logz_entries`), or None.

    Without an entry for ``level``, a stored run that passed it on its way down (its ``levels``
    table, as AIS and the ladder record) supplies it, the costliest such run first; the entry then
    says ``derived_from_level``. (``ebm-ppl logz --write`` on a schedule with many levels, T1k,
    stores only the level it estimated.)"""
    level = int(level)
    if level in entries:
        return entries[level]
    runs = [
        entry
        for _, entry in sorted(entries.items())
        if isinstance(((entry.get("levels") or {}).get(str(level)) or {}).get("log_z"), (int, float))
    ]
    if not runs:
        return None
    run: dict = max(runs, key=lambda e: e.get("num_grad_evals") or 0)
    row = run["levels"][str(level)]
    if not math.isfinite(row["log_z"]):
        return None
    derived = {k: v for k, v in run.items() if k not in ("curve", "lower", "upper")}
    derived.update(
        log_z=row["log_z"],
        stderr=row.get("stderr"),
        ess=row.get("ess"),
        level=level,
        curve=[],
        lower=None,
        upper=None,
        derived_from_level=run["level"],
    )
    return derived


def load_logz(path, level: int) -> dict | None:
    """The cached estimate for ``level``, or None when absent or made for other parameters (read
    from the files now; :func:`lookup_logz` explains how a level without a file is found)."""
    return lookup_logz(read_logz_entries(path), level)
