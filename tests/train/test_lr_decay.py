"""The optimizer's learning rate: linear warm-up and the optional cosine decay."""

import math

import numpy as np
import optax

from ebm_ppl.train.loop import learning_rate, make_optimizer


def test_cosine_decay_values():
    lr = learning_rate({"lr": 1e-3, "warmup": 10, "decay_steps": 100, "final_lr_fraction": 0.1})
    got = [float(lr(c)) for c in (0, 9, 50, 100, 500)]
    cos = lambda f: 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * f))  # noqa: E731
    expect = [1e-4 * cos(0.0), 1e-3 * cos(0.09), 1e-3 * cos(0.5), 1e-4, 1e-4]
    np.testing.assert_allclose(got, expect, rtol=1e-5)
    # without decay_steps: the plain warm-up (and a constant without warm-up), as before
    plain = learning_rate({"lr": 1e-3, "warmup": 10})
    np.testing.assert_allclose([float(plain(0)), float(plain(50))], [1e-4, 1e-3], rtol=1e-6)
    assert learning_rate({"lr": 1e-3}) == 1e-3
    assert isinstance(make_optimizer({"lr": 1e-3, "decay_steps": 10}), optax.GradientTransformation)
