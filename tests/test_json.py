"""The one JSON sanitiser (checkpoint configs, log-Z caches, training configs, ``--json`` output)."""

import json
import math

import jax.numpy as jnp
import numpy as np

from ebm_ppl._json import to_jsonable


def test_arrays_scalars_tuples_and_keys_become_plain_json():
    obj = {1: (np.float32(0.5), np.int64(3)), "a": jnp.arange(3), "b": np.ones((2, 1)), "c": [None, True, "x"]}
    out = to_jsonable(obj)
    assert out == {"1": [0.5, 3], "a": [0, 1, 2], "b": [[1.0], [1.0]], "c": [None, True, "x"]}
    assert type(out["1"][0]) is float and type(out["1"][1]) is int
    json.dumps(out, allow_nan=False)


def test_non_finite_floats_are_null_or_kept_and_other_objects_use_the_fallback():
    values = {"nan": np.float64("nan"), "inf": [math.inf], "array": np.array([1.0, np.nan])}
    assert to_jsonable(values) == {"nan": None, "inf": [None], "array": [1.0, None]}
    kept = to_jsonable(values, nonfinite_to_null=False)
    assert math.isnan(kept["nan"]) and kept["inf"] == [math.inf] and math.isnan(kept["array"][1])
    marker = object()
    assert to_jsonable({"f": marker}) == {"f": marker}
    assert to_jsonable({"f": marker}, fallback=lambda o: "object") == {"f": "object"}
