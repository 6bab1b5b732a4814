"""ID01 SXDM files: read the BLISS multi-entry layout and XSOCS master files as one series, stream frames.

Reading (stable API; other modules code against it)
---------------------------------------------------
``list_sxdm_scans(path) -> list[dict]``
    Every entry of a BLISS dataset file or XSOCS master file with keys ``scan``, ``title``, ``is_sxdm``,
    ``eta_deg``, ``n_frames``.
``group_sxdm_series(path) -> list[list[str]]``
    SXDM entries grouped into series (consecutive entries with the same scan grid).
``open_sxdm_series(path, detector=None, roi=None, scans=None, geometry=None) -> SxdmSeries``
    One SXDM series: all SXDM entries of the file (or the listed ``scans``), one per rocking angle,
    sorted by eta. ``detector`` picks the detector group when several exist (aliases ``mpx1x4``,
    ``mpxgaas``, ``maxipix``, ``eiger2M``, ``merlin``, ``andor_zyla``, ``detector``). ``roi`` =
    (row0, row1, col0, col1) in full-detector pixels crops the frames lazily (must lie inside the stored
    frames). ``geometry`` = {distance_m, pixel_size_m,
    beam_center_px, wavelength_m} overrides (or supplies) the file's calibration.

``SxdmSeries`` attributes
    ``path``, ``kind`` ("bliss" or "xsocs"), ``scans`` (entry names, in eta order), ``detector``,
    ``eta_deg`` (n_eta,), ``phi_deg``, ``nu_deg``, ``delta_deg`` (each (n_eta,), deg),
    ``wavelength_m``, ``energy_kev``, ``distance_m``, ``pixel_size_m`` (float; rows and columns equal),
    ``beam_center_px`` (row, col) of the direct beam in **full-detector** pixels, ``detector_shape``,
    ``roi`` (row0, row1, col0, col1): full-detector pixels of the frames yielded, ``frame_shape`` (ny, nx),
    ``pixel_mask`` (ny, nx) bool, True = bad (gaps, hot, dead), ``scan_shape`` (n_slow, n_fast),
    ``n_points``, ``n_eta``, ``x_um``/``y_um`` (n_slow, n_fast) piezo positions averaged over the eta maps,
    ``positions_um`` (n_eta, n_points, 2) as measured (x = fast ``pix``, y = slow ``piy``), ``monitor``
    (n_eta, n_points) (ones when the file has none), ``monitor_name``, ``title``.
``SxdmSeries.iter_chunks(points_per_chunk)``
    Yields ``(point_slice, frames)`` with frames float32 (n_chunk, n_eta, ny, nx), raw counts, read
    lazily: memory ≈ 4·points_per_chunk·n_eta·ny·nx bytes. Point index = slow·n_fast + fast.
``SxdmSeries.read_points(point_slice)``, ``SxdmSeries.q_vectors()`` → (n_eta, ny, nx, 3) 1/Å via
:func:`helpers.sxdm.geometry.pixel_q_vectors`.

The BLISS *writer* used by the simulators is :func:`helpers.synthetic.bliss_writer.write_bliss_sxdm`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from helpers.sxdm import calibration
from helpers.sxdm import geometry as geo

DETECTOR_ALIASES = ("mpx1x4", "mpxgaas", "maxipix", "mpx4", "eiger2M", "merlin", "andor_zyla", "detector")
_SXDM_TITLE = re.compile(r"(sxdm|kmap)", re.IGNORECASE)
_TITLE = re.compile(
    r"^\s*(?P<command>[A-Za-z_]+)\(\s*(?P<m0>[^,\s]+)\s*,\s*(?P<s0>[^,]+),\s*(?P<e0>[^,]+),\s*(?P<n0>[^,]+),"
    r"\s*(?P<m1>[^,\s]+)\s*,\s*(?P<s1>[^,]+),\s*(?P<e1>[^,]+),\s*(?P<n1>[^,]+),\s*(?P<expo>[^,\s)]+)"
)
_POSITION_NAMES = {
    # measurement name -> (axis, scale to µm); adcY is pix and adcX is piy in XSOCS files
    "pix_position": ("x", 1.0),
    "piy_position": ("y", 1.0),
    "pix": ("x", 1.0),
    "piy": ("y", 1.0),
    "adcY": ("x", 1.0),
    "adcX": ("y", 1.0),
}
_MONITOR_NAMES = ("mon1", "monitor", "mon", "ion_mon", "I0", "imon")


def _text(value) -> str:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.ndarray) and value.dtype.kind in "SO":
        return _text(value[()] if value.ndim == 0 else value.ravel()[0])
    return str(value)


def parse_sxdm_title(title: str) -> dict:
    """Parse ``asxdm( pix, x0, x1, nx, piy, y0, y1, ny, expo )`` (also sxdm/kmap, SPEC spacing).

    Returns motor names, start/end (µm) and number of points of the fast (0) and slow (1) axes.
    """
    text = title.replace(" ", " ").strip()
    match = _TITLE.match(text)
    if match is None:
        parts = text.split()
        if len(parts) >= 10:
            keys = ("command", "m0", "s0", "e0", "n0", "m1", "s1", "e1", "n1", "expo")
            groups = dict(zip(keys, parts[:10], strict=True))
        else:
            raise ValueError(
                f"scan title {title!r} is not an SXDM command 'asxdm( pix, x0, x1, nx, piy, ...)'"
            )
    else:
        groups = match.groupdict()
    try:
        return {
            "command": groups["command"],
            "fast_motor": groups["m0"],
            "fast_start": float(groups["s0"]),
            "fast_end": float(groups["e0"]),
            "n_fast": int(float(groups["n0"])),
            "slow_motor": groups["m1"],
            "slow_start": float(groups["s1"]),
            "slow_end": float(groups["e1"]),
            "n_slow": int(float(groups["n1"])),
            "exposure_s": float(groups["expo"]),
        }
    except ValueError as err:
        raise ValueError(f"scan title {title!r}: cannot read the scan grid ({err})") from err


def open_hdf5(path: Path) -> h5py.File:
    """An SXDM file opened read-only, with the compression filters of real detector files registered."""
    try:  # real Lima detector files are bitshuffle/LZ4-compressed: register the filters if available
        import hdf5plugin  # noqa: F401
    except ImportError:
        pass
    if not path.exists():
        raise FileNotFoundError(f"SXDM file {path} does not exist")
    try:
        return h5py.File(path, "r")
    except OSError as err:
        raise OSError(f"cannot read {path} as HDF5 ({err}); is it a complete BLISS/XSOCS file?") from err


def _entry_number(name: str) -> tuple[float, str]:
    try:
        return float(name), name
    except ValueError:
        match = re.search(r"(\d+)(?:\.(\d+))?$", name)
        return (float(match.group(0)) if match else float("inf")), name


def list_sxdm_scans(path) -> list[dict]:
    """Entries of a BLISS dataset or XSOCS master file, with title, SXDM flag, eta and frame count."""
    path = Path(path)
    rows = []
    with open_hdf5(path) as h5:
        for name in sorted(h5, key=_entry_number):
            try:
                entry = h5[name]
            except (KeyError, OSError) as err:
                raise OSError(f"{path}: entry /{name} cannot be opened ({err})") from err
            if not isinstance(entry, h5py.Group):
                continue
            title = _text(entry["title"][()]) if "title" in entry else ""
            eta = entry.get("instrument/positioners/eta")
            n_frames = None
            for det in DETECTOR_ALIASES:
                for key in (f"measurement/{det}", "measurement/image/data"):
                    try:
                        if key in entry:
                            n_frames = entry[key].shape[0]
                            break
                    except (KeyError, OSError):
                        continue
                if n_frames is not None:
                    break
            rows.append(
                {
                    "scan": name,
                    "title": title,
                    "is_sxdm": bool(_SXDM_TITLE.search(title)),
                    "eta_deg": float(np.asarray(eta[()]).ravel()[0]) if eta is not None else float("nan"),
                    "n_frames": n_frames,
                }
            )
    return rows


def group_sxdm_series(path) -> list[list[str]]:
    """SXDM entries of a file grouped into series: runs of consecutive entries with the same scan grid.

    A beamtime file often holds several SXDM series (other particles, other grids); pass one group as
    ``scans=`` to :func:`open_sxdm_series`.
    """
    groups: list[list[str]] = []
    last_key = None
    for row in list_sxdm_scans(path):
        if not row["is_sxdm"]:
            last_key = None
            continue
        grid = parse_sxdm_title(row["title"])
        key = tuple(
            grid[k]
            for k in (
                "fast_motor",
                "fast_start",
                "fast_end",
                "n_fast",
                "slow_motor",
                "slow_start",
                "slow_end",
                "n_slow",
            )
        )
        if key != last_key:
            groups.append([])
            last_key = key
        groups[-1].append(row["scan"])
    return groups


@dataclass
class SxdmSeries:
    """One SXDM series (one entry per eta) of a BLISS or XSOCS file; see the module docstring."""

    path: Path
    kind: str
    scans: list[str]
    detector: str
    title: str
    eta_deg: np.ndarray
    phi_deg: np.ndarray
    nu_deg: np.ndarray
    delta_deg: np.ndarray
    wavelength_m: float
    distance_m: float
    pixel_size_m: float
    beam_center_px: tuple[float, float]
    detector_shape: tuple[int, int]
    roi: tuple[int, int, int, int]
    stored_roi: tuple[int, int, int, int]
    pixel_mask: np.ndarray
    scan_shape: tuple[int, int]
    positions_um: np.ndarray
    monitor: np.ndarray
    monitor_name: str | None
    frame_paths: list[str] = field(repr=False, default_factory=list)

    @property
    def energy_kev(self) -> float:
        return geo.energy_from_wavelength_kev(self.wavelength_m)

    @property
    def n_eta(self) -> int:
        return int(self.eta_deg.size)

    @property
    def n_points(self) -> int:
        return int(self.scan_shape[0] * self.scan_shape[1])

    @property
    def frame_shape(self) -> tuple[int, int]:
        return self.roi[1] - self.roi[0], self.roi[3] - self.roi[2]

    @property
    def x_um(self) -> np.ndarray:
        """Fast-axis (pix) positions (µm), mean over eta maps, shape (n_slow, n_fast)."""
        return self.positions_um[..., 0].mean(axis=0).reshape(self.scan_shape)

    @property
    def y_um(self) -> np.ndarray:
        """Slow-axis (piy) positions (µm), mean over eta maps, shape (n_slow, n_fast)."""
        return self.positions_um[..., 1].mean(axis=0).reshape(self.scan_shape)

    def q_vectors(self) -> np.ndarray:
        """Q (1/Å, sample frame) of every ROI pixel at every eta: (n_eta, ny, nx, 3) float64."""
        return geo.pixel_q_vectors(
            self.eta_deg,
            self.phi_deg,
            self.nu_deg,
            self.delta_deg,
            self.wavelength_m,
            self.distance_m,
            self.pixel_size_m,
            self.beam_center_px,
            self.detector_shape,
            roi=self.roi,
        )

    def read_points(self, point_slice: slice, h5: h5py.File | None = None) -> np.ndarray:
        """Frames of scan points ``point_slice``: float32 (n_chunk, n_eta, ny, nx), raw counts."""
        start, stop, step = point_slice.indices(self.n_points)
        if step != 1:
            raise ValueError("point_slice must be contiguous (step 1)")
        r0 = self.roi[0] - self.stored_roi[0]
        c0 = self.roi[2] - self.stored_roi[2]
        ny, nx = self.frame_shape
        out = np.empty((stop - start, self.n_eta, ny, nx), dtype=np.float32)
        own = h5 is None
        h5 = open_hdf5(self.path) if own else h5
        buffer = None
        try:
            for k, frame_path in enumerate(self.frame_paths):
                try:
                    dset = h5[frame_path]
                    # one contiguous buffer in the stored dtype, reused for every eta, then cast: 2–5×
                    # faster than ``dset[sel]`` (a new array each time) or HDF5 converting into the
                    # strided ``out[:, k]`` (element by element)
                    if buffer is None or buffer.dtype != dset.dtype:
                        buffer = np.empty((stop - start, ny, nx), dset.dtype)
                    if stop > start:
                        dset.read_direct(buffer, np.s_[start:stop, r0 : r0 + ny, c0 : c0 + nx])
                    out[:, k] = buffer
                except (OSError, KeyError) as err:
                    raise OSError(
                        f"{self.path}: frames {frame_path} (points {start}:{stop}) cannot be read ({err}); "
                        "the detector file may be truncated or missing"
                    ) from err
        finally:
            if own:
                h5.close()
        return out

    def iter_chunks(self, points_per_chunk: int = 64) -> Iterator[tuple[slice, np.ndarray]]:
        """Yield (point_slice, frames float32 (n_chunk, n_eta, ny, nx)) over all scan points, lazily."""
        if points_per_chunk < 1:
            raise ValueError(f"points_per_chunk must be >= 1, got {points_per_chunk}")
        with open_hdf5(self.path) as h5:
            for start in range(0, self.n_points, points_per_chunk):
                sl = slice(start, min(start + points_per_chunk, self.n_points))
                yield sl, self.read_points(sl, h5)


def _find_detector(path: Path, entry: h5py.Group, scan: str, detector: str | None, kind: str) -> str:
    if kind == "xsocs":
        return "image"
    instr = entry.get("instrument")
    if instr is None:
        raise KeyError(f"{path}: /{scan}/instrument is missing; not a BLISS scan entry")
    if detector is not None:
        if detector not in instr:
            raise KeyError(
                f"{path}: detector {detector!r} not found in /{scan}/instrument (groups: {sorted(instr)})"
            )
        return detector
    found = [d for d in DETECTOR_ALIASES if d in instr]
    if not found:
        found = [
            name
            for name, obj in instr.items()
            if isinstance(obj, h5py.Group)
            and _text(obj.attrs.get("NX_class", "")) == "NXdetector"
            and "image" in obj
        ]
    if not found:
        raise KeyError(
            f"{path}: no detector group in /{scan}/instrument (looked for {DETECTOR_ALIASES}); "
            "pass detector=<name>"
        )
    if len(found) > 1:
        raise ValueError(f"{path}: several detectors in /{scan}/instrument: {found}; pass detector=<name>")
    return found[0]


def _check_vds_sources(path: Path, dset: h5py.Dataset, where: str):
    if not dset.is_virtual:
        return
    for source in dset.virtual_sources():
        name = source.file_name
        # relative source names resolve from the file that holds the virtual dataset (XSOCS masters
        # reach it through external links, so that is not necessarily ``path``)
        holder = Path(dset.file.filename).parent
        candidate = Path(name) if Path(name).is_absolute() else holder / name
        if name == ".":
            continue
        if not candidate.exists():
            raise OSError(f"{path}: {where} points to detector file {candidate}, which does not exist")
        try:
            with h5py.File(candidate, "r") as src:
                shape = src[source.dset_name].shape
        except (OSError, KeyError) as err:
            raise OSError(
                f"{path}: {where} points to detector file {candidate}, which cannot be read ({err}); "
                "it may be truncated"
            ) from err
        # frames this source must supply: the end of its selection (a scan may span several files)
        space = source.src_space
        if space.get_select_type() == h5py.h5s.SEL_HYPERSLABS:
            needed = int(space.get_select_bounds()[1][0]) + 1
        else:  # the whole source: as many frames as it fills in the virtual dataset
            start, stop = source.vspace.get_select_bounds()
            needed = int(stop[0] - start[0]) + 1
        if shape[0] < needed:
            raise OSError(
                f"{path}: detector file {candidate} holds {shape[0]} frames but {where} expects "
                f"{needed} from it"
            )


def _read_positions(path: Path, entry: h5py.Group, scan: str, n_points: int) -> np.ndarray:
    pos = np.full((n_points, 2), np.nan)
    found = [False, False]
    for where in ("measurement", "instrument"):
        grp = entry.get(where)
        if grp is None:
            continue
        for name, (axis, scale) in _POSITION_NAMES.items():
            if found[0 if axis == "x" else 1] or name not in grp:
                continue
            obj = grp[name]
            if isinstance(obj, h5py.Group):
                if "value" not in obj:
                    continue
                obj = obj["value"]
            if obj.ndim != 1:
                continue
            values = np.asarray(obj[()], dtype=np.float64) * scale
            if values.shape != (n_points,):
                raise ValueError(
                    f"{path}: /{scan}/{where}/{name} has {values.size} positions but the scan has "
                    f"{n_points} frames"
                )
            idx = 0 if axis == "x" else 1
            pos[:, idx] = values
            found[idx] = True
    if not all(found):
        missing = [
            a for a, f in zip(("x (pix_position/adcY)", "y (piy_position/adcX)"), found, strict=True) if not f
        ]
        raise KeyError(f"{path}: /{scan}/measurement has no piezo positions for {missing}")
    if not np.all(np.isfinite(pos)):
        bad = np.flatnonzero(~np.all(np.isfinite(pos), axis=1))
        raise ValueError(
            f"{path}: /{scan} has NaN/inf piezo positions at {bad.size} scan points "
            f"(first: {bad[:5].tolist()}); "
            "the scan was probably interrupted; exclude it with scans=[...]"
        )
    return pos


def open_sxdm_series(
    path, detector: str | None = None, roi=None, scans=None, geometry: dict | None = None
) -> SxdmSeries:
    """Open an SXDM series of a BLISS dataset file or XSOCS master file (see module docstring).

    ``geometry`` overrides (or supplies, when the file lacks them) calibration values: any of
    ``distance_m``, ``pixel_size_m``, ``beam_center_px`` (row, col, full detector), ``wavelength_m``;
    real ID01 files often carry an uncalibrated detector distance and direct beam.
    """
    path = Path(path)
    geometry = dict(geometry or {})
    unknown = set(geometry) - {"distance_m", "pixel_size_m", "beam_center_px", "wavelength_m"}
    if unknown:
        raise KeyError(
            f"unknown geometry override(s) {sorted(unknown)}; use distance_m, pixel_size_m, beam_center_px, "
            "wavelength_m"
        )
    listing = list_sxdm_scans(path)
    by_name = {row["scan"]: row for row in listing}
    if scans is None:
        chosen = [row for row in listing if row["is_sxdm"]]
        if not chosen:
            raise ValueError(
                f"{path}: no SXDM scan (title with 'sxdm' or 'kmap') among {len(listing)} entries "
                f"({[row['scan'] + ': ' + row['title'] for row in listing[:5]]})"
            )
    else:
        chosen = []
        for scan in scans:
            name = scan if isinstance(scan, str) else f"{int(scan)}.1"
            if name not in by_name:
                raise KeyError(f"{path}: scan {name} not found (entries: {sorted(by_name)[:10]} ...)")
            if not by_name[name]["is_sxdm"]:
                raise ValueError(
                    f"{path}: scan {name} is not an SXDM scan (title {by_name[name]['title']!r}); "
                    "pick scans whose title is asxdm/sxdm/kmap"
                )
            chosen.append(by_name[name])
    with open_hdf5(path) as h5:
        kind = "xsocs" if calibration.is_xsocs_master(h5) else "bliss"
        first = h5[chosen[0]["scan"]]
        det = _find_detector(path, first, chosen[0]["scan"], detector, kind)
        grid = parse_sxdm_title(chosen[0]["title"])
        records = []
        for row in chosen:
            scan = row["scan"]
            entry = h5[scan]
            this_grid = parse_sxdm_title(row["title"])
            keys = (
                "fast_motor",
                "n_fast",
                "slow_motor",
                "n_slow",
                "fast_start",
                "fast_end",
                "slow_start",
                "slow_end",
            )
            if any(this_grid[k] != grid[k] for k in keys):
                raise ValueError(
                    f"{path}: scan {scan} has grid {row['title']!r} but scan {chosen[0]['scan']} has "
                    f"{chosen[0]['title']!r}; a series needs one scan grid (pick scans=[...], e.g. one "
                    "group of group_sxdm_series(path))"
                )
            records.append(_read_entry(path, entry, scan, det, kind, grid, geometry))
    order = np.argsort([r["eta"] for r in records], kind="stable")
    records = [records[i] for i in order]
    ref = records[0]
    for r in records[1:]:
        for key in ("frame_shape", "stored_roi", "detector_shape"):
            if r[key] != ref[key]:
                raise ValueError(
                    f"{path}: scan {r['scan']} has {key} {r[key]} but scan {ref['scan']} has {ref[key]}"
                )
    stored_roi = ref["stored_roi"]
    if roi is None:
        use_roi = stored_roi
    else:
        use_roi = tuple(int(v) for v in roi)
        if len(use_roi) != 4 or not (
            stored_roi[0] <= use_roi[0] < use_roi[1] <= stored_roi[1]
            and stored_roi[2] <= use_roi[2] < use_roi[3] <= stored_roi[3]
        ):
            raise ValueError(
                f"{path}: roi {roi} (row0, row1, col0, col1, full-detector pixels) must lie inside the "
                "stored "
                f"frames {stored_roi}"
            )
    mask_full = ref["mask_full"]
    mask = mask_full[use_roi[0] : use_roi[1], use_roi[2] : use_roi[3]]
    return SxdmSeries(
        path=path,
        kind=kind,
        scans=[r["scan"] for r in records],
        detector=det,
        title=ref["title"],
        eta_deg=np.array([r["eta"] for r in records]),
        phi_deg=np.array([r["phi"] for r in records]),
        nu_deg=np.array([r["nu"] for r in records]),
        delta_deg=np.array([r["delta"] for r in records]),
        wavelength_m=ref["wavelength_m"],
        distance_m=ref["distance_m"],
        pixel_size_m=ref["pixel_size_m"],
        beam_center_px=ref["beam_center_px"],
        detector_shape=ref["detector_shape"],
        roi=use_roi,
        stored_roi=stored_roi,
        pixel_mask=mask.copy(),
        scan_shape=(grid["n_slow"], grid["n_fast"]),
        positions_um=np.stack([r["positions"] for r in records]),
        monitor=np.stack([r["monitor"] for r in records]),
        monitor_name=ref["monitor_name"],
        frame_paths=[r["frame_path"] for r in records],
    )


def _read_entry(
    path: Path, entry: h5py.Group, scan: str, det: str, kind: str, grid: dict, geometry: dict | None = None
) -> dict:
    geometry = geometry or {}
    n_points = grid["n_fast"] * grid["n_slow"]
    where = f"/{scan}/measurement/{det}" if kind == "bliss" else f"/{scan}/measurement/image/data"
    try:
        frames = entry[where.split("/", 2)[2]]
    except KeyError as err:
        raise KeyError(f"{path}: frames {where} are missing ({err})") from err
    except OSError as err:
        raise OSError(
            f"{path}: frames {where} cannot be opened ({err}); detector file missing or truncated"
        ) from err
    if frames.ndim != 3:
        raise ValueError(f"{path}: {where} has shape {frames.shape}; expected (n_points, rows, cols)")
    if frames.shape[0] != n_points:
        raise ValueError(
            f"{path}: {where} holds {frames.shape[0]} frames but the title {grid['command']}(...) gives "
            f"{grid['n_fast']} x {grid['n_slow']} = {n_points} points"
        )
    _check_vds_sources(path, frames, where)
    frame_shape = tuple(int(v) for v in frames.shape[1:])
    pos_grp = entry.get("instrument/positioners")
    if pos_grp is None:
        raise KeyError(f"{path}: /{scan}/instrument/positioners is missing")
    angles = {}
    for name, keys in (("eta", ("eta",)), ("phi", ("phi",)), ("nu", ("nu",)), ("delta", ("delta", "del"))):
        key = next((k for k in keys if k in pos_grp), None)
        if key is None:
            raise KeyError(
                f"{path}: /{scan}/instrument/positioners/{keys[0]} (diffractometer angle) is missing"
            )
        angles[name] = float(np.asarray(pos_grp[key][()]).ravel()[0])
    if kind == "bliss":
        cal = calibration.bliss_calibration(path, entry, scan, det, frame_shape, geometry)
    else:
        cal = calibration.xsocs_calibration(path, entry, frame_shape, geometry)
    wavelength_m, distance_m, (py, px) = cal["wavelength_m"], cal["distance_m"], cal["pixel_size_m"]
    bc, offset = cal["beam_center_px"], cal["offset"]
    mask_full, det_shape = cal["mask_full"], cal["detector_shape"]
    if not np.isclose(px, py, rtol=1e-9):
        raise ValueError(f"{path}: /{scan}: non-square pixels ({py} x {px} m) are not supported")
    stored_roi = (offset[0], offset[0] + frame_shape[0], offset[1], offset[1] + frame_shape[1])
    if stored_roi[1] > det_shape[0] or stored_roi[3] > det_shape[1]:
        raise ValueError(
            f"{path}: /{scan}: frames of shape {frame_shape} at offset {offset} do not fit the detector "
            f"{det_shape}"
        )
    if mask_full is None:
        mask_full = np.zeros(det_shape, dtype=bool)
    elif mask_full.shape == frame_shape and mask_full.shape != tuple(det_shape):
        full = np.zeros(det_shape, dtype=bool)
        full[stored_roi[0] : stored_roi[1], stored_roi[2] : stored_roi[3]] = mask_full
        mask_full = full
    elif mask_full.shape != tuple(det_shape):
        raise ValueError(
            f"{path}: /{scan}/instrument/{det}/pixel_mask has shape {mask_full.shape} but the frames are "
            f"{frame_shape} (detector {tuple(det_shape)}); fix or remove the mask"
        )
    monitor_name, monitor = None, np.ones(n_points)
    meas = entry.get("measurement")
    for name in _MONITOR_NAMES:
        if meas is not None and name in meas and meas[name].shape == (n_points,):
            monitor_name, monitor = name, np.asarray(meas[name][()], dtype=np.float64)
            break
    return {
        "scan": scan,
        "title": _text(entry["title"][()]),
        "eta": angles["eta"],
        "phi": angles["phi"],
        "nu": angles["nu"],
        "delta": angles["delta"],
        "wavelength_m": wavelength_m,
        "distance_m": distance_m,
        "pixel_size_m": px,
        "beam_center_px": (bc[0] + offset[0], bc[1] + offset[1]),
        "detector_shape": tuple(int(v) for v in det_shape),
        "frame_shape": frame_shape,
        "stored_roi": stored_roi,
        "mask_full": mask_full,
        "positions": _read_positions(path, entry, scan, n_points),
        "monitor": monitor,
        "monitor_name": monitor_name,
        "frame_path": where,
    }
