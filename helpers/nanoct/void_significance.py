"""Internal voids kept only when their grey deficit is significant against this volume's own noise.

At the paper's CNR (≈ 2.3) a per-voxel test (grey below the mid-level of the particle and air) flags
noise: a voxel of a void-free particle falls below that level with probability Φ(−CNR/2) ≈ 12 %, and
clusters of such voxels pass any size filter when the noise is correlated over a few voxels. A void of
n voxels is visible only when the *mean* grey over a region of its size is significantly below the
particle's level, where "significantly" is set by the noise of an n-voxel mean in *this* volume.

:func:`ball_mean_sigma` measures that noise: the σ of the grey mean over a ball of radius r, taken over
the positions where the ball lies wholly inside a reference region of the same volume (the air around
the sample, or any region of constant material); no simulator σ or truth enters. It holds the noise
correlation as measured (for white noise σ_r = σ/√n; after Paganin + FBP it falls much more slowly).

:func:`voids_by_significance` is a matched-filter (scale-space) detector: for each radius r, a voxel
of a particle's eroded envelope is a void centre when the particle's level minus the ball mean at
that voxel exceeds ``k_sigma`` · σ_r (one-sided false-alarm probability Φ(−k) per independent region;
k = 3.7 → 1e-4); the void *support* is the union over radii of the centres dilated by their ball
(a large ball that holds a small void is significant too, so the support is wider than the void), and
the void is the part of the support whose radius-1 ball mean is below the mid-grey of the particle's
level and the air level (the median grey of the reference region, which must then be the air).
The envelope (closed, hole-filled particle mask) is found as in
:func:`helpers.nanoct.voids.voids_from_particle_statistics`, independently of the voids.
"""

from __future__ import annotations

import numpy as np

#: one-sided Gaussian z for a false-alarm probability of 1e-4 per independent ball (a priori, not tuned)
DEFAULT_K_SIGMA = 3.7
#: ball radii (voxels) of the matched filter: 2–12 voxel diameters, 50–300 nm at 25 nm voxels
DEFAULT_RADII = (1, 2, 3, 4, 6)


def ball(radius: int) -> np.ndarray:
    """Boolean ball of ``radius`` voxels (scikit-image's: Euclidean, centre included), shape (2r+1)³."""
    from skimage.morphology import ball as skimage_ball

    if int(radius) < 0:
        raise ValueError(f"ball radius must be ≥ 0 voxels, got {radius}")
    return skimage_ball(int(radius)).astype(bool)


def ball_mean(volume: np.ndarray, radius: int) -> np.ndarray:
    """Mean grey over a ball of ``radius`` voxels about every voxel (FFT convolution; float32)."""
    from scipy.signal import fftconvolve

    kernel = ball(radius).astype(np.float64)
    kernel /= kernel.sum()
    return fftconvolve(np.asarray(volume, np.float64), kernel, mode="same").astype(np.float32)


def ball_mean_sigma(volume: np.ndarray, region: np.ndarray, radii=DEFAULT_RADII) -> dict[int, float]:
    """σ of the ``radius``-ball mean of ``volume`` over the positions where the ball is inside ``region``.

    ``region``: boolean (z, y, x) mask of one constant material of the same volume (e.g. the air).
    Radii whose ball fits at fewer than 100 positions are left out (from the first such radius on);
    raises ValueError when not even the smallest fits.
    """
    from scipy import ndimage as ndi

    region = np.asarray(region, bool)
    if region.shape != np.shape(volume):
        raise ValueError(f"region {region.shape} and volume {np.shape(volume)} must have the same shape")
    out = {}
    for r in radii:
        inside = ndi.binary_erosion(region, structure=ball(r)) if r > 0 else region
        if inside.sum() < 100:
            if out:  # the smaller balls fit: measure those only
                break
            raise ValueError(
                f"fewer than 100 positions where a ball of radius {r} voxels lies inside the reference "
                f"region ({int(region.sum())} voxels): give a larger region (e.g. all the air around "
                "the sample)"
            )
        out[int(r)] = float(ball_mean(volume, r)[inside].std())
    return out


def voids_by_significance(
    volume: np.ndarray,
    labels: np.ndarray,
    reference_region: np.ndarray,
    radii=DEFAULT_RADII,
    k_sigma: float = DEFAULT_K_SIGMA,
    closing_radius: int = 2,
):
    """Voids of each labelled particle whose ball-mean deficit exceeds ``k_sigma`` σ of that ball's mean.

    ``volume`` grey (any dtype), ``labels`` particle labels of the same shape, ``reference_region`` the
    air of the same volume: its noise (:func:`ball_mean_sigma`) and its median grey (the air level).
    Returns a pandas.DataFrame (``label``, ``envelope_voxels``, ``particle_grey``, ``void_voxels``,
    ``void_fraction``), the boolean void mask (z, y, x) and ``{radius: σ_r}``.
    """
    import fill_voids
    import pandas as pd
    from scipy import ndimage as ndi

    from helpers.nanoct.particles import bounding_boxes, padded_box

    volume = np.asarray(volume)
    if labels.shape != volume.shape:
        raise ValueError(f"labels {labels.shape} and volume {volume.shape} must have the same shape")
    if k_sigma <= 0:
        raise ValueError(f"k_sigma must be > 0, got {k_sigma}")
    sigma = ball_mean_sigma(volume, reference_region, radii)
    radii = tuple(sigma)  # the radii whose noise could be measured in the reference region
    air_level = float(np.median(volume[np.asarray(reference_region, bool)]))
    means = {r: ball_mean(volume, r) for r in set(radii) | {1}}
    closing = ndi.iterate_structure(ndi.generate_binary_structure(3, 1), max(closing_radius, 1))
    void_all = np.zeros(labels.shape, bool)
    rows = []
    pad = closing_radius + 1
    for lab, box in enumerate(bounding_boxes(labels), start=1):
        if box is None:
            continue
        crop = padded_box(box, labels.shape, pad)
        mask = labels[crop] == lab
        envelope = ndi.binary_closing(mask, structure=closing) if closing_radius > 0 else mask
        envelope = fill_voids.fill(np.ascontiguousarray(envelope), in_place=False)
        inner = ndi.binary_erosion(envelope)
        void = np.zeros_like(inner)
        level = float(np.median(volume[crop][inner])) if inner.any() else np.nan
        if inner.any():
            for r in radii:
                centres = ndi.binary_erosion(envelope, structure=ball(r + 1))
                if not centres.any():
                    continue
                centres &= (level - means[r][crop]) >= k_sigma * sigma[r]
                if centres.any():
                    void |= ndi.binary_dilation(centres, structure=ball(r)) & inner
            void &= means[1][crop] < 0.5 * (level + air_level)
        void_all[crop] |= void
        n_env = int(envelope.sum())
        rows.append(dict(label=lab, envelope_voxels=n_env, particle_grey=level, void_voxels=int(void.sum()),
                         void_fraction=float(void.sum()) / max(n_env, 1)))
    return pd.DataFrame(rows), void_all, sigma
