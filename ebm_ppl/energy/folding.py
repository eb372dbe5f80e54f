"""Spectral norm folded once into the kernels (:func:`fold_spectral_norm`) and convolutions whose
input gradient uses precomputed transposed kernels: what makes the K Langevin steps of a training
step and a sampler's calls cheap (docs/performance.md). Works on any Flax module with a
``spectral_norm`` attribute; :mod:`ebm_ppl.energy.networks` builds its layers on it."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["fold_spectral_norm", "TRANSPOSED"]


#: collection of the precomputed transposed kernels (see :func:`fold_spectral_norm`)
TRANSPOSED = "transposed_kernels"


def _conv_same(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))


@jax.custom_vjp
def _conv_given_transpose(x, kernel, kernel_t):
    """A stride-1 SAME conv whose input gradient uses the precomputed ``kernel_t`` (the kernel
    flipped in space with in/out channels swapped) instead of transforming ``kernel`` at every
    call; no gradient flows to the kernels (for samplers, whose parameters are constants)."""
    return _conv_same(x, kernel)


def _conv_given_transpose_fwd(x, kernel, kernel_t):
    return _conv_same(x, kernel), (kernel, kernel_t)


def _conv_given_transpose_bwd(res, g):
    kernel, kernel_t = res
    return _conv_same(g, kernel_t), jnp.zeros_like(kernel), jnp.zeros_like(kernel_t)


_conv_given_transpose.defvjp(_conv_given_transpose_fwd, _conv_given_transpose_bwd)


def _l2_normalize(x, eps):
    return x * jax.lax.rsqrt(jnp.sum(x * x, keepdims=True) + eps)


def fold_spectral_norm(
    module: nn.Module, variables: dict, *, transposed_kernels: bool = False
) -> tuple[nn.Module, dict]:
    """``(plain_module, plain_variables)`` computing what ``module.apply(variables, y, t)``
    computes (``update_stats=False``), with every spectrally normalised kernel divided by its
    singular-value estimate once, here, instead of at every call.

    The estimate is flax's ``SpectralNorm`` with ``update_stats=False``: one power-iteration step
    from the stored vector u, v = u W^T / |.|, u' = v W / |.|, sigma = v W u'^T (W the kernel as
    (-1, out)). Use it where the parameters are fixed over many calls (the K Langevin steps of a
    training step, a sampler): the folded network skips K - 1 power iterations and the division
    of every kernel. Modules without spectral norm are returned unchanged.

    ``transposed_kernels=True`` also stores every 3x3/1x1 conv kernel flipped and transposed (the
    kernel of its input gradient) in the ``"transposed_kernels"`` collection; the folded module then
    takes input gradients with it (no per-call kernel transform) and passes no gradient to its
    parameters: for samplers only."""
    if not getattr(module, "spectral_norm", False) or not variables.get("batch_stats"):
        if transposed_kernels and getattr(module, "spectral_norm", None) is not None:
            return module.clone(spectral_norm=False), {
                "params": variables["params"],
                TRANSPOSED: _transposed(variables["params"]),
            }
        return module, variables
    eps = 1e-12  # flax SpectralNorm's default epsilon (the one _Layer uses)

    def fold(params, stats):
        out = dict(params)
        for key, sub in stats.items():
            if key == "sn":
                for name, u in sub.items():
                    if not name.endswith("/u"):
                        continue
                    layer, leaf = name[: -len("/u")].split("/")
                    w = out[layer][leaf]
                    mat = w.reshape((-1, w.shape[-1]))
                    v0 = _l2_normalize(u @ mat.T, eps)
                    u1 = _l2_normalize(v0 @ mat, eps)
                    sigma = (v0 @ mat @ u1.T)[0, 0]
                    out[layer] = {**out[layer], leaf: (mat / jnp.where(sigma != 0, sigma, 1)).reshape(w.shape)}
            else:
                out[key] = fold(out[key], sub)
        return out

    plain = {"params": fold(variables["params"], variables["batch_stats"])}
    if transposed_kernels:
        plain[TRANSPOSED] = _transposed(plain["params"])
    return module.clone(spectral_norm=False), plain


def _transposed(params):
    """{path: {"conv": {"kernel_t": flip(kernel) with in/out swapped}}} for every conv layer."""
    out = {}
    for key, sub in params.items():
        if not isinstance(sub, dict):
            continue
        if key == "conv" and "kernel" in sub and sub["kernel"].ndim == 4:
            out[key] = {"kernel_t": jnp.flip(sub["kernel"], (0, 1)).transpose(0, 1, 3, 2)}
        else:
            inner = _transposed(sub)
            if inner:
                out[key] = inner
    return out
