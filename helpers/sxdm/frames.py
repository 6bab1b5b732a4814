"""First stage of the SXDM reduction: read detector frames in chunks and calibrate them.

:func:`read_frames` yields (point slice, frames) chunks of a series, as read or interpolated onto the
common scan grid when a drift is corrected (:func:`helpers.sxdm.drift.iter_drift_corrected_chunks`),
median-filtered when asked. :func:`calibrate` takes the first chunk to find hot pixels and the
background, and hands the chunks on unchanged.

**Memory bound** (bytes; P = n_eta·ny·nx pixel-frames of one point, n = points per chunk,
N = scan points):  ≈ 32·P (pixel q in the peak frame and pixel volumes, float64)
+ 2 · 4·n·P (the chunk as read, float32, and h5py's read buffer)
+ n · 8·(ny·nx + n_eta·(ny + nx)) (2-D projections) + 8·6000·n_threads (fit scratch)
+ 200·N (the maps). :func:`chunk_size_for` picks the points per chunk from a memory limit by this
formula, so peak memory does not grow with the scan size (tested in the benchmark with a
200 × 200-point scan). Drift: the per-eta moment maps add 24·n_eta·N bytes; a drift correction's
reader adds one eta map's (chunk rows + 2) rows of frames.

Background: ``"auto"`` estimates one constant (counts per pixel per frame, monitor-normalised) from the
first chunk: the mean over the outer 4-pixel ring of the ROI, over the 80 % of points with the least
counts there (so a peak running into the ring of some points does not inflate it). A number is
used as given; 0 switches subtraction off.

Median filter: off by default. The paper's 2 × 2 median (XSOCS, silx ``medfilt2d``) is an exact
no-op: an even kernel has no centre pixel. The workbook removes bad pixels with the detector mask
instead, because a median alters the Poisson statistics the error bars rest on; ``median_size`` (odd,
≥ 3) applies a real ``size × size`` median per frame for data with unmasked outliers.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

Chunks = Iterator[tuple[slice, np.ndarray]]


def bytes_per_point(n_eta: int, ny: int, nx: int) -> int:
    """Bytes one scan point costs while being read and analysed (see the module's memory bound)."""
    pixel_frames = n_eta * ny * nx
    return 2 * 4 * pixel_frames + 8 * (ny * nx + n_eta * (ny + nx))


def chunk_size_for(memory_limit_mb: float, n_eta: int, ny: int, nx: int) -> int:
    """Points per chunk that keep the reduction under ``memory_limit_mb`` (at least 1)."""
    fixed = 32 * n_eta * ny * nx + 8 * 6000 * (os.cpu_count() or 1)
    budget = memory_limit_mb * 2**20 - fixed
    per_point = bytes_per_point(n_eta, ny, nx)
    if budget < per_point:
        raise ValueError(
            f"memory limit {memory_limit_mb} MB is below what one scan point needs "
            f"({(fixed + per_point) / 2**20:.0f} MB for {n_eta} eta × {ny} × {nx} pixels): "
            "raise it or give a smaller ROI"
        )
    return int(max(1, min(4096, budget // per_point)))


def estimate_background(frames, gain, pixel_ok, ring_px: int = 4, keep_fraction: float = 0.8) -> float:
    """Background (counts per pixel per frame) from the ROI's outer ring (see module docstring)."""
    n, n_eta, ny, nx = frames.shape
    ring = np.zeros((ny, nx), bool)
    ring[:ring_px], ring[-ring_px:], ring[:, :ring_px], ring[:, -ring_px:] = True, True, True, True
    ring &= pixel_ok
    if not ring.any():
        return 0.0
    per_point = (frames[..., ring].sum(axis=-1) * np.nan_to_num(gain)).sum(axis=1) / (ring.sum() * n_eta)
    keep = np.sort(per_point)[: max(1, int(math.ceil(keep_fraction * n)))]
    return float(np.mean(keep))


def detect_hot_pixels(frames, pixel_ok, min_fraction: float = 0.9) -> np.ndarray:
    """Pixels that count in at least ``min_fraction`` of all frames of a chunk (bool (ny, nx)).

    A hot pixel counts in every frame whatever the point and the rocking angle; a pixel of a Bragg
    peak counts only at the few eta of the points on the crystal, and a background pixel rarely. Files
    without a pixel mask (XSOCS master files, some detector files) need this; with a mask it finds
    nothing new.
    """
    lit = np.count_nonzero(frames.reshape(-1, *frames.shape[-2:]) > 0, axis=0)
    return (lit >= min_fraction * frames.shape[0] * frames.shape[1]) & np.asarray(pixel_ok, bool)


def median_filter_frames(frames, size: int):
    """``size × size`` median of every detector frame (odd ``size`` ≥ 3; an even kernel is refused).

    Raises ``ValueError`` for even sizes: silx ``medfilt2d`` with XSOCS's 2 × 2 kernel returns its
    input unchanged, so the paper's filter did nothing; an odd kernel has a centre pixel and filters.
    """
    from scipy.ndimage import median_filter

    size = check_median_size(size)
    return median_filter(frames, size=(1,) * (frames.ndim - 2) + (size, size), mode="nearest")


def check_median_size(size) -> int:
    """``size`` as an int if it is a usable median kernel (odd, ≥ 3); ``ValueError`` otherwise."""
    size = int(size)
    if size < 3 or size % 2 == 0:
        raise ValueError(
            f"median kernel {size} × {size}: use an odd size ≥ 3 (an even kernel such as the paper's "
            "2 × 2 has no centre pixel and is a no-op in silx/XSOCS)"
        )
    return size


def read_frames(series, points_per_chunk: int, drift_um=None, median_size: int | None = None) -> Chunks:
    """(point slice, frames float32 (n, n_eta, ny, nx)) over the whole scan, in chunks of points.

    ``drift_um`` (n_eta, 2) µm: each eta map's frames interpolated onto the common grid
    (:func:`helpers.sxdm.drift.iter_drift_corrected_chunks`); ``None`` = as measured.
    Reads are sequential: h5py serialises I/O behind one lock anyway, and a reader thread next to the
    numba thread pool risked a lock-order deadlock inside Jupyter kernels.
    """
    from helpers.sxdm.drift import iter_drift_corrected_chunks

    if drift_um is None:
        chunks = series.iter_chunks(points_per_chunk)
    else:
        chunks = iter_drift_corrected_chunks(series, points_per_chunk, drift_um)
    for sl, frames in chunks:
        yield sl, (frames if median_size is None else median_filter_frames(frames, median_size))
        del frames  # let the consumer's chunk go before the next one is read (one chunk alive, not two)


@dataclass(frozen=True)
class Calibration:
    """What the first chunk tells about the detector: usable pixels, hot pixels, background.

    ``pixel_ok`` (ny, nx) bool: not masked and not hot; ``n_hot`` hot pixels found;
    ``background`` counts per pixel per frame (monitor-normalised).
    """

    pixel_ok: np.ndarray
    n_hot: int
    background: float


def calibrate(chunks: Chunks, pixel_ok, monitor_gain, background="auto", hot_pixels: bool = True):
    """Calibration from the first chunk of ``chunks``; returns it and the same chunks, first included.

    ``pixel_ok`` (ny, nx) the detector mask's good pixels; ``monitor_gain`` (n_points, n_eta);
    ``background`` ``"auto"`` (:func:`estimate_background` after hot-pixel removal) or a number.
    """
    first = next(chunks)
    sl, frames = first
    pixel_ok = np.asarray(pixel_ok, bool)
    hot = detect_hot_pixels(frames, pixel_ok) if hot_pixels else np.zeros_like(pixel_ok)
    pixel_ok = pixel_ok & ~hot
    if background == "auto":
        background = estimate_background(frames, monitor_gain[sl], pixel_ok)
    calibration = Calibration(pixel_ok=pixel_ok, n_hot=int(hot.sum()), background=float(background))
    return calibration, _first_then(first, chunks)


def _first_then(first, chunks: Chunks) -> Chunks:
    """``first``, then the rest of ``chunks``, without holding ``first`` afterwards.

    (``itertools.chain([first], chunks)`` keeps the list, hence the first chunk's frames, alive until
    the last chunk: one chunk of memory more for the whole reduction.)
    """
    yield first
    del first
    yield from chunks
