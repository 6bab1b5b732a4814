"""Per-scan-point SXDM maps (Q, d, strain, tilt, widths, microstrain) and their HDF5 results file.

The contract between the reduction (:mod:`helpers.sxdm.reduce`) and everything downstream
(curvature, domains, notebooks). Keep it stable.

:class:`SxdmMaps` fields (map arrays are ``(n_slow, n_fast) = (piy, pix)``, rows × columns)
-----------------------------------------------------------------------------------------------
=====================  ====================  =========  ================================================
field                  shape                 unit       meaning
=====================  ====================  =========  ================================================
``intensity``          (ny, nx)              counts     integrated, monitor-normalised peak counts
``mask``               (ny, nx) bool         —          ``intensity ≥ threshold · max`` and no fatal flag
``q``                  (ny, nx, 3)           Å⁻¹        Bragg-peak Q vector, sample frame (x, y, z)
``d_spacing``          (ny, nx)              Å          d = 2π/|Q|
``strain``             (ny, nx)              —          ε = (d − d_ref)/d_ref
``tilt_deg``           (ny, nx)              deg        angle between Q and the reference direction
``tilt_azimuth_deg``   (ny, nx)              deg        azimuth of Q about the reference direction,
                                                        from the peak frame's X towards Y, in (−180, 180]
``sigma_q``            (ny, nx, 3)           Å⁻¹        peak standard deviations along the peak frame
                                                        X (rocking), Y (along the ring), Z (along 2θ, ∥Q)
``microstrain``        (ny, nx)              —          σ_Z/|Q| (local Δd/d)
``flags``              (ny, nx) uint16       —          bit field, see :data:`FLAG_BITS`
``q_uncertainty``      (ny, nx, 3)           Å⁻¹        1-σ counting-statistics error of ``q`` (x, y, z)
``x_um``               (nx,)                 µm         fast piezo axis (pix), column positions
``y_um``               (ny,)                 µm         slow piezo axis (piy), row positions
``peak_frame``         (3, 3)                —          rows = unit vectors X, Y, Z in the sample frame
``reference_q``        (3,)                  Å⁻¹        mean Q of the masked points (tilt reference)
``reference_d``        scalar                Å          d_ref of ``strain``
``params``             dict                  —          every reduction parameter (method, threshold…)
=====================  ====================  =========  ================================================

``sigma_q`` is measured along the X, Y, Z axes of the ROI centre's Q (``params["width_frame"]``), which
differ from ``peak_frame`` (built on the mean Q) by the angle between the two, a few hundredths of a
degree for a centred ROI: negligible for widths.

Points outside the mask keep their values (NaN only where no peak could be measured; the flag then
says why), so a user can re-threshold with :func:`apply_mask_threshold` without re-reducing.

Peak frame: Z = unit vector of ``reference_q`` (|Q| changes along 2θ), X = the rocking direction
(derivative of Q with eta, made orthogonal to Z), Y = Z × X (along the Debye ring). The tilt
components are ``tilt_x = atan2(q·X, q·Z)``, ``tilt_y = atan2(q·Y, q·Z)``; (tilt, azimuth) are
pole-figure coordinates around Z.

HDF5 layout written by :func:`write_maps`
-----------------------------------------
``/maps/<field>`` for every array field, each with a ``units`` attribute (and ``long_name``);
``/maps`` attributes: the scalar parameters (``reference_d_A``, ``method``, ``mask_threshold``, …; a
JSON copy of ``params`` in ``params_json``) and ``flag_bits_json``; root attributes: ``input_file``,
``input_sha256``, ``software``, ``created_utc``, ``format = "nmc-workbook sxdm-maps 1"`` and, set last,
``complete = True``. The file is written under a temporary name and renamed when complete, so a
crash never leaves a file that looks finished; :func:`read_maps` refuses a file without
``complete``.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import tempfile
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from helpers import nexus
from helpers.provenance import file_sha256

FORMAT_NAME = "nmc-workbook sxdm-maps 1"

#: quality flags, one bit each (``flags & FLAG_BITS[name]``)
FLAG_BITS: dict[str, int] = {
    "low_counts": 1,  # integrated counts below the reduction's minimum (Q error too large)
    "truncated_detector": 2,  # peak intensity reaches the detector/ROI edge: Q biased
    "truncated_rocking": 4,  # peak intensity reaches the first or last eta: Q_X biased
    "split_peak": 8,  # two separated maxima in the 3-D peak: one Q is an average
    "fit_failed": 16,  # Gaussian fit did not converge (the centre of mass is kept)
    "saturated": 32,  # saturated pixel(s) in the peak (masked out of the sums)
    "no_data": 64,  # no usable counts (all frames zero, NaN monitor): Q is NaN
}

#: flags that make a point unusable (excluded from the mask whatever its intensity)
FATAL_FLAGS = FLAG_BITS["no_data"] | FLAG_BITS["low_counts"]

#: units of every array field (written as the ``units`` attribute)
UNITS: dict[str, str] = {
    "intensity": "counts (monitor-normalised)",
    "mask": "",
    "q": "1/angstrom",
    "d_spacing": "angstrom",
    "strain": "",
    "tilt_deg": "degree",
    "tilt_azimuth_deg": "degree",
    "sigma_q": "1/angstrom",
    "microstrain": "",
    "flags": "bit field (see flag_bits_json)",
    "q_uncertainty": "1/angstrom",
    "x_um": "micrometre",
    "y_um": "micrometre",
    "peak_frame": "",
    "reference_q": "1/angstrom",
}

LONG_NAMES: dict[str, str] = {
    "intensity": "integrated peak intensity per scan point",
    "mask": "points inside the particle (intensity >= mask_threshold * max, no fatal flag)",
    "q": "scattering vector (x, y, z) in the sample frame",
    "d_spacing": "d = 2 pi / |Q|",
    "strain": "(d - reference_d) / reference_d",
    "tilt_deg": "angle between Q and reference_q",
    "tilt_azimuth_deg": "azimuth of Q about reference_q, from peak-frame X towards Y",
    "sigma_q": "peak standard deviation along peak-frame X (rocking), Y (ring), Z (2theta)",
    "microstrain": "sigma_Z / |Q|",
    "flags": "quality flags",
    "q_uncertainty": "1-sigma counting-statistics error of q (x, y, z)",
    "x_um": "fast piezo position (pix) of each column",
    "y_um": "slow piezo position (piy) of each row",
    "peak_frame": "rows: unit vectors X (rocking), Y (ring), Z (along reference Q), sample frame",
    "reference_q": "mean Q over the mask (tilt reference)",
}

_MAP_FIELDS = (
    "intensity",
    "mask",
    "q",
    "d_spacing",
    "strain",
    "tilt_deg",
    "tilt_azimuth_deg",
    "sigma_q",
    "microstrain",
    "flags",
    "q_uncertainty",
)


@dataclass
class SxdmMaps:
    """Reduced SXDM maps of one scan series (see the module docstring for every field)."""

    intensity: np.ndarray
    mask: np.ndarray
    q: np.ndarray
    d_spacing: np.ndarray
    strain: np.ndarray
    tilt_deg: np.ndarray
    tilt_azimuth_deg: np.ndarray
    sigma_q: np.ndarray
    microstrain: np.ndarray
    flags: np.ndarray
    q_uncertainty: np.ndarray
    x_um: np.ndarray
    y_um: np.ndarray
    peak_frame: np.ndarray = field(default_factory=lambda: np.eye(3))
    reference_q: np.ndarray = field(default_factory=lambda: np.full(3, np.nan))
    reference_d: float = float("nan")
    params: dict = field(default_factory=dict)

    def __post_init__(self):
        shape = np.shape(self.intensity)
        if len(shape) != 2:
            raise ValueError(f"SxdmMaps: intensity must be a 2-D (n_slow, n_fast) map, got shape {shape}")
        for name in _MAP_FIELDS:
            value = np.asarray(getattr(self, name))
            want = shape + (3,) if name in ("q", "sigma_q", "q_uncertainty") else shape
            if value.shape != want:
                raise ValueError(f"SxdmMaps: field {name!r} has shape {value.shape}, expected {want}")
        if np.shape(self.x_um) != (shape[1],) or np.shape(self.y_um) != (shape[0],):
            raise ValueError(
                f"SxdmMaps: axes x_um {np.shape(self.x_um)} / y_um {np.shape(self.y_um)} do not match "
                f"the map shape {shape} (x_um has n_fast = {shape[1]}, y_um n_slow = {shape[0]} entries)"
            )

    @property
    def shape(self) -> tuple[int, int]:
        """Map shape (n_slow, n_fast)."""
        return tuple(np.shape(self.intensity))

    @property
    def tilt_xy_deg(self) -> np.ndarray:
        """Tilt components (deg) about the peak frame: (..., 0) towards X, (..., 1) towards Y."""
        return tilt_components_deg(self.q, self.peak_frame)

    def flagged(self, name: str) -> np.ndarray:
        """Boolean map of points carrying flag ``name`` (a key of :data:`FLAG_BITS`)."""
        if name not in FLAG_BITS:
            raise KeyError(f"unknown flag {name!r}; known flags: {sorted(FLAG_BITS)}")
        return (np.asarray(self.flags) & FLAG_BITS[name]) != 0


# --------------------------------------------------------------------------------------------------
# derived quantities


def tilt_components_deg(q: np.ndarray, peak_frame: np.ndarray) -> np.ndarray:
    """Tilt of each Q towards the frame's X and Y (deg): ``atan2(q·X, q·Z)``, ``atan2(q·Y, q·Z)``."""
    qf = np.asarray(q) @ np.asarray(peak_frame).T
    return np.degrees(np.stack([np.arctan2(qf[..., 0], qf[..., 2]), np.arctan2(qf[..., 1], qf[..., 2])], -1))


