"""Per-level annealing frames (ebm_ppl.annealing_frames) and AIS run in them.

A Gaussian oracle (variance 0.1 plus two directions of variance 4.1 and 2.1) has exact level
moments, so a frame fitted to its samples (of level 0, or of the noisy level 2) must whiten every
level: sample means within 5 standard errors of 0, covariance eigenvalues inside the
Marchenko-Pastur range of 4000 draws (1 +- sqrt(16/4000))^2 = [0.88, 1.13], widened to [0.75, 1.3]
for the frame's own estimation error (variances from 2000 draws: 3% relative sd). The identity
frame leaves eigenvalues 0.1 .. 4 at level 0, far outside."""

import math

import jax
import numpy as np
import pytest

from ebm_ppl import logz, schedules
from ebm_ppl.annealing_frames import (
    LevelFrame,
    check_frame,
    fit_frame,
    from_model_batch,
    identity_frame,
    to_model_batch,
)
from ebm_ppl.energy import GaussianOracle, target

D = 16
N_FIT = 4000


def _two_direction_oracle():
    rng = np.random.default_rng(3)
    basis, _ = np.linalg.qr(rng.normal(size=(D, 2)))
    cov = 0.1 * np.eye(D) + basis @ np.diag([4.0, 2.0]) @ basis.T
    mean = rng.uniform(-1, 1, D)
    return GaussianOracle(mean, cov, schedules.drl(6))


@pytest.mark.parametrize("fit_level", [0, 2])
def test_fitted_frame_whitens_every_level(fit_level):
    e = _two_direction_oracle()
    frame = fit_frame(e, e.sample(jax.random.key(0), N_FIT, fit_level), fit_level)
    assert frame.num_directions == D - 1  # N/2 - 1 >= D - 1: every direction but one has its own variance
    for t in range(e.num_levels):
        x = np.asarray(from_model_batch(frame, e.sample(jax.random.key(10 + t), N_FIT, t), t), np.float64)
        # the fitted mean is uncertain too: 1/sqrt(N) whitened units from level 0; from level 2 the noise
        # (std 0.45 against signal 0.63 x 0.3) makes it ~0.045 at level 0
        mean_sd = math.sqrt(1 / N_FIT + (1 / N_FIT if fit_level == 0 else 0.045**2))
        assert np.all(np.abs(x.mean(axis=0)) < 5 * mean_sd), (t, x.mean(axis=0))
        eig = np.linalg.eigvalsh(np.cov(x.T))
        # below a noisy fit level the data variance is level 2's 0.245 minus the noise's 0.206: its 3% error
        # becomes ~20% there, so levels 0 and 1 of the level-2 fit get a wider range
        low, high = (0.5, 1.6) if t < fit_level else (0.75, 1.3)
        assert low < eig.min() and eig.max() < high, (t, eig)
    # the identity frame (y_t = c_t x) does not whiten level 0
    x = np.asarray(from_model_batch(identity_frame(e), e.sample(jax.random.key(9), N_FIT, 0), 0))
    assert np.linalg.eigvalsh(np.cov(x.T)).min() < 0.2


def test_frame_maps_are_inverse_and_log_det_is_exact():
    e = _two_direction_oracle()
    frame = fit_frame(e, e.sample(jax.random.key(0), 500, 0), 0)
    y = np.asarray(e.sample(jax.random.key(1), 8, 2))
    back = to_model_batch(frame, from_model_batch(frame, y, 2), 2)
    np.testing.assert_allclose(np.asarray(back), y, atol=1e-5)
    for t in range(e.num_levels + 1):  # the dense Jacobian's log |det| against the stored one
        cols = np.asarray(to_model_batch(frame, np.eye(D), t)) - np.asarray(to_model_batch(frame, np.zeros((1, D)), t))
        assert abs(np.linalg.slogdet(cols.astype(np.float64))[1] - frame.log_det[t]) < 1e-4
    assert np.allclose(frame.offset[-1], 0) and frame.bulk[-1] == 1 and np.allclose(frame.leading[-1], 1)


def test_fit_with_fewer_samples_than_dimensions():
    # N = 64 < D = 200: k = 31 leading directions, the rest pooled; the pooled variance (from held-out
    # draws) stays near the true 0.1 a^2 instead of collapsing as a residual-trace estimate does
    rng = np.random.default_rng(4)
    basis, _ = np.linalg.qr(rng.normal(size=(200, 2)))
    e = GaussianOracle(np.zeros(200), 0.1 * np.eye(200) + basis @ np.diag([4.0, 2.0]) @ basis.T, schedules.drl(6))
    frame = fit_frame(e, e.sample(jax.random.key(0), 64, 0), 0)
    a = e.schedule.marginal(0)[0]
    assert frame.num_directions == 31
    # 32 held-out draws x ~169 directions: ~2% relative sd
    assert abs(frame.bulk[0] ** 2 / (a**2 * 0.1) - 1) < 0.1, frame.bulk[0] ** 2 / (a**2 * 0.1)
    assert frame.leading[0].max() ** 2 > 3.0 * a**2  # the variance-4.1 direction is found


def test_fitted_frame_cuts_the_ais_variance_at_equal_cost():
    e = target("gmm:16:4")
    fit = logz.ais(jax.random.key(0), e, num_particles=256, num_bridges=150)  # frame="fit" is the default
    extra = logz.pilot_grad_count(e, frame="fit") - logz.pilot_grad_count(e, frame="identity")
    bridges = 150 + extra // (4 * 256)  # the identity frame gets the frame pilot's gradients as bridges
    ident = logz.ais(jax.random.key(0), e, num_particles=256, num_bridges=bridges, frame="identity")
    assert abs(ident.num_grad_evals - fit.num_grad_evals) < 0.03 * fit.num_grad_evals
    assert fit.meta["frame"]["num_directions"] == 15
    for est in (fit, ident):
        assert abs(est.log_z - e.log_z(0)) <= 3 * est.stderr + 0.01, (est.log_z, e.log_z(0), est.stderr)
    # measured: stderr 0.018-0.021 (fit) against 0.05-0.065 (identity, 150 bridges) over seeds 0-2
    assert fit.stderr < 0.6 * ident.stderr, (fit.stderr, ident.stderr)


def test_reverse_ais_and_bdmc_use_the_same_frame():
    e = target("gmm:16:4")
    est = logz.bdmc(jax.random.key(1), e, num_particles=128, num_bridges=150)
    assert est.lower <= e.log_z(0) + 3 * est.stderr + 0.01
    assert est.upper >= e.log_z(0) - 3 * est.meta["reverse_stderr"] - 0.01
    assert est.meta["gap"] < 0.5 and "frame" in est.meta


def test_bad_frames_are_named():
    e = _two_direction_oracle()
    good = e.sample(jax.random.key(0), 64, 0)
    bad = np.array(good)
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        fit_frame(e, bad)
    with pytest.raises(ValueError, match="shape"):
        fit_frame(e, np.zeros((64, D + 1)))
    with pytest.raises(ValueError, match="level"):
        fit_frame(e, good, level=6)
    with pytest.raises(ValueError, match="frame must be"):
        logz.ais(jax.random.key(0), e, num_particles=8, num_bridges=24, frame="whitened")
    frame = fit_frame(e, good)
    shifted = frame._replace(offset=frame.offset + 1.0)
    with pytest.raises(ValueError, match="level T must be the identity"):
        logz.ais(jax.random.key(0), e, num_particles=8, num_bridges=24, frame=shifted)
    with pytest.raises(ValueError, match="shape"):
        check_frame(target("gauss:2"), frame)
    assert isinstance(frame, LevelFrame)
