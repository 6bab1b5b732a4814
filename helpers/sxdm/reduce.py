"""SXDM reduction: a BLISS/XSOCS scan series → :class:`helpers.sxdm.maps.SxdmMaps` (+ HDF5).

:func:`reduce` is a pipeline in one direction, each stage in its own module:

1. read frames (:mod:`helpers.sxdm.frames`): chunks of scan points read lazily, median-filtered if
   asked; the first chunk calibrates hot pixels and background;
2. drift correction (:mod:`helpers.sxdm.drift`): per-eta moment maps → drift estimate; with
   ``drift="correct"`` (or a known drift) the frames are read again, interpolated onto the common grid;
3. peak moments / fit (:mod:`helpers.sxdm.peaks`, numba ``prange`` over the points of a chunk);
4. maps (:mod:`helpers.sxdm.maps`): Q, d, strain, tilt, mask, flags, written atomically with the
   options and the run's facts as parameters.

Every option is one frozen :class:`ReduceOptions`, checked when it is created (before any file is
read); the memory bound and the background and median rules are in :mod:`helpers.sxdm.frames`.
"""

from __future__ import annotations

import dataclasses
import functools
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.sxdm import drift as dr
from helpers.sxdm import geometry as geo
from helpers.sxdm import peaks as pk
from helpers.sxdm.frames import Calibration, calibrate, check_median_size, chunk_size_for, read_frames
from helpers.sxdm.maps import FLAG_BITS, SxdmMaps, derive_maps, file_sha256, write_maps

#: Maxipix counters saturate at 11 810 counts per pixel per frame (ESRF Maxipix documentation)
MAXIPIX_SATURATION = 11810.0


@dataclass(frozen=True)
class ReduceOptions:
    """Every option of :func:`reduce`, checked on creation.

    method : ``"gauss"`` (Poisson 3-D Gaussian fit) or ``"com"`` (3-D centre of mass)
    mask_threshold : mask = intensity ≥ this fraction of the maximum (paper: 0.2)
    reference_d : d_ref of the strain (Å); ``None`` = mean d over the mask
    background : ``"auto"``, or counts per pixel per frame (monitor-normalised)
    min_counts : net counts below which a point is flagged ``low_counts`` (and left out of the mask)
    saturation : counts per pixel per frame treated as saturated (excluded and flagged); ``None`` = off
    median_size : odd median kernel per frame, ``None`` = no filter (:mod:`helpers.sxdm.frames`)
    window_sigma : half-size of the moment/fit box in peak σ (``None`` = the whole ROI)
    edge_fraction, split_fraction : thresholds of the ``edge`` and ``split_peak`` flags (peaks module)
    hot_pixels : also mask pixels counting in ≥ 90 % of the first chunk's frames (needed for inputs
        without a pixel mask, e.g. XSOCS master files)
    memory_limit_mb, points_per_chunk : chunking (``points_per_chunk`` overrides the limit)
    drift : sample drift between the eta maps (:mod:`helpers.sxdm.drift`): ``"estimate"`` (default:
        estimate it from per-eta detector-COM maps, store it in the parameters and warn when it exceeds
        ``drift_flag_fraction`` of the scan step; the maps are not changed), ``"correct"`` (estimate,
        then a second pass on frames interpolated onto the common grid), ``"off"``, or an array
        (n_eta, 2) of known (dx, dy) drifts in µm to correct (stored as a tuple of pairs)
    """

    method: str = "gauss"
    mask_threshold: float = 0.2
    reference_d: float | None = None
    background: float | str = "auto"
    min_counts: float = 50.0
    saturation: float | None = MAXIPIX_SATURATION
    median_size: int | None = None
    window_sigma: float | None = 4.0
    edge_fraction: float = 0.02
    split_fraction: float = 0.2
    hot_pixels: bool = True
    memory_limit_mb: float = 256.0
    points_per_chunk: int | None = None
    drift: str | tuple = "estimate"
    drift_flag_fraction: float = 0.1

    def __post_init__(self):
        if self.method not in ("com", "gauss"):
            raise ValueError(f"method {self.method!r} is not one of 'com', 'gauss'")
        if self.reference_d is not None and not (np.isfinite(self.reference_d) and self.reference_d > 0):
            raise ValueError(f"reference d = {self.reference_d} Å: it must be a positive d-spacing in Å")
        if self.median_size is not None:
            check_median_size(self.median_size)
        if isinstance(self.drift, str):
            if self.drift not in ("estimate", "correct", "off"):
                raise ValueError(
                    f"drift {self.drift!r}: give 'estimate', 'correct', 'off' or an (n_eta, 2) array in µm"
                )
        else:  # a known drift: frozen as a tuple of (dx, dy) pairs
            object.__setattr__(self, "drift", tuple(map(tuple, np.asarray(self.drift, float).tolist())))
        if self.background != "auto":
            value = float(self.background)
            if not (np.isfinite(value) and value >= 0):
                raise ValueError(
                    f"background {self.background!r}: give 'auto' or a number ≥ 0 (counts/pixel/frame)"
                )
        if self.points_per_chunk is not None and self.points_per_chunk < 1:
            raise ValueError(f"points_per_chunk must be >= 1, got {self.points_per_chunk}")

    @property
    def drift_mode(self) -> str:
        """``"estimate"``, ``"correct"``, ``"off"`` or ``"given"`` (a known drift is corrected)."""
        return self.drift if isinstance(self.drift, str) else "given"

    @property
    def given_drift_um(self) -> np.ndarray | None:
        """The known drift (n_eta, 2) µm, or ``None``."""
        return None if isinstance(self.drift, str) else np.array(self.drift, float)

    def as_params(self) -> dict:
        """The options as they appear in the maps file's parameters."""
        return {
            "method": self.method,
            "background_mode": "auto" if self.background == "auto" else "given",
            "min_counts": float(self.min_counts),
            "saturation_counts": "none" if self.saturation is None else float(self.saturation),
            "median_size": "none" if self.median_size is None else int(self.median_size),
            "window_sigma": "none" if self.window_sigma is None else float(self.window_sigma),
            "edge_fraction": float(self.edge_fraction),
            "split_fraction": float(self.split_fraction),
            "drift_mode": self.drift_mode,
        }


