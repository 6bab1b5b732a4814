"""Streaming SXDM reduction: a BLISS/XSOCS scan series → :class:`helpers.sxdm.maps.SxdmMaps` (+ HDF5).

:func:`reduce` reads the frames lazily in chunks of scan points
(:meth:`helpers.sxdm.io.SxdmSeries.iter_chunks`), computes every point's 3-D peak with
:func:`helpers.sxdm.peaks.analyse_peaks` on all cores (numba ``prange`` over the points of a chunk)
and derives the maps.

**Memory bound** (bytes; P = n_eta·ny·nx pixel-frames of one point, n = points per chunk,
N = scan points):  ≈ 32·P (pixel q in the peak frame and pixel volumes, float64)
+ 2 · 4·n·P (the chunk as read, float32, and h5py's read buffer)
+ n · 8·(ny·nx + n_eta·(ny + nx)) (2-D projections) + 8·6000·n_threads (fit scratch)
+ 200·N (the maps). ``points_per_chunk`` is chosen from ``memory_limit_mb`` by this formula, so peak
memory does not grow with the scan size (tested in the benchmark with a 200 × 200-point scan).
Drift (:mod:`helpers.sxdm.drift`): the per-eta moment maps add 24·n_eta·N bytes; ``drift="correct"``
runs a second pass whose reader adds one eta map's (chunk rows + 2) rows of frames.

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
from pathlib import Path

import numpy as np

from helpers.sxdm import drift as dr
from helpers.sxdm import geometry as geo
from helpers.sxdm import peaks as pk
from helpers.sxdm.maps import FLAG_BITS, SxdmMaps, derive_maps, file_sha256, write_maps

#: Maxipix counters saturate at 11 810 counts per pixel per frame (ESRF Maxipix documentation)
MAXIPIX_SATURATION = 11810.0


def _open_series(source, detector, roi):
    from helpers.sxdm.io import SxdmSeries, open_sxdm_series

    if isinstance(source, SxdmSeries):
        if detector is not None or roi is not None:
            raise ValueError("detector/roi apply when opening a file; pass a path, not an open series")
        return source
    path = Path(source)
    if not path.exists():
        raise OSError(f"SXDM input {path} does not exist: give a BLISS dataset file or an XSOCS master file")
    return open_sxdm_series(path, detector=detector, roi=roi)


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

    size = int(size)
    if size < 3 or size % 2 == 0:
        raise ValueError(
            f"median kernel {size} × {size}: use an odd size ≥ 3 (an even kernel such as the paper's "
            "2 × 2 has no centre pixel and is a no-op in silx/XSOCS)"
        )
    return median_filter(frames, size=(1,) * (frames.ndim - 2) + (size, size), mode="nearest")


def reduce(
    source,
    out=None,
    *,
    detector: str | None = None,
    roi=None,
    method: str = "gauss",
    mask_threshold: float = 0.2,
    reference_d: float | None = None,
    background="auto",
    min_counts: float = 50.0,
    saturation: float | None = MAXIPIX_SATURATION,
    median_size: int | None = None,
    window_sigma: float | None = 4.0,
    edge_fraction: float = 0.02,
    split_fraction: float = 0.2,
    hot_pixels: bool = True,
    memory_limit_mb: float = 256.0,
    points_per_chunk: int | None = None,
    progress: bool = True,
    drift="estimate",
    drift_flag_fraction: float = 0.1,
) -> SxdmMaps:
    """Reduce an SXDM scan series to maps; write them to ``out`` (HDF5) when given.

    Parameters
    ----------
    source : path of a BLISS dataset file / XSOCS master file, or an open ``SxdmSeries``
    out : results file (see :mod:`helpers.sxdm.maps`), written atomically; ``None`` = do not write
    detector, roi : passed to :func:`helpers.sxdm.io.open_sxdm_series` ((row0, row1, col0, col1))
    method : ``"gauss"`` (Poisson 3-D Gaussian fit) or ``"com"`` (3-D centre of mass)
    mask_threshold : mask = intensity ≥ this fraction of the maximum (paper: 0.2)
    reference_d : d_ref of the strain (Å); ``None`` = mean d over the mask
    background : ``"auto"``, or counts per pixel per frame (monitor-normalised)
    min_counts : net counts below which a point is flagged ``low_counts`` (and left out of the mask)
    saturation : counts per pixel per frame treated as saturated (excluded and flagged)
    median_size : odd median kernel per frame, ``None`` = no filter (see module docstring)
    window_sigma : half-size of the moment/fit box in peak σ (``None`` = the whole ROI)
    hot_pixels : also mask pixels counting in ≥ 90 % of the first chunk's frames
        (:func:`detect_hot_pixels`; needed for inputs without a pixel mask, e.g. XSOCS master files)
    memory_limit_mb, points_per_chunk : chunking (``points_per_chunk`` overrides the limit)
    progress : show a tqdm progress bar
    drift : sample drift between the eta maps (:mod:`helpers.sxdm.drift`): ``"estimate"`` (default:
        estimate it from per-eta detector-COM maps, store it in the parameters and warn when it exceeds
        ``drift_flag_fraction`` of the scan step; the maps are not changed), ``"correct"`` (estimate,
        then a second pass on frames interpolated onto the common grid), ``"off"``, or an array
        (n_eta, 2) of known (dx, dy) drifts in µm to correct
    """
    from tqdm.auto import tqdm

    if method not in ("com", "gauss"):
        raise ValueError(f"method {method!r} is not one of 'com', 'gauss'")
    if reference_d is not None and not (np.isfinite(reference_d) and reference_d > 0):
        raise ValueError(f"reference d = {reference_d} Å: it must be a positive d-spacing in Å")
    if median_size is not None:
        median_filter_frames(np.zeros((1, 3, 3)), median_size)  # validates the size early
    given_drift = None
    if isinstance(drift, str):
        if drift not in ("estimate", "correct", "off"):
            raise ValueError(
                f"drift {drift!r}: give 'estimate', 'correct', 'off' or an (n_eta, 2) array in µm"
            )
    else:
        given_drift, drift = np.asarray(drift, float), "given"
    series = _open_series(source, detector, roi)
    n_eta, (ny, nx) = series.n_eta, series.frame_shape
    if n_eta < 2:
        import warnings

        warnings.warn(
            f"{series.path}: a single eta ({series.eta_deg[0]:.4f}°): the rocking direction is not "
            "resolved, every point is flagged 'truncated_rocking'",
            stacklevel=2,
        )
    q = series.q_vectors()
    mid = n_eta // 2
    q0 = q[mid, ny // 2, nx // 2].copy()
    frame = geo.peak_frame_axes(q0, phi_deg=float(np.atleast_1d(series.phi_deg)[mid]))
    q_frame = np.ascontiguousarray((q - q0) @ frame.T)
    del q
    pixel_ok = ~np.asarray(series.pixel_mask, bool)
    monitor = np.asarray(series.monitor, float)  # (n_eta, n_points)
    with np.errstate(invalid="ignore", divide="ignore"):
        good_monitor = np.isfinite(monitor) & (monitor > 0)
        reference_monitor = float(np.mean(monitor[good_monitor])) if good_monitor.any() else 1.0
        gain_all = np.where(good_monitor, reference_monitor / monitor, np.nan).T  # (n_points, n_eta)
    if points_per_chunk is None:
        points_per_chunk = chunk_size_for(memory_limit_mb, n_eta, ny, nx)
    n_points = series.n_points
    intensity = np.full(n_points, np.nan)
    centre = np.full((n_points, 3), np.nan)
    sigma = np.full((n_points, 3), np.nan)
    error = np.full((n_points, 3), np.nan)
    flags = np.zeros(n_points, np.uint16)
    sat = np.inf if saturation is None else float(saturation)
    bg_value = None if background == "auto" else float(background)
    if bg_value is not None and not (np.isfinite(bg_value) and bg_value >= 0):
        raise ValueError(f"background {background!r}: give 'auto' or a number ≥ 0 (counts/pixel/frame)")

    n_hot = None
    moments = np.zeros((n_points, n_eta, 3)) if drift in ("estimate", "correct") else None

    box = None

    def run_pass(chunks, desc):
        nonlocal n_hot, pixel_ok, bg_value, box
        bar = tqdm(total=n_points, desc=desc, unit="pt", disable=not progress)
        for sl, frames in chunks:
            gain = gain_all[sl]
            if median_size is not None:
                frames = median_filter_frames(frames, median_size)
            if n_hot is None:
                hot = detect_hot_pixels(frames, pixel_ok) if hot_pixels else np.zeros_like(pixel_ok)
                n_hot = int(hot.sum())
                pixel_ok = pixel_ok & ~hot
            if bg_value is None:
                bg_value = estimate_background(frames, gain, pixel_ok)
            if moments is not None and desc == "sxdm-maps":
                if box is None:
                    box = dr.spot_box(series, pixel_ok, bg_value)
                moments[sl] = dr.eta_moment_maps(frames, gain, pixel_ok, bg_value, box)
            if drift == "correct" and desc == "sxdm-maps":
                bar.update(sl.stop - sl.start)  # first pass of a correction: only the moment maps
                continue
            res = pk.analyse_peaks(
                frames, q_frame, gain, pixel_ok, bg_value, method, min_counts, sat, edge_fraction,
                split_fraction, window_sigma,
            )
            intensity[sl], centre[sl], sigma[sl], error[sl], flags[sl] = (
                res.intensity, res.centre, res.sigma, res.centre_error, res.flags
            )
            bar.update(sl.stop - sl.start)
            del frames, res
        bar.close()

    # sequential reads: h5py serialises I/O behind one lock anyway, and a reader thread next to the
    # numba thread pool risked a lock-order deadlock inside Jupyter kernels
    if given_drift is None:
        run_pass(series.iter_chunks(points_per_chunk), "sxdm-maps")
    else:
        run_pass(dr.iter_drift_corrected_chunks(series, points_per_chunk, given_drift), "sxdm-maps")
    drift_params = {"drift_mode": drift}
    if moments is not None:
        estimate = dr.estimate_drift(
            moments, series.scan_shape, dr.scan_steps_um(series), flag_fraction=drift_flag_fraction
        )
        drift_params.update(estimate.as_params())
        drift_params["drift_detector_box"] = [int(v) for v in box]
        if drift == "correct" and not estimate.measurable:
            import warnings

            run_pass(series.iter_chunks(points_per_chunk), "sxdm-maps (uncorrected)")
            warnings.warn(
                f"{series.path}: drift not measurable (median error {estimate.typical_error_um * 1e3:.0f} nm "
                "per eta map, needs < half the flag threshold): the maps are not corrected",
                stacklevel=2,
            )
        elif drift == "correct":
            run_pass(dr.iter_drift_corrected_chunks(series, points_per_chunk, estimate.drift_um),
                     "sxdm-maps (drift-corrected)")
        elif estimate.flagged:
            import warnings

            warnings.warn(
                f"{series.path}: the eta maps are shifted by up to {estimate.max_shift_um * 1e3:.0f} nm "
                f"(> {drift_flag_fraction:g} of the scan step): sample drift biases strain and tilt; "
                "reduce with drift='correct' (CLI: --drift correct)",
                stacklevel=2,
            )
    elif given_drift is not None:
        drift_params["drift_um"] = np.round(given_drift, 6).tolist()

    q_sample = q0 + centre @ frame
    q_unc = np.sqrt(error**2 @ frame**2)
    shape = series.scan_shape
    x_um = series.x_um.mean(axis=0)
    y_um = series.y_um.mean(axis=1)
    params = {
        "method": method,
        "background_counts_per_px": float(bg_value or 0.0),
        "background_mode": "auto" if background == "auto" else "given",
        "min_counts": float(min_counts),
        "saturation_counts": "none" if saturation is None else float(saturation),
        "median_size": "none" if median_size is None else int(median_size),
        "window_sigma": "none" if window_sigma is None else float(window_sigma),
        "edge_fraction": float(edge_fraction),
        "split_fraction": float(split_fraction),
        "hot_pixels_detected": int(n_hot or 0),
        "pixels_masked": int((~pixel_ok).sum()),
        "points_per_chunk": int(points_per_chunk),
        "detector": series.detector,
        "roi": list(series.roi),
        "n_eta": int(n_eta),
        "eta_range_deg": [float(series.eta_deg.min()), float(series.eta_deg.max())],
        "wavelength_A": float(series.wavelength_m * 1e10),
        "q0_inv_A": q0.tolist(),
        "width_frame": frame.tolist(),
        "monitor": series.monitor_name or "none",
        "reference_monitor": reference_monitor,
        "scans": list(series.scans),
        **drift_params,
    }
    maps = derive_maps(
        intensity.reshape(shape),
        q_sample.reshape(shape + (3,)),
        sigma.reshape(shape + (3,)),
        flags.reshape(shape),
        q_unc.reshape(shape + (3,)),
        x_um,
        y_um,
        rocking_direction=frame[0],
        mask_threshold=mask_threshold,
        reference_d=reference_d,
        params=params,
    )
    if out is not None:
        # the checksum covers the dataset/master file named on the command line; the per-scan detector
        # files it links to (GBs of frames) are listed in ``scans`` but not hashed
        write_maps(out, maps, {"input_file": str(series.path), "input_sha256": file_sha256(series.path),
                               "input_kind": series.kind})
    return maps


def flag_summary(maps: SxdmMaps) -> dict[str, int]:
    """Number of points carrying each flag (inside and outside the mask)."""
    return {name: int(np.count_nonzero(maps.flags & bit)) for name, bit in FLAG_BITS.items()}
