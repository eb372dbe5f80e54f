"""Plain analytic targets: unnormalised densities with no noise levels (Boltzmann targets).

Decision (how a plain energy fits the noise-conditional protocol)
-----------------------------------------------------------------
A plain energy is an :class:`~ebm_ppl.energy.base.Energy` with a trivial **one-level schedule**
(``PLAIN_SCHEDULE``, named ``"plain"``, sigmas ``[1, 1]``):

* level 0 is the target, ``log_density(y)`` = ``log_density(y, 0)`` = -E(y) (unnormalised);
* level 1 (= T) is N(0, I) exactly, as for every energy; the single diffusion step has sigma 1,
  i.e. it destroys all signal, which is the honest statement that no intermediate levels exist;
  the schedule says so (``top_level_marginal=True``), so ``schedule.model_scales`` is [1, 1] and
  code that maps level 0 to data space through it (``hmc.level_log_density_fn(space="data")``,
  AIS's log Z in data space) uses the identity, as it should (with the flag off c_0 would be
  sqrt(1 - 1) = 0);
* model space is data space: ``data_scale`` is 1, ``to_model`` and ``to_data`` are the identity;
* ``log_z(0)`` is exact (closed form or float64 quadrature of a 1-D factor) where stated below,
  ``sample(key, n)`` draws exact reference samples (for 1-D non-Gaussian factors by inverse-CDF
  interpolation on a 2^16-point float64 grid, exact to the grid's ~1e-9 CDF error).

Consequences: samplers that need a ladder of levels (the progressive sampler, per-level AIS)
do not apply to plain energies (its step scale c_0 = sqrt(1 - sigma_1^2) is 0); level-0 samplers
(HMC/NUTS, drifting, SMC from N(0, I)) do.

Targets defined here (named in :mod:`ebm_ppl.energy.targets`, built by ``ebm_ppl.energy.target(name)``):

* ``double-well`` / ``double-well:A``: E(x) = A (x1^2 - 1)^2 + x2^2 / 2, barrier A = 2 by default
  (the drifting paper does not print its double well; this is our choice, documented in
  docs/drifting.md). Modes: sign of x1.
* ``banana``: x1 ~ N(0, 1), x2 | x1 ~ N(x1^2 - 1, 0.5^2), i.e.
  E(x) = x1^2/2 + (x2 - x1^2 + 1)^2 / (2 * 0.25); log Z = log(2 pi * 0.5); mean 0, cov diag(1, 2.25).
* ``gmm40``: 40 equal-weight isotropic Gaussians in 2-D, means uniform in [-40, 40]^2, std
  softplus(1) = 1.3133 (the FAB / iDEM construction; our NumPy seed 0, so the means differ from
  theirs). A noise-conditional :class:`MixtureOracle` (exact at every level of any schedule), so
  the progressive sampler can be run on it with exact level scores.
* ``funnel10``: Neal's funnel, v ~ N(0, 3^2), x_i | v ~ N(0, e^v), i = 1..9; exact log Z and samples.
* ``manywell32``: 16 independent copies of the FAB many-well pair
  E(a, b) = a^4 - 6 a^2 - 0.5 a + b^2 / 2 (2^16 modes); log Z = 16 (log Z_a + log sqrt(2 pi)),
  Z_a by quadrature. Coordinates are ordered (a_1, b_1, a_2, b_2, ...). Modes: signs of the a_i.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.energy.base import Energy, register_pytree
from ebm_ppl.energy.oracles import MixtureOracle
from ebm_ppl.energy.protocol import mode_labels
from ebm_ppl.schedules import Schedule

__all__ = [
    "PLAIN_SCHEDULE",
    "PlainEnergy",
    "ExactPlainEnergy",
    "FunctionEnergy",
    "DoubleWell",
    "Banana",
    "Funnel",
    "ManyWell",
    "gmm40",
    "mode_labels",
]

#: The trivial one-level schedule of every plain energy (see the module docstring).
PLAIN_SCHEDULE = Schedule(
    "plain", sigmas=np.ones(2), langevin_step_sizes=np.ones(1), energy_scales=np.ones(1), top_level_marginal=True
)

_GRID_SIZE = 1 << 16


def _quadrature_table(log_f, lo: float, hi: float):
    """(log Z, grid, cdf) of the 1-D unnormalised density exp(log_f) on [lo, hi] (float64)."""
    grid = np.linspace(lo, hi, _GRID_SIZE)
    lf = log_f(grid)
    m = lf.max()
    f = np.exp(lf - m)
    h = grid[1] - grid[0]
    cdf = np.concatenate([[0.0], np.cumsum(0.5 * (f[1:] + f[:-1]) * h)])
    log_z = m + math.log(cdf[-1])
    return log_z, grid.astype(np.float32), (cdf / cdf[-1]).astype(np.float32)


def _inverse_cdf_sample(key, shape, grid, cdf):
    u = jax.random.uniform(key, shape, minval=1e-7, maxval=1.0 - 1e-7)
    return jnp.interp(u, jnp.asarray(cdf), jnp.asarray(grid))


def _check_plain_level(t) -> int:
    t = int(t)
    if not 0 <= t <= 1:
        raise ValueError(f"level t={t} out of range 0..1 (plain energies have one level)")
    return t


class PlainEnergy(Energy):
    """Base class of plain (level-free) energies; see the module docstring for the protocol.

    Subclasses implement ``_plain_log_density(y_flat)`` for ``y_flat`` of shape (*batch, D) and
    may implement ``_exact_log_z()``, ``modes(x)`` and ``num_modes``; those with an exact sampler
    derive from :class:`ExactPlainEnergy` and implement ``_sample(rng_key, n)``.
    """

    name: str = "plain"

    @property
    def data_scale(self) -> float:
        return 1.0

    def to_model(self, x):
        return x

    def to_data(self, y):
        return y

    def log_density(self, y, t=0) -> jax.Array:
        """-E(y) (unnormalised) at level 0 (the default); level 1 is N(0, I)."""
        return super().log_density(y, t)

    def score(self, y, t=0) -> jax.Array:
        return super().score(y, t)

    def value_and_score(self, y, t=0):
        return super().value_and_score(y, t)

    def energy(self, y) -> jax.Array:
        """E(y) = -log p(y) normalised when log Z is known, else -log_density(y)."""
        lz = self.log_z(0)
        return -self.log_density(y, 0) + (0.0 if lz is None else lz)

    def _learned_log_density(self, y, t):
        y_flat = y.reshape(y.shape[: y.ndim - self.event_ndim] + (self.dim,))
        return self._plain_log_density(y_flat)

    def log_z(self, t=0):
        """log Z of level t: exact where known at level 0 (else None); level 1 as N(0, I)."""
        t = _check_plain_level(t)
        return self._exact_log_z() if t == 0 else super().log_z(t)

    def _exact_log_z(self):
        return None

    def __repr__(self):
        return f"{type(self).__name__}(name={self.name!r}, dim={self.dim})"


class ExactPlainEnergy(PlainEnergy):
    """A plain energy with an exact sampler: subclasses implement ``_sample(rng_key, n)`` -> (n, D)."""

    def sample(self, rng_key, n: int, t: int = 0) -> jax.Array:
        """Exact samples of level t (0: the target; 1: N(0, I)), shape (n, *data_shape)."""
        if _check_plain_level(t) == 1:
            return jax.random.normal(rng_key, (n,) + self.data_shape)
        return self._sample(rng_key, int(n)).reshape((n,) + self.data_shape)

    def sample_data(self, rng_key, n: int) -> jax.Array:
        """Exact samples of the target (data space = model space)."""
        return self.sample(rng_key, n, 0)

    def _sample(self, rng_key, n):  # pragma: no cover - abstract
        raise NotImplementedError


@register_pytree(data_fields=(), static_fields=("fn", "schedule", "data_shape", "name"))
class FunctionEnergy(PlainEnergy):
    """A user's unnormalised log density ``fn(x) -> scalar`` (x of shape ``data_shape``) as a plain
    energy: level 0 is ``fn``, level 1 is N(0, I). No exact log Z, no sampler."""

    def __init__(self, fn, data_shape):
        if not callable(fn):
            raise TypeError(f"FunctionEnergy needs a callable log density, got {type(fn).__name__}")
        self.fn = fn
        self.schedule = PLAIN_SCHEDULE
        self.data_shape = tuple(int(s) for s in data_shape)
        self.name = getattr(fn, "__name__", "function")

    def _plain_log_density(self, y):
        batch = y.shape[:-1]
        flat = y.reshape((-1,) + self.data_shape)
        return jax.vmap(self.fn)(flat).reshape(batch)


@register_pytree(data_fields=(), static_fields=("barrier", "schedule", "data_shape", "name"))
class DoubleWell(ExactPlainEnergy):
    """E(x) = A (x1^2 - 1)^2 + x2^2 / 2 in 2-D (two wells at x1 = +-1, barrier height A)."""

    num_modes = 2

    def __init__(self, barrier: float = 2.0):
        if not barrier > 0:
            raise ValueError(f"barrier must be positive, got {barrier}")
        self.barrier = float(barrier)
        self.schedule = PLAIN_SCHEDULE
        self.data_shape = (2,)
        self.name = "double-well" if self.barrier == 2.0 else f"double-well:{self.barrier:g}"

    def _table(self):
        a = self.barrier
        return _quadrature_table(lambda x: -a * (x**2 - 1) ** 2, -4.0, 4.0)

    def _plain_log_density(self, y):
        x1, x2 = y[..., 0], y[..., 1]
        return -self.barrier * (x1**2 - 1) ** 2 - 0.5 * x2**2

    def _exact_log_z(self):
        return self._table()[0] + 0.5 * math.log(2 * math.pi)

    def _sample(self, key, n):
        _, grid, cdf = self._table()
        k1, k2 = jax.random.split(key)
        return jnp.stack([_inverse_cdf_sample(k1, (n,), grid, cdf), jax.random.normal(k2, (n,))], -1)

    def modes(self, x):
        """Mode label of each point: 0 for x1 < 0, 1 otherwise."""
        return (jnp.reshape(x, (-1, 2))[:, 0] >= 0).astype(jnp.int32)


@register_pytree(data_fields=(), static_fields=("curvature", "noise", "schedule", "data_shape", "name"))
class Banana(ExactPlainEnergy):
    """x1 ~ N(0, 1), x2 | x1 ~ N(b (x1^2 - 1), s^2) with b = 1, s = 0.5 (a curved ridge)."""

    def __init__(self, curvature: float = 1.0, noise: float = 0.5):
        self.curvature, self.noise = float(curvature), float(noise)
        self.schedule = PLAIN_SCHEDULE
        self.data_shape = (2,)
        self.name = "banana"

    def _plain_log_density(self, y):
        x1, x2 = y[..., 0], y[..., 1]
        r = x2 - self.curvature * (x1**2 - 1)
        return -0.5 * x1**2 - 0.5 * r**2 / self.noise**2

    def _exact_log_z(self):
        return math.log(2 * math.pi * self.noise)

    def _sample(self, key, n):
        k1, k2 = jax.random.split(key)
        x1 = jax.random.normal(k1, (n,))
        x2 = self.curvature * (x1**2 - 1) + self.noise * jax.random.normal(k2, (n,))
        return jnp.stack([x1, x2], -1)

    def mean(self, t: int = 0):
        """Mean of level t (0: the banana, 1: N(0, I)): zero at both."""
        _check_plain_level(t)
        return jnp.zeros(2)

    def covariance(self, t: int = 0):
        """Covariance of level t: diag(1, 2 b^2 + s^2) for the banana, I at level 1."""
        if _check_plain_level(t) == 1:
            return jnp.eye(2)
        return jnp.diag(jnp.array([1.0, 2 * self.curvature**2 + self.noise**2]))


@register_pytree(data_fields=(), static_fields=("scale", "schedule", "data_shape", "name"))
class Funnel(ExactPlainEnergy):
    """Neal's funnel in D dimensions: v ~ N(0, scale^2), x_i | v ~ N(0, e^v), i = 1..D-1."""

    def __init__(self, dim: int = 10, scale: float = 3.0):
        if dim < 2:
            raise ValueError("the funnel needs dim >= 2")
        self.scale = float(scale)
        self.schedule = PLAIN_SCHEDULE
        self.data_shape = (int(dim),)
        self.name = f"funnel{dim}"

    def _plain_log_density(self, y):
        v, rest = y[..., 0], y[..., 1:]
        d1 = rest.shape[-1]
        return -0.5 * v**2 / self.scale**2 - 0.5 * jnp.sum(rest**2, -1) * jnp.exp(-v) - 0.5 * d1 * v

    def _exact_log_z(self):
        return 0.5 * self.dim * math.log(2 * math.pi) + math.log(self.scale)

    def _sample(self, key, n):
        k1, k2 = jax.random.split(key)
        v = self.scale * jax.random.normal(k1, (n, 1))
        rest = jnp.exp(0.5 * v) * jax.random.normal(k2, (n, self.dim - 1))
        return jnp.concatenate([v, rest], -1)