def peak_frame_from(reference_q: np.ndarray, rocking_direction: np.ndarray) -> np.ndarray:
    """Orthonormal frame (rows X, Y, Z): Z ∥ ``reference_q``, X = rocking direction ⟂ Z, Y = Z × X.

    ``rocking_direction`` is dQ/d(eta) in the sample frame (any length); raises ``ValueError`` when it
    is parallel to Q (the rocking would not move the peak sideways).
    """
    z = np.asarray(reference_q, float)
    norm = np.linalg.norm(z)
    if not np.isfinite(norm) or norm == 0:
        raise ValueError(f"reference Q {z} has no direction: cannot build the peak frame")
    z = z / norm
    x = np.asarray(rocking_direction, float)
    x = x - (x @ z) * z
    if np.linalg.norm(x) < 1e-12:
        raise ValueError("the rocking direction is parallel to Q: no peak frame (check the eta axis)")
    x = x / np.linalg.norm(x)
    return np.stack([x, np.cross(z, x), z])


def derive_maps(
    intensity,
    q,
    sigma_q,
    flags,
    q_uncertainty,
    x_um,
    y_um,
    rocking_direction,
    mask_threshold: float = 0.2,
    reference_d: float | None = None,
    params: dict | None = None,
) -> SxdmMaps:
    """Build :class:`SxdmMaps` from per-point Q, widths and flags: mask, d, strain, tilt, microstrain.

    Parameters
    ----------
    intensity : (ny, nx) integrated counts; q, sigma_q, q_uncertainty : (ny, nx, 3) Å⁻¹
        (``sigma_q`` already in the peak frame X, Y, Z: see :func:`helpers.sxdm.peaks`);
    flags : (ny, nx) uint16; x_um, y_um : piezo axes (µm);
    rocking_direction : dQ/d(eta) in the sample frame, fixes the peak frame's X;
    mask_threshold : fraction of the maximum intensity (paper: 0.2);
    reference_d : d_ref (Å) of the strain; ``None`` = mean d over the mask.
    """
    if reference_d is not None and not (np.isfinite(reference_d) and reference_d > 0):
        raise ValueError(f"reference d = {reference_d} Å: it must be a positive d-spacing in Å")
    if not 0.0 <= mask_threshold < 1.0:
        raise ValueError(f"mask threshold {mask_threshold} must be a fraction of the maximum in [0, 1)")
    intensity = np.asarray(intensity, float)
    q = np.asarray(q, float)
    flags = np.asarray(flags, np.uint16)
    mask = threshold_mask(intensity, flags, mask_threshold)
    q_norm = np.linalg.norm(q, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        d_spacing = 2.0 * np.pi / q_norm
    reference_q = np.mean(q[mask], axis=0)
    frame = peak_frame_from(reference_q, rocking_direction)
    d_ref = float(np.mean(d_spacing[mask])) if reference_d is None else float(reference_d)
    sigma_q = np.asarray(sigma_q, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        microstrain = sigma_q[..., 2] / q_norm
    tilt_deg, azimuth_deg = tilt_and_azimuth_deg(q, frame)
    all_params = dict(params or {})
    all_params.update(mask_threshold=float(mask_threshold), reference_d_given=reference_d is not None)
    return SxdmMaps(
        intensity=intensity,
        mask=mask,
        q=q,
        d_spacing=d_spacing,
        strain=(d_spacing - d_ref) / d_ref,
        tilt_deg=tilt_deg,
        tilt_azimuth_deg=azimuth_deg,
        sigma_q=sigma_q,
        microstrain=microstrain,
        flags=flags,
        q_uncertainty=np.asarray(q_uncertainty, float),
        x_um=np.asarray(x_um, float),
        y_um=np.asarray(y_um, float),
        peak_frame=frame,
        reference_q=reference_q,
        reference_d=d_ref,
        params=all_params,
    )


def threshold_mask(intensity: np.ndarray, flags: np.ndarray, mask_threshold: float) -> np.ndarray:
    """Points with ``intensity ≥ mask_threshold · max`` and no fatal flag; ``ValueError`` if none."""
    intensity = np.asarray(intensity, float)
    usable = np.isfinite(intensity) & ((np.asarray(flags) & FATAL_FLAGS) == 0)
    if not np.any(usable & (intensity > 0)):
        raise ValueError(
            "no scan point has usable counts (all frames zero, NaN monitor or every point below the "
            "minimum counts): check the detector name, ROI and monitor of the input"
        )
    top = np.max(intensity[usable])
    mask = usable & (intensity >= mask_threshold * top)
    if not np.any(mask):  # pragma: no cover - top itself always passes
        raise ValueError(f"empty mask at threshold {mask_threshold} of the maximum {top:.4g}")
    return mask


def tilt_and_azimuth_deg(q: np.ndarray, peak_frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tilt magnitude (deg, angle to frame Z) and azimuth (deg, from X towards Y) of every Q."""
    qf = np.asarray(q, float) @ np.asarray(peak_frame, float).T
    perp = np.hypot(qf[..., 0], qf[..., 1])
    return np.degrees(np.arctan2(perp, qf[..., 2])), np.degrees(np.arctan2(qf[..., 1], qf[..., 0]))


def apply_mask_threshold(maps: SxdmMaps, mask_threshold: float, reference_d: float | None = None) -> SxdmMaps:
    """The same maps re-derived with another mask threshold (and reference d); no re-reduction."""
    rocking = maps.peak_frame[0]
    params = {k: v for k, v in maps.params.items() if k not in ("mask_threshold", "reference_d_given")}
    return derive_maps(
        maps.intensity,
        maps.q,
        maps.sigma_q,
        maps.flags,
        maps.q_uncertainty,
        maps.x_um,
        maps.y_um,
        rocking,
        mask_threshold=mask_threshold,
        reference_d=reference_d,
        params=params,
    )


def d_histogram(maps: SxdmMaps, bins: int = 60) -> tuple[np.ndarray, np.ndarray, float]:
    """Histogram of d over the mask: (counts, bin edges in Å, relative width std(d)/mean(d)).

    The relative width is the paper's "powder-like" microstrain Δd/d (Fig. 1E).
    """
    d = maps.d_spacing[maps.mask & np.isfinite(maps.d_spacing)]
    if d.size == 0:
        raise ValueError("d histogram: the mask holds no point with a finite d-spacing")
    counts, edges = np.histogram(d, bins=bins)
    return counts, edges, float(np.std(d) / np.mean(d))




def _attr_value(value):
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, float, str, np.integer, np.floating)):
        return value
    if value is None:
        return "None"
    return json.dumps(value, default=str)


def write_maps(path, maps: SxdmMaps, provenance: dict | None = None) -> Path:
    """Write ``maps`` to an HDF5 results file (layout in the module docstring); returns the path.

    ``provenance`` holds at least ``input_file`` (and ``input_sha256``, computed when missing and the
    file exists); any other entries are stored as root attributes. The file is written to a
    temporary name in the same folder and renamed only when complete.
    """
    import h5py

    from helpers import __version__

    path = Path(path)
    if not path.parent.is_dir():
        raise OSError(f"cannot write {path}: folder {path.parent} does not exist")
    provenance = dict(provenance or {})
    input_file = provenance.get("input_file")
    if input_file and "input_sha256" not in provenance and Path(input_file).is_file():
        provenance["input_sha256"] = file_sha256(input_file)
    handle_fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(handle_fd)
    try:
        with h5py.File(tmp_name, "w") as h5:
            h5.attrs["format"] = FORMAT_NAME
            h5.attrs["software"] = f"nmc-xray-workbook {__version__}"
            h5.attrs["created_utc"] = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            for key, value in provenance.items():
                h5.attrs[key] = _attr_value(value)
            group = h5.create_group("maps")
            for name in (*_MAP_FIELDS, "x_um", "y_um", "peak_frame", "reference_q"):
                value = np.asarray(getattr(maps, name))
                compression = {"compression": "gzip", "compression_opts": 4} if value.ndim >= 2 else {}
                dset = group.create_dataset(name, data=value, **compression)
                dset.attrs["units"] = UNITS[name]
                dset.attrs["long_name"] = LONG_NAMES[name]
            group["y_um"].make_scale("y_um")
            group["x_um"].make_scale("x_um")
            for name in _MAP_FIELDS:
                group[name].dims[0].attach_scale(group["y_um"])
                group[name].dims[1].attach_scale(group["x_um"])
            group.attrs["reference_d_A"] = float(maps.reference_d)
            group.attrs["params_json"] = json.dumps(maps.params, default=str, sort_keys=True)
            group.attrs["flag_bits_json"] = json.dumps(FLAG_BITS)
            for key, value in maps.params.items():
                group.attrs[key] = _attr_value(value)
            nexus.mark_maps(h5, "maps", signal="strain")  # NXdata view for silx view / h5web
            h5.attrs["complete"] = True
        os.replace(tmp_name, path)
    except BaseException:
        if os.path.exists(tmp_name):
            os.remove(tmp_name)
        raise
    return path


def read_maps(path) -> SxdmMaps:
    """Read a results file written by :func:`write_maps`; ``OSError`` if it is incomplete or foreign."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise OSError(f"maps file {path} does not exist")
    with h5py.File(path, "r") as h5:
        if h5.attrs.get("format") != FORMAT_NAME:
            raise OSError(f"{path} is not an SXDM maps file (format attribute {h5.attrs.get('format')!r})")
        if not bool(h5.attrs.get("complete", False)):
            raise OSError(f"{path} is incomplete (the reduction that wrote it did not finish): re-run it")
        if "maps" not in h5:
            raise KeyError(f"{path}: group /maps is missing")
        group = h5["maps"]
        values = {}
        for fld in fields(SxdmMaps):
            if fld.name in ("params", "reference_d"):
                continue
            if fld.name not in group:
                raise KeyError(f"{path}: dataset /maps/{fld.name} is missing")
            values[fld.name] = group[fld.name][()]
        values["reference_d"] = float(group.attrs["reference_d_A"])
        values["params"] = json.loads(group.attrs.get("params_json", "{}"))
    return SxdmMaps(**values)


def read_provenance(path) -> dict:
    """Root attributes of a maps file (input file, checksum, software, creation time, complete)."""
    import h5py

    from helpers.provenance import INPUT_SHA256, stored_input_sha256

    with h5py.File(path, "r") as h5:
        attrs = {key: (v.item() if hasattr(v, "item") else v) for key, v in h5.attrs.items()}
    if stored_input_sha256(attrs) is not None:
        attrs[INPUT_SHA256] = stored_input_sha256(attrs)  # files with the older ``input_checksum``
    return attrs


# --------------------------------------------------------------------------------------------------
# comparison with a known Q field (forward-model truth, or another reduction)


def reference_maps(maps: SxdmMaps, q_ref: np.ndarray) -> dict:
    """Strain, tilt and their errors of another Q field ``q_ref`` (ny, nx, 3) in ``maps``'s conventions.

    ``q_ref=None`` returns the same keys filled with NaN (a file without truth).

    Strain is relative to ``q_ref``'s own mean d over ``maps.mask``, tilt to the same peak frame and
    relative to ``q_ref``'s mean tilt over the mask, so that a constant offset (a reference choice)
    is not counted as an error. Returns arrays ``strain``, ``tilt_xy_deg``, ``tilt_deg``,
    ``tilt_azimuth_deg``, ``d_spacing`` and the RMSEs ``strain_rmse``, ``tilt_rmse_deg`` over the mask.
    """
    if q_ref is None:  # no reference (a measured file without truth): NaN maps, NaN errors
        nan = np.full(maps.shape, np.nan)
        return {"strain": nan, "d_spacing": nan, "tilt_xy_deg": np.full(maps.shape + (2,), np.nan),
                "tilt_deg": nan, "tilt_azimuth_deg": nan, "strain_error": nan, "tilt_error_deg": nan,
                "strain_rmse": float("nan"), "tilt_rmse_deg": float("nan")}
    q_ref = np.asarray(q_ref, float)
    mask = maps.mask & np.isfinite(q_ref).all(axis=-1) & np.isfinite(maps.q).all(axis=-1)
    d_ref = 2 * np.pi / np.linalg.norm(q_ref, axis=-1)
    strain_ref = d_ref / np.mean(d_ref[mask]) - 1
    strain = maps.d_spacing / np.mean(maps.d_spacing[mask]) - 1
    txy_ref = tilt_components_deg(q_ref, maps.peak_frame)
    txy = maps.tilt_xy_deg
    txy_ref = txy_ref - txy_ref[mask].mean(axis=0)
    txy = txy - txy[mask].mean(axis=0)
    q_rot = np.mean(q_ref[mask], axis=0)
    tilt_ref, az_ref = tilt_and_azimuth_deg(q_ref, peak_frame_from(q_rot, maps.peak_frame[0]))
    return {
        "strain": strain_ref,
        "d_spacing": d_ref,
        "tilt_xy_deg": txy_ref,
        "tilt_deg": tilt_ref,
        "tilt_azimuth_deg": az_ref,
        "strain_error": np.where(mask, strain - strain_ref, np.nan),
        "tilt_error_deg": np.where(mask, np.linalg.norm(txy - txy_ref, axis=-1), np.nan),
        "strain_rmse": float(np.sqrt(np.mean((strain - strain_ref)[mask] ** 2))),
        "tilt_rmse_deg": float(np.sqrt(np.mean(np.sum((txy - txy_ref)[mask] ** 2, axis=-1)))),
    }


# --------------------------------------------------------------------------------------------------
# figures (pure functions of an Axes; the notebook's widgets wrap the same functions)


def map_extent(maps: SxdmMaps) -> list[float]:
    """imshow extent (µm) of the scan raster, pixel edges included."""
    x, y = np.asarray(maps.x_um), np.asarray(maps.y_um)
    dx = x[1] - x[0] if x.size > 1 else 1.0
    dy = y[1] - y[0] if y.size > 1 else 1.0
    return [x[0] - dx / 2, x[-1] + dx / 2, y[0] - dy / 2, y[-1] + dy / 2]


def plot_map(ax, maps: SxdmMaps, values, label: str = "", cmap: str = "viridis", vmin=None, vmax=None,
             masked: bool = True, colorbar: bool = True):
    """One map over the raster (x = pix, y = piy, µm); points outside the mask blank when ``masked``."""
    values = np.asarray(values, float)
    shown = np.where(maps.mask, values, np.nan) if masked else values
    image = ax.imshow(shown, origin="lower", extent=map_extent(maps), cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    if label:
        ax.set_title(label, fontsize=9)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, shrink=0.8)
    return image


def tilt_colours(tilt_deg, azimuth_deg, mask, max_tilt_deg: float | None = None) -> np.ndarray:
    """RGB (…, 3): hue = tilt azimuth, brightness = tilt magnitude / ``max_tilt_deg`` (Fig. 2B, 3B)."""
    from matplotlib.colors import hsv_to_rgb

    tilt = np.nan_to_num(np.asarray(tilt_deg, float))
    top = max_tilt_deg or (np.percentile(tilt[mask], 98) if np.any(mask) else 1.0)
    top = float(top) if np.isfinite(top) and top > 0 else 1.0
    hsv = np.stack(
        [
            (np.nan_to_num(np.asarray(azimuth_deg, float)) % 360.0) / 360.0,
            np.ones_like(tilt),
            np.clip(tilt / top, 0.0, 1.0),
        ],
        axis=-1,
    )
    rgb = hsv_to_rgb(hsv)
    rgb[~np.asarray(mask, bool)] = 1.0
    return rgb


def plot_tilt_map(ax, maps: SxdmMaps, tilt_deg=None, azimuth_deg=None, max_tilt_deg=None, title="tilt"):
    """Tilt map coloured by azimuth (hue) and magnitude (brightness); returns the RGB array."""
    tilt = maps.tilt_deg if tilt_deg is None else tilt_deg
    az = maps.tilt_azimuth_deg if azimuth_deg is None else azimuth_deg
    rgb = tilt_colours(tilt, az, maps.mask, max_tilt_deg)
    ax.imshow(rgb, origin="lower", extent=map_extent(maps))
    ax.set_xlabel("x (µm)")
    ax.set_ylabel("y (µm)")
    ax.set_title(title, fontsize=9)
    return rgb


def plot_pole_figure(ax, maps: SxdmMaps, tilt_deg=None, azimuth_deg=None, max_tilt_deg=None, title=""):
    """Pole figure: each masked point at (tilt cos az, tilt sin az) (deg), in its tilt-map colour."""
    tilt = maps.tilt_deg if tilt_deg is None else tilt_deg
    az = maps.tilt_azimuth_deg if azimuth_deg is None else azimuth_deg
    rgb = tilt_colours(tilt, az, maps.mask, max_tilt_deg)
    m = maps.mask
    t, a = np.asarray(tilt)[m], np.radians(np.asarray(az)[m])
    ax.scatter(t * np.cos(a), t * np.sin(a), c=rgb[m], s=8, edgecolors="0.3", linewidths=0.2)
    ax.axhline(0, color="0.7", lw=0.5)
    ax.axvline(0, color="0.7", lw=0.5)
    finite = t[np.isfinite(t)]
    reach = 1.1 * float(finite.max()) if finite.size and finite.max() > 0 else 1.0
    ax.set_xlim(-reach, reach)
    ax.set_ylim(-reach, reach)
    ax.set_aspect("equal")
    ax.set_xlabel("tilt towards X (deg)")
    ax.set_ylabel("tilt towards Y (deg)")
    if title:
        ax.set_title(title, fontsize=9)


def plot_d_histogram(ax, maps: SxdmMaps, d_truth=None, bins: int = 40):
    """Histogram of d over the mask (Fig. 1E), with the truth's histogram when given."""
    counts, edges, width = d_histogram(maps, bins)
    ax.stairs(counts, edges, label=f"recovered, Δd/d = {width:.2e}", color="C0")
    if d_truth is not None:
        d_t = np.asarray(d_truth)[maps.mask & np.isfinite(d_truth)]
        ax.hist(d_t, bins=edges, histtype="step", color="k", ls="--",
                label=f"truth, Δd/d = {np.std(d_t) / np.mean(d_t):.2e}")
    ax.set_xlabel("d (Å)")
    ax.set_ylabel("scan points")
    ax.legend(fontsize=7)
