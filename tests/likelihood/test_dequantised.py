"""bits/dim: the uniform density gives exactly log2(levels); oracle densities match a direct sum."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest

from ebm_ppl import EBMPrior, bits_per_dim, schedules
from ebm_ppl.energy import GaussianOracle


@pytest.mark.parametrize("levels", [2, 17, 256])
def test_uniform_density_gives_log2_levels(levels):
    rng = np.random.default_rng(0)
    raw = rng.integers(0, levels, size=(100, 8, 8))
    x = ((raw + 0.5) * 2 / levels - 1).astype(np.float32)
    uniform = dist.Uniform(-jnp.ones((8, 8)), jnp.ones((8, 8))).to_event(2)
    r = bits_per_dim(uniform, x, jax.random.key(0), levels=levels)
    assert abs(r.bpd - math.log2(levels)) < 1e-5 and r.stderr_data < 1e-5 and r.stderr_log_z == 0


def test_oracle_bpd_matches_its_density_and_carries_log_z_stderr():
    sched = schedules.drl(6)
    oracle = GaussianOracle(np.zeros(4), 0.1, sched)
    x = np.zeros((10, 4), np.float32)
    prior = EBMPrior(oracle, log_z=oracle.log_z(0))
    r = bits_per_dim(prior, x, jax.random.key(1), levels=None)
    expected = -(-2 * math.log(2 * math.pi * 0.1)) / (4 * math.log(2))
    assert abs(r.bpd - expected) < 1e-4
    r = bits_per_dim(prior, x, jax.random.key(1), levels=None, log_z_stderr=0.4)
    assert abs(r.stderr_log_z - 0.4 / (4 * math.log(2))) < 1e-9
    with pytest.raises(ValueError, match="shape"):
        bits_per_dim(prior, np.zeros((3, 5), np.float32))


def test_unreliable_stored_log_z_warns_in_bits_per_dim_and_the_cli(capsys):
    # models/digits-t6 level 1: stored log Z at weight ESS 1.1 of 1024 (no k-hat stored: ESS floor)
    import warnings

    from ebm_ppl import data
    from ebm_ppl.cli import main
    from ebm_ppl.logz import UnreliableLogZWarning

    x = data.load("digits", "test")[:16]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = bits_per_dim(EBMPrior("models/digits-t6", noise_level=1), x, jax.random.key(0))
    lines = [str(w.message) for w in caught if issubclass(w.category, UnreliableLogZWarning)]
    assert r.log_z_reliable is False and any(m.startswith("bits_per_dim: log Z of level 1") for m in lines)
    assert r.to_json()["log_z_reliable"] is False
    capsys.readouterr()
    assert main(["bpd", "models/digits-t6", "--level", "1", "--json"]) == 0
    out, err = capsys.readouterr()
    warned = [ln for ln in err.splitlines() if "warning:" in ln]
    assert len(warned) == 1 and "unreliable" in warned[0] and "ESS 1.1 of 1024" in warned[0]
    assert "UNRELIABLE" in out and "optimistic" in out and " ± " not in out.split("bits/dim")[0]
    assert main(["bpd", "models/digits-t6", "--level", "-1"]) == 2