def _many_well_log_f(a):
    return -(a**4) + 6 * a**2 + 0.5 * a


@register_pytree(data_fields=(), static_fields=("schedule", "data_shape", "name"))
class ManyWell(ExactPlainEnergy):
    """FAB's many-well: D/2 independent pairs E(a, b) = a^4 - 6 a^2 - 0.5 a + b^2/2 (2^(D/2) modes)."""

    def __init__(self, dim: int = 32):
        if dim < 2 or dim % 2:
            raise ValueError("many-well needs an even dim >= 2")
        self.schedule = PLAIN_SCHEDULE
        self.data_shape = (int(dim),)
        self.name = f"manywell{dim}"

    @property
    def num_pairs(self) -> int:
        return self.dim // 2

    @property
    def num_modes(self) -> int:
        return 2**self.num_pairs

    def _table(self):
        return _quadrature_table(_many_well_log_f, -4.0, 4.0)

    def _plain_log_density(self, y):
        pairs = y.reshape(y.shape[:-1] + (self.num_pairs, 2))
        a, b = pairs[..., 0], pairs[..., 1]
        return jnp.sum(-(a**4) + 6 * a**2 + 0.5 * a - 0.5 * b**2, -1)

    def _exact_log_z(self):
        return self.num_pairs * (self._table()[0] + 0.5 * math.log(2 * math.pi))

    def _sample(self, key, n):
        _, grid, cdf = self._table()
        k1, k2 = jax.random.split(key)
        a = _inverse_cdf_sample(k1, (n, self.num_pairs), grid, cdf)
        b = jax.random.normal(k2, (n, self.num_pairs))
        return jnp.stack([a, b], -1).reshape(n, self.dim)

    def well_signs(self, x):
        """(n, D/2) booleans: a_i > 0 (the heavier right well)."""
        return jnp.reshape(x, (-1, self.num_pairs, 2))[..., 0] > 0

    def modes(self, x):
        """Mode label of each point: the sign pattern of the a_i as an integer in [0, 2^(D/2))."""
        bits = self.well_signs(x).astype(jnp.int64 if jax.config.jax_enable_x64 else jnp.int32)
        return jnp.sum(bits * (2 ** jnp.arange(self.num_pairs, dtype=bits.dtype)), -1)


def gmm40(schedule) -> MixtureOracle:
    """The 40-mode 2-D mixture (FAB's construction with our seed), as an exact oracle."""
    rng = np.random.default_rng(0)
    means = rng.uniform(-40.0, 40.0, (40, 2))
    std = math.log1p(math.e)  # softplus(1)
    return MixtureOracle(np.full(40, 1 / 40), means, std**2, schedule)
