"""Classical baselines for benchmarks/photo_restore.py (data in [-1, 1], images (H, W)).

* :func:`bm3d_denoise` (the ``bm3d`` package, sigma_psd on the [0, 1] scale);
* :func:`tv_denoise` (skimage ``denoise_tv_chambolle``) with :func:`tune_tv` on the validation photo;
* :func:`biharmonic` (skimage ``inpaint_biharmonic``);
* :class:`StationaryGaussian`: the Gaussian (Wiener) prior fitted on the training photos, a stationary
  covariance whose circulant spectrum is the mean periodogram of mean-subtracted training crops of the
  image's size; posterior means by FFT (denoising, deblurring) or conjugate gradients in whitened
  coordinates (inpainting).
"""

from __future__ import annotations

import numpy as np


def bm3d_denoise(y, sigma):
    import bm3d

    return np.asarray(bm3d.bm3d((y + 1) / 2, sigma_psd=sigma / 2), np.float64) * 2 - 1


def tv_denoise(y, weight):
    from skimage.restoration import denoise_tv_chambolle

    return denoise_tv_chambolle((y + 1) / 2, weight=weight) * 2 - 1


def tune_tv(clean, noisy, weights=(0.02, 0.04, 0.06, 0.08, 0.1, 0.13, 0.16, 0.2, 0.25, 0.3)):
    """The weight with the best PSNR on a (clean, noisy) validation pair."""
    from skimage.metrics import peak_signal_noise_ratio as psnr

    scores = [psnr((clean + 1) / 2, np.clip((tv_denoise(noisy, w) + 1) / 2, 0, 1), data_range=1.0) for w in weights]
    return float(weights[int(np.argmax(scores))])


def biharmonic(obs_img, mask):
    from skimage.restoration import inpaint_biharmonic

    return inpaint_biharmonic((obs_img + 1) / 2, ~mask) * 2 - 1


class StationaryGaussian:
    """x ~ N(mu, C), C circulant with spectrum ``S`` (H, W) (unnormalised-FFT convention:
    C = F^-1 diag(S) F)."""

    def __init__(self, train_photos, shape, n_crops=400, seed=0):
        H, W = shape
        rng = np.random.default_rng(seed)
        imgs = [p for p in train_photos if p.shape[0] >= H and p.shape[1] >= W]
        if not imgs:
            raise ValueError(f"no training photo holds a {H}x{W} crop")
        crops = []
        for i in range(n_crops):
            p = imgs[i % len(imgs)]
            r, c = rng.integers(0, p.shape[0] - H + 1), rng.integers(0, p.shape[1] - W + 1)
            crops.append(p[r : r + H, c : c + W])
        crops = np.stack(crops).astype(np.float64)
        self.mu = float(crops.mean())
        per = np.abs(np.fft.fft2(crops - crops.mean(axis=(1, 2), keepdims=True))) ** 2 / (H * W)
        self.S = np.maximum(per.mean(0), 1e-8)
        self.S[0, 0] = np.var(crops.mean(axis=(1, 2))) * H * W + 1e-8  # the DC term: crop means vary
        self.shape = (H, W)

    def denoise(self, y, sigma):
        Y = np.fft.fft2(y - self.mu)
        return np.real(np.fft.ifft2(self.S / (self.S + sigma**2) * Y)) + self.mu

    def deblur(self, y, kernel, sigma):
        H, W = self.shape
        k = np.zeros((H, W))
        kh, kw = kernel.shape
        k[:kh, :kw] = kernel
        k = np.roll(k, (-(kh // 2), -(kw // 2)), axis=(0, 1))
        K = np.fft.fft2(k)
        Y = np.fft.fft2(y - self.mu)
        X = np.conj(K) * self.S / (np.abs(K) ** 2 * self.S + sigma**2) * Y
        return np.real(np.fft.ifft2(X)) + self.mu

    def inpaint(self, obs_img, mask, sigma, iters=400):
        """Posterior mean with observed pixels ``mask`` (True = observed), noise ``sigma``: solve
        (I + C^1/2 M C^1/2 / sigma^2) z = C^1/2 M (y - mu) / sigma^2 by CG, x = mu + C^1/2 z."""
        sq = np.sqrt(self.S)

        def half(v):
            return np.real(np.fft.ifft2(sq * np.fft.fft2(v)))

        m = mask.astype(np.float64)

        def A(z):
            return z + half(m * half(z)) / sigma**2

        b = half(m * (obs_img - self.mu)) / sigma**2
        z = np.zeros_like(b)
        r = b - A(z)
        p = r.copy()
        rs = np.sum(r * r)
        for _ in range(iters):
            Ap = A(p)
            alpha = rs / np.sum(p * Ap)
            z += alpha * p
            r -= alpha * Ap
            rs_new = np.sum(r * r)
            if rs_new < 1e-10 * np.sum(b * b):
                break
            p = r + rs_new / rs * p
            rs = rs_new
        return half(z) + self.mu