def reduce(source, out=None, options: ReduceOptions | None = None, *, detector: str | None = None, roi=None,
           progress: bool = True, **option_values) -> SxdmMaps:
    """Reduce an SXDM scan series to maps; write them to ``out`` (HDF5) when given.

    ``source`` a BLISS dataset file / XSOCS master file or an open ``SxdmSeries``; ``out`` the results
    file (:mod:`helpers.sxdm.maps`), ``None`` = do not write; ``options`` a :class:`ReduceOptions`,
    and/or its fields as keywords (``reduce(path, method="com", drift="correct")``); ``detector``,
    ``roi`` (row0, row1, col0, col1) are passed to :func:`helpers.sxdm.io.open_sxdm_series`;
    ``progress`` shows a tqdm bar.
    """
    opts = dataclasses.replace(options or ReduceOptions(), **option_values)
    series = _open_series(source, detector, roi)
    plan = PeakFrame.of(series)
    n_chunk = opts.points_per_chunk or chunk_size_for(opts.memory_limit_mb, series.n_eta, *series.frame_shape)
    chunks = read_frames(series, n_chunk, opts.given_drift_um, opts.median_size)
    calibration, chunks = calibrate(chunks, ~np.asarray(series.pixel_mask, bool), plan.monitor_gain,
                                    opts.background, opts.hot_pixels)
    peaks = PeakArrays(plan, calibration, opts)
    drift_params = {}
    if opts.drift_mode in ("estimate", "correct"):
        moments = dr.EtaMoments(series, calibration.pixel_ok, calibration.background)
        one_pass = opts.drift_mode == "estimate"
        _stream(chunks, [moments, peaks] if one_pass else [moments], plan, progress, "sxdm-maps")
        estimate = moments.estimate(opts.drift_flag_fraction)
        drift_params = {**estimate.as_params(), "drift_detector_box": [int(v) for v in moments.box]}
        correction = _drift_outcome(series, estimate, opts)
        if not one_pass:
            label = "sxdm-maps (uncorrected)" if correction is None else "sxdm-maps (drift-corrected)"
            again = read_frames(series, n_chunk, correction, opts.median_size)
            _stream(again, [peaks], plan, progress, label)
    else:
        _stream(chunks, [peaks], plan, progress, "sxdm-maps")
        if opts.drift_mode == "given":
            drift_params = {"drift_um": np.round(opts.given_drift_um, 6).tolist()}
    maps = peaks.to_maps(series, {"points_per_chunk": int(n_chunk), **drift_params})
    if out is not None:
        # the checksum covers the dataset/master file named on the command line; the per-scan detector
        # files it links to (GBs of frames) are listed in ``scans`` but not hashed
        write_maps(out, maps, {"input_file": str(series.path), "input_sha256": file_sha256(series.path),
                               "input_kind": series.kind})
    return maps


