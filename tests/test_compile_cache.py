"""The persistent compilation cache of the ebm-ppl command (ebm_ppl/cli/common.py): a second
process reads the compiled program back instead of compiling it; EBM_PPL_CACHE_DIR moves it or
switches it off."""

import json
import os
import subprocess
import sys

from ebm_ppl.cli.common import compilation_cache_dir

_SCRIPT = """
import json, jax, jax.numpy as jnp
from ebm_ppl.cli.common import enable_compilation_cache
hits = []
jax.monitoring.register_event_listener(lambda name, **kw: hits.append(name) if name.endswith("cache_hits") else None)
folder = enable_compilation_cache(min_compile_time_secs=0.0)
y = jax.jit(lambda x: jnp.sin(x) * jnp.cos(x) + x ** 3)(jnp.arange(7.0))
print(json.dumps({"folder": folder, "hits": len(hits), "sum": float(y.sum())}))
"""


def _run(env_dir):
    env = dict(os.environ, EBM_PPL_CACHE_DIR=env_dir)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_second_process_hits_the_cache(tmp_path):
    folder = str(tmp_path / "jaxcache")
    first = _run(folder)
    assert first["folder"] == folder and first["hits"] == 0
    assert os.listdir(folder), "nothing written to the cache folder"
    second = _run(folder)
    assert second["hits"] >= 1 and second["sum"] == first["sum"]


def test_off_switch_and_default_folder(monkeypatch):
    assert _run("off")["folder"] is None
    monkeypatch.delenv("EBM_PPL_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere")
    assert compilation_cache_dir() == os.path.join("/somewhere", "ebm_ppl", "jax")
    monkeypatch.setenv("EBM_PPL_CACHE_DIR", "OFF")
    assert compilation_cache_dir() is None
