"""NMC masks beyond one global threshold: hysteresis, a seeded random walker, opening/closing.

Each takes a grey volume (any dtype), the NMC threshold ``t`` and the noise σ (grey units) and returns
a boolean NMC mask of the same shape; the particles are then labelled from the mask with
``segment_particles(mask_as_grey(mask), threshold=127)``. All are scikit-image / SciPy operations.
"""

from __future__ import annotations

import numpy as np


def mask_as_grey(mask: np.ndarray) -> np.ndarray:
    """A boolean mask as a uint8 volume (0 / 255) that any grey-threshold step reads at 127."""
    return np.where(mask, 255, 0).astype(np.uint8)


def hysteresis_mask(volume, t: float, sigma: float, low_k: float = 0.5, high_k: float = 1.0) -> np.ndarray:
    """NMC = connected regions above ``t − low_k·σ`` that hold a voxel above ``t + high_k·σ``.

    (:func:`skimage.filters.apply_hysteresis_threshold`.)
    """
    from skimage.filters import apply_hysteresis_threshold

    return apply_hysteresis_threshold(np.asarray(volume, np.float32), t - low_k * sigma, t + high_k * sigma)


def random_walker_mask(volume, t: float, sigma: float, seed_k: float = 1.0, beta: float = 130.0,
                       tol: float = 1e-2) -> np.ndarray:
    """Random walker (:func:`skimage.segmentation.random_walker`) seeded with the confident voxels.

    Seeds: NMC where grey > ``t + seed_k·σ``, background where grey < ``t − seed_k·σ``; the voxels in
    between are given to the phase a random walker from them reaches first (edges weighted by
    ``exp(−beta·Δg²)`` on the grey scaled to unit range).
    """
    from skimage.segmentation import random_walker

    v = np.asarray(volume, np.float32)
    seeds = np.zeros(v.shape, np.uint8)
    seeds[v > t + seed_k * sigma] = 2
    seeds[v < t - seed_k * sigma] = 1
    lo, hi = float(v.min()), float(v.max())
    scaled = (v - lo) / max(hi - lo, 1e-9)
    out = random_walker(scaled, seeds, beta=beta, mode="cg_j", tol=tol)
    return out == 2


def open_close_mask(volume, t: float, radius_vox: int) -> np.ndarray:
    """``volume > t``, opened then closed by a ball of ``radius_vox`` (drops noise blobs and pits
    smaller than the ball; also rounds particle corners sharper than it)."""
    from scipy import ndimage as ndi
    from skimage.morphology import ball

    if radius_vox < 1:
        return np.asarray(volume) > t
    b = ball(int(radius_vox))
    mask = ndi.binary_opening(np.asarray(volume) > t, structure=b)
    return ndi.binary_closing(mask, structure=b)


def chan_vese_mask(volume, init_mask: np.ndarray, iterations: int = 15, smoothing: int = 2) -> np.ndarray:
    """Morphological Chan–Vese refinement of an NMC mask (two-region, curvature prior).

    :func:`skimage.segmentation.morphological_chan_vese` in 3-D on ``volume`` (any dtype), started
    from ``init_mask`` (e.g. a threshold of a filtered volume); ``smoothing`` curvature steps per
    iteration are the boundary's regularisation (larger: smoother outlines, small features lost).
    """
    from skimage.segmentation import morphological_chan_vese

    if np.shape(init_mask) != np.shape(volume):
        raise ValueError(
            f"init_mask {np.shape(init_mask)} and volume {np.shape(volume)} must have the same shape"
        )
    out = morphological_chan_vese(np.asarray(volume, np.float32), iterations,
                                  init_level_set=np.asarray(init_mask, np.int8), smoothing=smoothing)
    return out.astype(bool)
