"""Correlated reconstruction noise: its power spectrum, correlation length, a matched Wiener filter.

After Paganin retrieval and FBP the noise of a nano-CT volume is not white: its power spectrum is
∝ |k| / (1 + a²|k|²)² (ramp filter times the squared retrieval low-pass, a² = πλz·δ/β), so it peaks at
a spatial scale set by the propagation distance and δ/β, not by the voxel. These functions measure
that scale on a noise-only volume (two reconstructions of the same object, or a noisy minus a
noise-free one), and filter a volume with the Wiener gain ``max(0, 1 − N(k)/P(k))`` of its radially
averaged power ``P`` and the noise power ``N``.
"""

from __future__ import annotations

import numpy as np


def _radial_bins(shape, n_bins: int):
    freqs = np.meshgrid(*[np.fft.fftfreq(n) for n in shape], indexing="ij", sparse=True)
    k = np.sqrt(sum(f**2 for f in freqs))
    edges = np.linspace(0.0, k.max() + 1e-9, n_bins + 1)
    return np.clip(np.digitize(k, edges) - 1, 0, n_bins - 1), edges


def radial_power(volume: np.ndarray, n_bins: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Radially averaged power spectrum of a 3-D array (mean removed); ``(k_centres, power)``.

    ``k`` in cycles per voxel (0 … √3/2); power per voxel² (Parseval: ``power.mean`` weighted by the
    shell sizes equals the variance).
    """
    v = np.asarray(volume, dtype=np.float64)
    if v.ndim != 3:
        raise ValueError(f"radial_power needs a 3-D array, got shape {v.shape}")
    spec = np.abs(np.fft.fftn(v - v.mean())) ** 2 / v.size
    idx, edges = _radial_bins(v.shape, n_bins)
    counts = np.bincount(idx.ravel(), minlength=n_bins)
    power = np.bincount(idx.ravel(), weights=spec.ravel(), minlength=n_bins) / np.maximum(counts, 1)
    return 0.5 * (edges[1:] + edges[:-1]), power


def correlation_length(noise: np.ndarray) -> dict[str, float]:
    """Half width at half maximum (voxels) of the noise autocorrelation along z, y and x.

    The autocorrelation is the inverse FFT of the power spectrum (Wiener–Khinchin); the HWHM is
    linearly interpolated where it first falls below half of its zero-lag value.
    """
    v = np.asarray(noise, dtype=np.float64)
    acf = np.real(np.fft.ifftn(np.abs(np.fft.fftn(v - v.mean())) ** 2))
    acf /= acf.flat[0]
    out = {}
    for axis, name in enumerate("zyx"):
        line = np.moveaxis(acf, axis, 0)[:, 0, 0][: v.shape[axis] // 2]
        below = np.flatnonzero(line < 0.5)
        if below.size == 0:
            out[name] = float("nan")
            continue
        j = int(below[0])
        out[name] = float(j - 1 + (line[j - 1] - 0.5) / (line[j - 1] - line[j]))
    return out


def wiener_filter(volume: np.ndarray, noise_power: np.ndarray, n_bins: int = 64) -> np.ndarray:
    """Filter ``volume`` with the isotropic Wiener gain ``max(0, 1 − N(k)/P(k))``.

    ``noise_power``: the radially averaged noise power on the same ``n_bins`` shells (from
    :func:`radial_power` of a noise-only volume of the same shape); ``P`` is that of ``volume``.
    Returns float32, same shape.
    """
    v = np.asarray(volume, dtype=np.float64)
    _, power = radial_power(v, n_bins)
    gain = np.clip(1.0 - np.asarray(noise_power) / np.maximum(power, 1e-30), 0.0, 1.0)
    gain[0] = 1.0  # keep the mean
    idx, _ = _radial_bins(v.shape, n_bins)
    mean = v.mean()
    return (np.real(np.fft.ifftn(np.fft.fftn(v - mean) * gain[idx])) + mean).astype(np.float32)


def sigma_in_boxes(volume: np.ndarray, region: np.ndarray, box: int = 8, min_fill: float = 1.0) -> float:
    """Median σ of the grey values inside ``box``³ cubes lying wholly (``min_fill``) in ``region``.

    What one measures on a real volume by placing small air boxes: with noise correlated over more
    than ``box`` voxels, this is smaller than the σ of the whole region.
    """
    v = np.asarray(volume, dtype=np.float64)
    sig = []
    for z in range(0, v.shape[0] - box + 1, box):
        for y in range(0, v.shape[1] - box + 1, box):
            for x in range(0, v.shape[2] - box + 1, box):
                sl = (slice(z, z + box), slice(y, y + box), slice(x, x + box))
                if region[sl].mean() >= min_fill:
                    sig.append(v[sl].std())
    if not sig:
        raise ValueError(f"no {box}³ cube lies inside the region; give a smaller box")
    return float(np.median(sig))
