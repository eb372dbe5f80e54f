"""Pictures people look at: sample grids for images, scatter plots for 2-D data."""

from __future__ import annotations

import math
import os
import tempfile

import jax.numpy as jnp
import numpy as np

from ebm_ppl.sampling.drifting.scores import energy_function

__all__ = [
    "save_samples",
    "save_image_grid",
    "save_scatter",
    "plot_step_sizes",
    "plot_samples_over_energy",
    "atomic_savefig",
    "new_figure",
]


def new_figure(figsize=(6.0, 4.0), **kwargs):
    """A matplotlib ``Figure`` outside pyplot's global state: it never switches the user's backend, never
    opens a window and is freed with its last reference (save it with :func:`atomic_savefig`)."""
    from matplotlib.figure import Figure

    return Figure(figsize=figsize, **kwargs)


def atomic_savefig(fig, path: str, **kwargs) -> str:
    """Save a matplotlib figure to ``path`` through a temp file and a rename (then close it if pyplot
    tracks it: figures made by :func:`new_figure` are not tracked)."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, suffix=os.path.splitext(path)[1] or ".png")
    os.close(fd)
    try:
        fig.savefig(tmp, **kwargs)
        os.replace(tmp, path)
    finally:
        _close_if_pyplot(fig)
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _close_if_pyplot(fig) -> None:
    """Release ``fig`` from pyplot's registry when a library (e.g. arviz-plots) made it through pyplot."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")  # never imported here: only looked up if someone else did
    number = getattr(fig, "number", None)
    if plt is not None and number is not None and number in plt.get_fignums():
        plt.close(fig)


def image_grid(images, ncols: int | None = None, pad: int = 1) -> np.ndarray:
    """Tile images (n, H, W, C) in [-1, 1] into one (rows*(H+pad), cols*(W+pad), C) array in [0, 1]."""
    images = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    if images.ndim == 3:
        images = images[..., None]
    n, h, w, c = images.shape
    ncols = ncols or int(math.ceil(math.sqrt(n)))
    nrows = int(math.ceil(n / ncols))
    grid = np.ones((nrows * (h + pad) + pad, ncols * (w + pad) + pad, c), np.float32)
    for i, img in enumerate(images):
        r, col = divmod(i, ncols)
        grid[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + col * (w + pad) : pad + col * (w + pad) + w] = img
    return grid


def save_image_grid(images, path: str, title: str | None = None, ncols: int | None = None) -> str:
    """A PNG grid of images (n, H, W[, C]) given in [-1, 1] (data space)."""
    grid = image_grid(images, ncols)
    fig = new_figure(figsize=(6, 6 * grid.shape[0] / grid.shape[1] + (0.4 if title else 0)))
    ax = fig.subplots()
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return atomic_savefig(fig, path, dpi=120, bbox_inches="tight")


def save_scatter(points, path: str, title: str | None = None, reference=None, lim: float | None = None) -> str:
    """A PNG scatter plot of 2-D points (n, 2), optionally over reference points."""
    points = np.asarray(points)
    fig = new_figure(figsize=(5, 5))
    ax = fig.subplots()
    if reference is not None:
        reference = np.asarray(reference)
        ax.scatter(reference[:, 0], reference[:, 1], s=2, alpha=0.3, c="tab:gray", label="data")
    ax.scatter(points[:, 0], points[:, 1], s=2, alpha=0.5, c="tab:blue", label="samples")
    if lim is not None:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
    ax.set_aspect("equal")
    if reference is not None:
        ax.legend(loc="upper right", markerscale=4)
    if title:
        ax.set_title(title)
    return atomic_savefig(fig, path, dpi=120, bbox_inches="tight")


def save_samples(samples, path: str, title: str | None = None, reference=None) -> str:
    """Images -> grid, 2-D vectors -> scatter."""
    samples = np.asarray(samples)
    if samples.ndim >= 3:
        return save_image_grid(samples, path, title)
    if samples.ndim == 2 and samples.shape[1] == 2:
        return save_scatter(samples, path, title, reference)
    raise ValueError(
        f"cannot picture samples of shape {samples.shape}: expected images (n, H, W[, C]) or 2-D points (n, 2)"
    )


def plot_step_sizes(result, path: str, energy=None, acceptance_band: tuple[float, float] = (0.6, 0.9)) -> str:
    """The paper's Fig. 7 left and centre: the HMC step size and acceptance rate per level of a
    :class:`ebm_ppl.sampling.long_run.LongRunResult`, as a PNG at ``path`` (returned).
    ``acceptance_band``: shaded on the acceptance panel (the range the long-run tuner aims at,
    ``long_run.ACCEPTANCE_RANGE``)."""

    levels = np.arange(len(result.step_sizes))
    fig = new_figure(figsize=(9, 3.2))
    a, b = fig.subplots(1, 2)
    a.plot(levels, np.asarray(result.step_sizes))
    a.set_xlabel("level t")
    a.set_ylabel("HMC step size")
    a.set_yscale("log")
    b.plot(levels, np.asarray(result.acceptance_rate))
    b.axhspan(
        *acceptance_band, color="tab:green", alpha=0.15, label=f"[{acceptance_band[0]:g}, {acceptance_band[1]:g}]"
    )
    b.set_ylim(0, 1.02)
    b.set_xlabel("level t")
    b.set_ylabel("acceptance rate")
    b.legend(loc="lower right")
    title = f"long run: {result.steps_per_level} steps/level"
    if energy is not None:
        title += f", schedule {energy.schedule.name}"
    fig.suptitle(title)
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=110)


def plot_samples_over_energy(
    energy,
    samples,
    reference,
    path: str,
    *,
    level: int = 0,
    space: str = "data",
    title: str = "",
    sample_label: str = "samples",
) -> None:
    """PNG of generated and reference samples over contours of E (first two coordinates; for
    D > 2 the contours are of E with the other coordinates at the reference mean)."""
    E_fn = energy_function(energy, level, space)
    xs = np.asarray(samples, np.float64).reshape(samples.shape[0], -1)
    pool = xs if reference is None else np.concatenate([xs, np.asarray(reference).reshape(len(reference), -1)])
    pool = pool[np.all(np.isfinite(pool), -1)]
    lo, hi = np.percentile(pool[:, :2], 0.5, 0), np.percentile(pool[:, :2], 99.5, 0)
    pad = 0.15 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    g0, g1 = np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200)
    G0, G1 = np.meshgrid(g0, g1)
    base = pool.mean(0) if reference is None else np.asarray(reference).reshape(len(reference), -1).mean(0)
    grid = np.tile(base, (G0.size, 1))
    grid[:, 0], grid[:, 1] = G0.ravel(), G1.ravel()
    Z = np.asarray(E_fn(energy, jnp.asarray(grid, jnp.float32))).reshape(G0.shape)
    panels = [(sample_label, xs)] + (
        [] if reference is None else [("reference", np.asarray(reference).reshape(len(reference), -1))]
    )
    fig = new_figure(figsize=(5 * len(panels), 4.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    levels = np.percentile(Z[np.isfinite(Z)], np.linspace(1, 60, 12))
    for ax, (name, pts) in zip(axes[0], panels):
        ax.contour(G0, G1, Z, levels=np.unique(levels), cmap="viridis", linewidths=0.8)
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.35, color="crimson")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(name)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
