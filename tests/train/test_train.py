"""Training objectives and loop: finite gradients, the recovery-likelihood gradient vanishes at
the true energy (Gaussian oracle), resume is bit-identical, the NaN guard, the train CLI."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.energy import GaussianOracle
from ebm_ppl.energy.networks import build, init_variables
from ebm_ppl.schedules import drl
from ebm_ppl.train import get_preset, train
from ebm_ppl.train.loop import TrainingDiverged, state_leaves
from ebm_ppl.train.objectives import (
    dsm_loss,
    get_objective,
    network_log_density,
    normal_approx_loss,
    recovery_likelihood_loss,
    resolve_step_scale,
    short_run_loss,
)

TINY_NET = {"name": "mlp", "width": 8, "depth": 1, "temb_dim": 8, "activation": "leaky_relu", "spectral_norm": True}


def _tiny_config(**over):
    cfg = get_preset("t6-2d")
    cfg.update(network=dict(TINY_NET), batch_size=16, steps=20, log_every=5, ckpt_every=10, sample_every=0)
    cfg["objective"]["num_steps"] = 3
    cfg.update(over)
    return cfg


@pytest.mark.parametrize(
    "fn, sched, kw",
    [
        (recovery_likelihood_loss, drl(6), {"num_steps": 3, "output_reg": 0.5}),
        (normal_approx_loss, drl(1000), {}),
        (dsm_loss, drl(6), {}),
        (short_run_loss, drl(1), {"num_steps": 4}),
    ],
)
def test_objective_gradients_finite(fn, sched, kw):
    module = build(TINY_NET)
    variables = init_variables(jax.random.PRNGKey(0), module, (2,))
    ld = network_log_density(module, sched, 4.0)
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (8, 2), minval=-1, maxval=1)

    def loss(params):
        return fn(ld, {**variables, "params": params}, x0, jax.random.PRNGKey(2), schedule=sched, **kw)[0]

    val, grads = jax.value_and_grad(loss)(variables["params"])
    assert np.isfinite(float(val))
    leaves = jax.tree_util.tree_leaves(grads)
    assert all(np.all(np.isfinite(g)) for g in leaves)
    assert any(float(jnp.abs(g).max()) > 0 for g in leaves)


def _oracle_gradient(theta, level, n=4000, steps=300, seed=0):
    """d loss / d theta of the recovery likelihood with energy theta * f_true at one level, with a
    converged Langevin inner sampler (step^2 = 0.05 x the conditional variance)."""
    sched = drl(6)
    oracle = GaussianOracle(jnp.array([0.5]), jnp.array([[0.3]]), sched)
    scale, std = sched.marginal(level)
    var_t = scale**2 * 0.3 + std**2
    cond_var = 1.0 / (1.0 / var_t + 1.0 / sched.conditional_sigmas[level] ** 2)
    step_scale = np.ones(sched.num_levels)
    step_scale[level] = 0.05 * cond_var / sched.langevin_step_sizes[level]
    ld = lambda th, y, t: th * oracle.log_density(y, t)  # noqa: E731
    x0 = oracle.sample(jax.random.PRNGKey(seed), n, 0)
    t = jnp.full((n,), level, jnp.int32)

    def loss(th):
        return recovery_likelihood_loss(
            ld, th, x0, jax.random.PRNGKey(seed + 1), t, schedule=sched, num_steps=steps, step_scale=step_scale
        )

    (val, aux), g = jax.value_and_grad(loss, has_aux=True)(jnp.asarray(theta, jnp.float32))
    w = sched.sigmas[1] / sched.sigmas[level + 1] * sched.energy_scales[level]
    per_example = np.asarray(w * (aux["f_neg"] - aux["f_pos"])) / theta
    return float(g), float(per_example.std() / np.sqrt(n))


@pytest.mark.parametrize("level", [1, 3])
def test_recovery_likelihood_gradient_vanishes_at_true_energy(level):
    # At theta = 1 the energy is the oracle's exact level-t density: E[f(y_pos) - f(y_neg)] = 0.
    g, se = _oracle_gradient(1.0, level)
    assert abs(g) < 4 * se, (g, se)
    # The check can fail: a wrong energy (theta = 2) gives a gradient many standard errors away.
    g_bad, se_bad = _oracle_gradient(2.0, level)
    assert abs(g_bad) > 8 * se_bad, (g_bad, se_bad)


def test_resolve_step_scale():
    s = drl(6)
    np.testing.assert_allclose(resolve_step_scale(s, np.arange(6.0)), np.arange(6.0))
    assert resolve_step_scale(s, 2.0).tolist() == [2.0] * 6
    with pytest.raises(ValueError):
        resolve_step_scale(s, [1.0, 2.0])
    with pytest.raises(ValueError, match="unknown objective"):
        get_objective("nope", s)


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(200, 2)).astype(np.float32) * 0.3


def test_resume_is_bit_identical(tmp_path):
    import ebm_ppl.checkpoint as ck

    x, cfg = _data(), _tiny_config()
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    train(x, cfg, a, seed=3, steps=20, progress=False, write_samples=False)
    train(x, cfg, b, seed=3, steps=10, progress=False, write_samples=False)
    assert ck.read_config(b)["step"] == 10
    train(x, cfg, b, seed=3, steps=20, resume=True, progress=False, write_samples=False)
    with (
        open(os.path.join(a, "train_state.msgpack"), "rb") as fa,
        open(os.path.join(b, "train_state.msgpack"), "rb") as fb,
    ):
        assert fa.read() == fb.read()
    with open(os.path.join(a, "params.msgpack"), "rb") as fa, open(os.path.join(b, "params.msgpack"), "rb") as fb:
        assert fa.read() == fb.read()
    # a different seed gives different parameters (the comparison can fail)
    c = str(tmp_path / "c")
    train(x, cfg, c, seed=4, steps=20, progress=False, write_samples=False)
    with open(os.path.join(a, "params.msgpack"), "rb") as fa, open(os.path.join(c, "params.msgpack"), "rb") as fc:
        assert fa.read() != fc.read()
    lines = [json.loads(line) for line in open(os.path.join(b, "train_log.jsonl"))]
    assert [e["step"] for e in lines] == [5, 10, 15, 20]


def test_nan_guard_stops_and_keeps_last_good_checkpoint(tmp_path):
    import ebm_ppl.checkpoint as ck

    x, cfg = _data(), _tiny_config()
    out = str(tmp_path / "run")
    train(x, cfg, out, seed=0, steps=10, progress=False, write_samples=False)
    before = open(os.path.join(out, "params.msgpack"), "rb").read()
    bad = x.copy()
    bad[:] = np.nan  # injected NaN: every batch is NaN
    with pytest.raises(TrainingDiverged, match=r"diverged at step 10.*step 10\) is kept"):
        train(bad, cfg, out, seed=0, steps=20, resume=True, progress=False, write_samples=False)
    assert ck.read_config(out)["step"] == 10
    assert open(os.path.join(out, "params.msgpack"), "rb").read() == before
    energy = ck.load(out)
    assert np.all(np.isfinite(np.asarray(energy.log_density(jnp.zeros((3, 2)), 0))))


def test_train_cli_unknown_data_exits_2(tmp_path, capsys):
    from ebm_ppl.cli import main

    rc = main(["train", "--data", "nosuchset", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 2
    assert len(err.splitlines()) == 1
    assert "nosuchset" in err and "8gaussians" in err and "digits" in err


def test_train_cli_runs_and_reports_json(tmp_path, capsys):
    from ebm_ppl.cli import main

    out = str(tmp_path / "cli")
    rc = main(
        [
            "train",
            "--data",
            "8gaussians",
            "--preset",
            "t6-2d",
            "--steps",
            "4",
            "--out",
            out,
            "--batch-size",
            "8",
            "--json",
            "--quiet",
            "--eval-samples",
            "300",
        ]
    )
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["steps"] == 4 and np.isfinite(result["final_loss"]) and result["steps_per_s"] > 0
    assert os.path.exists(os.path.join(out, "samples", "latest.png"))
    # the closing 2-D sample-quality check (docs/training.md): figures at both bandwidths and a scatter
    assert result["mmd_bandwidth_h0.1"] == 0.1 and result["mmd_bandwidth_median"] > 0
    assert result["mmd_ratio"] == max(result["mmd_ratio_median"], result["mmd_ratio_h0.1"]) > 0
    assert result["mmd2_null_h0.1"] > 0 and result["n_samples"] == 300
    assert os.path.exists(os.path.join(out, "samples", "quality.png"))
    assert main(["train", "--data", "8gaussians", "--out", out]) == 2  # refuses to overwrite without --resume


def test_split_step_equals_fused_step_and_compiles_once(tmp_path):
    # The split step (begin, K Langevin calls, finish) computes the fused one-jit step: same keys,
    # same arithmetic up to float reassociation. A second train() with the same settings and
    # shapes (new seed, new folder) traces and compiles nothing new.
    from ebm_ppl.train.loop import init_state, make_optimizer
    from ebm_ppl.train.step import compiled_counts, make_train_step

    x, cfg = _data(), _tiny_config()
    module = build(cfg["network"])
    data = jnp.asarray(x)
    finals = {}
    for chunk in (None, 1, 2):
        state = init_state(jax.random.PRNGKey(0), module, make_optimizer(cfg["optimizer"]), (2,))
        step = make_train_step(module, cfg, None, 5, langevin_chunk=chunk)
        for _ in range(3):
            state, m = step(state, data)
        finals[chunk] = (float(m["loss"]), state_leaves(state))
    for chunk in (1, 2):
        assert finals[chunk][0] == pytest.approx(finals[None][0], rel=1e-5, abs=1e-6)
        for a, b in zip(finals[chunk][1], finals[None][1]):
            np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    train(x, cfg, str(tmp_path / "a"), seed=1, steps=2, progress=False, write_samples=False)
    before = compiled_counts()
    train(x, cfg, str(tmp_path / "b"), seed=2, steps=2, progress=False, write_samples=False)
    assert compiled_counts() == before
    assert before["langevin"] >= 1 and before["finish"] >= 1


def test_callbacks_see_every_step_the_logs_and_the_final_model(tmp_path):
    """The loop reports each step once; log entries match train_log.jsonl; the final event's energy
    is the EMA model that was saved; the default sample grid is a callback (off here, on below)."""
    import ebm_ppl.checkpoint as ck

    x, cfg = _data(), _tiny_config()
    out = str(tmp_path / "run")
    events = []
    train(x, cfg, out, seed=3, steps=10, progress=False, write_samples=False, callbacks=[events.append])
    assert [e.step for e in events] == list(range(1, 11))
    assert [e.final for e in events] == [False] * 9 + [True]
    logged = [e.log for e in events if e.log is not None]
    lines = [json.loads(line) for line in open(os.path.join(out, "train_log.jsonl"))]
    assert [e["step"] for e in logged] == [5, 10] and [e["loss"] for e in logged] == [e["loss"] for e in lines]
    assert events[-1].checkpointed and events[-1].total == 10
    final = events[-1].energy()
    saved = ck.load(out)
    y = jnp.asarray(x[:4]) * saved.data_scale
    np.testing.assert_array_equal(np.asarray(final.log_density(y, 0)), np.asarray(saved.log_density(y, 0)))
    assert not os.path.exists(os.path.join(out, "samples"))
    # resumed at its end: nothing runs, the callbacks still get the final state (and the grid is drawn)
    again = []
    train(x, cfg, out, seed=3, steps=10, resume=True, progress=False, callbacks=[again.append])
    assert [(e.step, e.final, e.log) for e in again] == [(10, True, None)]
    assert os.path.isfile(os.path.join(out, "samples", "step_0000010.png"))
    assert os.path.isfile(os.path.join(out, "samples", "latest.png"))
