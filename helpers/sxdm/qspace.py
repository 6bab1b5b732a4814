"""XSOCS-style gridding of detector frames onto a regular q-grid (reciprocal-space maps, Fig. S1).

XSOCS (``QSpaceConverter``) bins the pixels of every eta frame of a scan point into one global grid
(default 50 × 100 × 100) spanning all pixel q's, dividing each bin's counts by the number of pixels
that fell into it. :class:`QGrid` does the same with a precomputed bin index per pixel, so gridding
one point is a single ``np.bincount``. The grid is for display and comparison: the maps use the
unbinned 3-D moments of :mod:`helpers.sxdm.peaks` (binning adds bin²/12 to σ² and, on a grid coarser
than the peak, aliasing to the centre).

The coordinates are whatever ``q`` is given in: sample-frame (Qx, Qy, Qz) as XSOCS, or the peak frame
(X, Y, Z) of :func:`helpers.sxdm.geometry.peak_frame_axes` as in the paper's Fig. S1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class QGrid:
    """A regular q-grid and each pixel's bin: ``edges`` (3 arrays, Å⁻¹), ``flat_index`` (n_eta, ny, nx)
    (−1 = masked pixel), ``hits`` (shape) pixels per bin."""

    edges: tuple[np.ndarray, np.ndarray, np.ndarray]
    flat_index: np.ndarray
    hits: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(len(e) - 1 for e in self.edges)

    @property
    def centres(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Bin centres along each axis (Å⁻¹)."""
        return tuple(0.5 * (e[1:] + e[:-1]) for e in self.edges)


def make_grid(q, shape=(50, 100, 100), pixel_ok=None) -> QGrid:
    """Grid spanning every good pixel's q (``q``: (n_eta, ny, nx, 3) Å⁻¹), XSOCS-style.

    Raises ``ValueError`` for a grid dimension < 1 or a q array of the wrong shape.
    """
    q = np.asarray(q, float)
    if q.ndim != 4 or q.shape[-1] != 3:
        raise ValueError(f"q must be (n_eta, ny, nx, 3), got shape {q.shape}")
    shape = tuple(int(n) for n in shape)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"grid shape {shape} must be three positive integers")
    ok = np.ones(q.shape[1:3], bool) if pixel_ok is None else np.asarray(pixel_ok, bool)
    good = np.broadcast_to(ok, q.shape[:3])
    qg = q[good]
    edges = []
    index = np.zeros(q.shape[:3], np.int64)
    for axis, n in enumerate(shape):
        lo, hi = qg[:, axis].min(), qg[:, axis].max()
        pad = 1e-9 * max(abs(hi - lo), 1e-12)
        e = np.linspace(lo - pad, hi + pad, n + 1)
        edges.append(e)
        idx = np.clip(np.searchsorted(e, q[..., axis], side="right") - 1, 0, n - 1)
        index = index * n + idx
    index[~good] = -1
    hits = np.bincount(index[good], minlength=int(np.prod(shape))).reshape(shape)
    return QGrid(tuple(edges), index, hits)


def grid_frames(grid: QGrid, frames, monitor_gain=None, median_size: int | None = None) -> np.ndarray:
    """Counts of one point's frames ``(n_eta, ny, nx)`` on the grid, divided by pixels per bin (XSOCS).

    ``monitor_gain`` (n_eta,) normalises each frame; ``median_size`` (odd) filters each frame first
    (see :func:`helpers.sxdm.frames.median_filter_frames`). Bins no pixel reaches are NaN.
    """
    frames = np.asarray(frames, float)
    if frames.shape != grid.flat_index.shape:
        raise ValueError(f"frames have shape {frames.shape}, the grid was made for {grid.flat_index.shape}")
    if median_size is not None:
        from helpers.sxdm.frames import median_filter_frames

        frames = median_filter_frames(frames, median_size)
    if monitor_gain is not None:
        frames = frames * np.asarray(monitor_gain, float)[:, None, None]
    good = grid.flat_index >= 0
    sums = np.bincount(grid.flat_index[good], weights=frames[good], minlength=grid.hits.size)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(grid.hits > 0, sums.reshape(grid.shape) / grid.hits, np.nan)


def projection_com(grid: QGrid, volume) -> np.ndarray:
    """XSOCS's "COM" (PeakFitter): the centre of mass of each 1-D projection of the gridded volume (Å⁻¹).

    For a binned peak this equals the 3-D COM of the binned intensity (each axis's mean needs only
    that axis's marginal); what differs from :func:`helpers.sxdm.peaks.centre_of_mass` is the binning
    (and the division by pixels per bin, which re-weights bins hit by different pixel counts).
    """
    vol = np.nan_to_num(np.asarray(volume, float))
    out = np.empty(3)
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        profile = vol.sum(axis=other)
        out[axis] = profile @ grid.centres[axis] / profile.sum() if profile.sum() > 0 else np.nan
    return out