def _open_series(source, detector, roi):
    from helpers.sxdm.io import SxdmSeries, open_sxdm_series

    if isinstance(source, SxdmSeries):
        if detector is not None or roi is not None:
            raise ValueError("detector/roi apply when opening a file; pass a path, not an open series")
        series = source
    else:
        path = Path(source)
        if not path.exists():
            raise OSError(
                f"SXDM input {path} does not exist: give a BLISS dataset file or an XSOCS master file"
            )
        series = open_sxdm_series(path, detector=detector, roi=roi)
    if series.n_eta < 2:
        warnings.warn(
            f"{series.path}: a single eta ({series.eta_deg[0]:.4f}°): the rocking direction is not "
            "resolved, every point is flagged 'truncated_rocking'",
            stacklevel=3,
        )
    return series


@dataclass(frozen=True)
class PeakFrame:
    """Pixel Q in the peak frame and monitor gains of a series: what every stage after reading needs.

    ``q0`` (3,) Å⁻¹ the Q of the ROI's centre pixel at the middle eta; ``frame`` (3, 3) the peak frame's
    axes (:func:`helpers.sxdm.geometry.peak_frame_axes`); ``q_frame`` (n_eta, ny, nx, 3) pixel Q − q0 in
    that frame; ``monitor_gain`` (n_points, n_eta) reference monitor / monitor (NaN where the monitor
    is not positive); ``reference_monitor`` their common numerator (mean of the good monitor values).
    """

    q0: np.ndarray
    frame: np.ndarray
    q_frame: np.ndarray
    monitor_gain: np.ndarray
    reference_monitor: float

    @classmethod
    def of(cls, series) -> PeakFrame:
        q = series.q_vectors()
        mid = series.n_eta // 2
        ny, nx = series.frame_shape
        q0 = q[mid, ny // 2, nx // 2].copy()
        frame = geo.peak_frame_axes(q0, phi_deg=float(np.atleast_1d(series.phi_deg)[mid]))
        q_frame = np.ascontiguousarray((q - q0) @ frame.T)
        monitor = np.asarray(series.monitor, float)  # (n_eta, n_points)
        with np.errstate(invalid="ignore", divide="ignore"):
            good = np.isfinite(monitor) & (monitor > 0)
            reference = float(np.mean(monitor[good])) if good.any() else 1.0
            gain = np.where(good, reference / monitor, np.nan).T
        return cls(q0, frame, q_frame, gain, reference)

    @functools.cached_property
    def pixel_volumes(self) -> np.ndarray:
        """q-space volume (Å⁻³) of every (eta, row, col) sample, once per scan for every chunk's fit.

        See :func:`helpers.sxdm.peaks.pixel_volumes`.
        """
        return pk.pixel_volumes(self.q_frame)


class PeakArrays:
    """Per-point peak results of the whole scan (:func:`helpers.sxdm.peaks.analyse_peaks`), chunk by chunk.

    Calling it with (point slice, frames, monitor gain) analyses that chunk; :meth:`to_maps` turns the
    filled arrays into maps.
    """

    def __init__(self, plan: PeakFrame, calibration: Calibration, opts: ReduceOptions):
        n_points = plan.monitor_gain.shape[0]
        self.plan, self.calibration, self.opts = plan, calibration, opts
        self.intensity = np.full(n_points, np.nan)
        self.centre = np.full((n_points, 3), np.nan)
        self.sigma = np.full((n_points, 3), np.nan)
        self.error = np.full((n_points, 3), np.nan)
        self.flags = np.zeros(n_points, np.uint16)

    def __call__(self, point_slice: slice, frames, monitor_gain) -> None:
        o, cal = self.opts, self.calibration
        saturation = np.inf if o.saturation is None else float(o.saturation)
        res = pk.analyse_peaks(
            frames, self.plan.q_frame, monitor_gain, cal.pixel_ok, cal.background, o.method, o.min_counts,
            saturation, o.edge_fraction, o.split_fraction, o.window_sigma,
            volumes=self.plan.pixel_volumes if o.method == "gauss" else None,
        )
        sl = point_slice
        self.intensity[sl], self.centre[sl], self.sigma[sl], self.error[sl], self.flags[sl] = (
            res.intensity, res.centre, res.sigma, res.centre_error, res.flags
        )

    def to_maps(self, series, run_params: dict) -> SxdmMaps:
        """Maps of the scan; parameters = the options, the calibration and ``run_params``."""
        plan, cal = self.plan, self.calibration
        q_sample = plan.q0 + self.centre @ plan.frame
        q_unc = np.sqrt(self.error**2 @ plan.frame**2)
        shape = series.scan_shape
        params = {
            **self.opts.as_params(),
            "background_counts_per_px": cal.background,
            "hot_pixels_detected": cal.n_hot,
            "pixels_masked": int((~cal.pixel_ok).sum()),
            "detector": series.detector,
            "roi": list(series.roi),
            "n_eta": int(series.n_eta),
            "eta_range_deg": [float(series.eta_deg.min()), float(series.eta_deg.max())],
            "wavelength_A": float(series.wavelength_m * 1e10),
            "q0_inv_A": plan.q0.tolist(),
            "width_frame": plan.frame.tolist(),
            "monitor": series.monitor_name or "none",
            "reference_monitor": plan.reference_monitor,
            "scans": list(series.scans),
            **run_params,
        }
        return derive_maps(
            self.intensity.reshape(shape),
            q_sample.reshape(shape + (3,)),
            self.sigma.reshape(shape + (3,)),
            self.flags.reshape(shape),
            q_unc.reshape(shape + (3,)),
            series.x_um.mean(axis=0),
            series.y_um.mean(axis=1),
            rocking_direction=plan.frame[0],
            mask_threshold=self.opts.mask_threshold,
            reference_d=self.opts.reference_d,
            params=params,
        )


def _stream(chunks, consumers, plan: PeakFrame, progress: bool, label: str) -> None:
    """Feed every chunk to every consumer (point slice, frames, monitor gain); ``label`` names the bar."""
    from tqdm.auto import tqdm

    with tqdm(total=plan.monitor_gain.shape[0], desc=label, unit="pt", disable=not progress) as bar:
        for sl, frames in chunks:
            for consume in consumers:
                consume(sl, frames, plan.monitor_gain[sl])
            del frames  # freed before the next chunk is read
            bar.update(sl.stop - sl.start)


def _drift_outcome(series, estimate: dr.DriftEstimate, opts: ReduceOptions):
    """The drift to correct in a second pass (``None``: none), with the warnings the estimate calls for."""
    if opts.drift_mode == "correct" and not estimate.measurable:
        warnings.warn(
            f"{series.path}: drift not measurable (median error {estimate.typical_error_um * 1e3:.0f} nm "
            "per eta map, needs < half the flag threshold): the maps are not corrected",
            stacklevel=3,
        )
        return None
    if opts.drift_mode == "correct":
        return estimate.drift_um
    if estimate.flagged:
        warnings.warn(
            f"{series.path}: the eta maps are shifted by up to {estimate.confirmed_shift_um * 1e3:.0f} nm "
            f"(seen in both halves of the particle; > {opts.drift_flag_fraction:g} of the scan step): "
            "sample drift biases strain and tilt; "
            "reduce with drift='correct' (CLI: --drift correct)",
            stacklevel=3,
        )
    return None


def flag_summary(maps: SxdmMaps) -> dict[str, int]:
    """Number of points carrying each flag (inside and outside the mask)."""
    return {name: int(np.count_nonzero(maps.flags & bit)) for name, bit in FLAG_BITS.items()}
