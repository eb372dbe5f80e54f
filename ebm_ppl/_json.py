"""The one JSON sanitiser: checkpoints, log-Z caches, training configs and ``--json`` output."""

from __future__ import annotations

import math
from collections.abc import Callable


def to_jsonable(obj, *, nonfinite_to_null: bool = True, fallback: Callable | None = None):
    """``obj`` as plain JSON values: dicts (keys as strings), lists for tuples and arrays, Python
    scalars for NumPy / JAX scalars and arrays (anything with ``.tolist()``). Non-finite floats
    become None (JSON null) when ``nonfinite_to_null``, else stay (``json`` writes NaN/Infinity,
    which Python reads back); any other object is ``fallback(obj)`` when given, else left as is."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, nonfinite_to_null=nonfinite_to_null, fallback=fallback) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v, nonfinite_to_null=nonfinite_to_null, fallback=fallback) for v in obj]
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return None if nonfinite_to_null and not math.isfinite(obj) else obj
    if hasattr(obj, "tolist"):
        return to_jsonable(obj.tolist(), nonfinite_to_null=nonfinite_to_null, fallback=fallback)
    return obj if fallback is None else fallback(obj)
