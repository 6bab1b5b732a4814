"""Readers of tomography scans: NXtomo/NeXus (``image_key``), Data Exchange HDF5, TIFF and EDF stacks.

Every reader returns a :class:`TomoScan` that holds the flats, darks and angles in memory and reads the
projections lazily, a slab of detector rows at a time (:meth:`TomoScan.read_projections`), so a
scan larger than memory can be streamed. Input files are only ever opened read-only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from helpers.provenance import file_digest


@dataclass
class TomoScan:
    """One tomography scan (one distance): metadata in memory, projections read on demand.

    ``shape`` is (n_projections, n_rows, n_cols); ``angles_rad`` one per projection; ``flats``/``darks``
    (n, n_rows, n_cols) float32; ``pixel_size_m``, ``distance_m``, ``energy_kev`` may be None when the
    file does not say.
    """

    source: Path
    format: str
    shape: tuple[int, int, int]
    angles_rad: np.ndarray
    flats: np.ndarray
    darks: np.ndarray
    pixel_size_m: float | None = None
    distance_m: float | None = None
    energy_kev: float | None = None
    translation_px: tuple[float, float] | None = None
    dtype: np.dtype = field(default_factory=lambda: np.dtype(np.float32))
    _read_rows: Callable[[slice], np.ndarray] | None = field(default=None, repr=False)
    _read_frames: Callable[[int, int], np.ndarray] | None = field(default=None, repr=False)

    def read_projections(self, rows: slice = slice(None)) -> np.ndarray:
        """Projections of detector rows ``rows`` as float32, shape (n_projections, n_rows_in_slab, n_cols)."""
        return np.asarray(self._read_rows(rows), dtype=np.float32)

    def read_frames(self, start: int, stop: int) -> np.ndarray:
        """Whole projections ``start:stop`` as float32, shape (stop − start, n_rows, n_cols)."""
        if not 0 <= start <= stop <= self.shape[0]:
            raise ValueError(f"projection range {start}:{stop} outside 0:{self.shape[0]} of {self.source}")
        return np.asarray(self._read_frames(start, stop), dtype=np.float32)

    def flat_mean(self) -> np.ndarray:
        return self.flats.mean(axis=0, dtype=np.float64).astype(np.float32)

    def dark_mean(self) -> np.ndarray:
        return self.darks.mean(axis=0, dtype=np.float64).astype(np.float32)


def file_checksum(path: str | Path, algorithm: str = "sha256") -> str:
    """``"<algorithm>:<hex digest>"`` of a file (the input checksum attribute of reconstructions)."""
    return f"{algorithm}:{file_digest(path, algorithm)}"


def _validate(scan: TomoScan) -> TomoScan:
    """The checks every reader runs: flats/darks present and shaped right, angles match, flats > darks."""
    where = f"{scan.source} ({scan.format})"
    if len(scan.shape) != 3:
        raise ValueError(
            f"{where}: the frames have {len(scan.shape)} dimension(s) {tuple(scan.shape)}; a scan needs "
            "3 (frame, row, column): a single image or sinogram cannot be reconstructed here"
        )
    n, ny, nx = scan.shape
    if 0 in scan.shape:
        raise ValueError(f"{where}: no projections (frame stack shape {tuple(scan.shape)})")
    if scan.flats.size == 0:
        raise ValueError(f"{where}: no flat fields (image_key 1 / data_white) found; a scan needs flats")
    if scan.darks.size == 0:
        raise ValueError(
            f"{where}: no dark fields (image_key 2 / data_dark) found; add darks "
            "(or frames of a constant dark level)"
        )
    for name, stack in (("flats", scan.flats), ("darks", scan.darks)):
        if stack.shape[1:] != (ny, nx):
            raise ValueError(f"{where}: {name} have frame shape {stack.shape[1:]} but projections {(ny, nx)}")
    if len(scan.angles_rad) != n:
        raise ValueError(
            f"{where}: {len(scan.angles_rad)} rotation angles for {n} projections; they must match one to one"
        )
    diff = scan.flat_mean() - scan.dark_mean()
    bad = diff <= 0
    if bad.any():
        r, c = np.argwhere(bad)[0]
        raise ValueError(
            f"{where}: {int(bad.sum())} pixels have flat ≤ dark (first at row {r}, column {c}); "
            "the flat-field correction would divide by zero: check the flats or mask those pixels"
        )
    return scan


def _require_3d(shape: tuple[int, ...], where: str) -> None:
    if len(shape) != 3:
        raise ValueError(
            f"{where}: {len(shape)} dimension(s) {tuple(shape)}; tomography frames need 3 "
            "(frame, row, column): a single image or sinogram cannot be reconstructed here"
        )


def _nxtomo_entries(f) -> list[str]:
    out = []
    for key, item in f.items():
        if hasattr(item, "keys") and "instrument" in item and "detector" in item["instrument"]:
            if "data" in item["instrument/detector"] and "image_key" in item["instrument/detector"]:
                out.append(key)
    return sorted(out)


def list_nxtomo_entries(path: str | Path) -> list[str]:
    """Entries of an NXtomo file (one per distance in a holotomography scan)."""
    import h5py

    with h5py.File(path, "r") as f:
        return _nxtomo_entries(f)


def read_nxtomo(path: str | Path, entry: str | None = None) -> TomoScan:
    """Read an NXtomo entry with ESRF's ``nxtomo`` library (metadata, with units), frames read lazily.

    ``image_key`` 0 = projection, 1 = flat, 2 = dark, 3 = invalid (skipped). Angles, pixel size,
    propagation distance, energy and the stage position ``sample/{z,x}_translation`` are converted from
    the units ``nxtomo`` reads (pint); the stage position becomes ``translation_px`` (rows, cols).
    ``entry`` defaults to the first NXtomo entry.
    """
    import h5py
    from nxtomo import NXtomo

    path = Path(path)
    with h5py.File(path, "r") as f:
        entries = _nxtomo_entries(f)
        if not entries:
            raise KeyError(f"{path}: no NXtomo entry with instrument/detector/data and image_key")
        entry = entry or entries[0]
        if entry not in entries:
            raise KeyError(f"{path}: entry {entry!r} not found; NXtomo entries are {entries}")
        det = f[entry]["instrument/detector"]
        shape = det["data"].shape
        _require_3d(shape, f"{path}:{entry}/instrument/detector/data")
        dtype = det["data"].dtype
        if f"{entry}/sample/rotation_angle" not in f:
            raise KeyError(f"{path}: {entry}/sample/rotation_angle missing: the rotation angles are needed")
    import logging

    logging.getLogger("nxtomo").setLevel(logging.ERROR)  # "unable to find nexus version": harmless
    nx = NXtomo().load(str(path), entry, detector_data_as="as_data_url")
    detector = nx.instrument.detector
    key = np.asarray([int(k.value) if hasattr(k, "value") else int(k) for k in detector.image_key_control])
    if len(key) != shape[0]:
        raise ValueError(f"{path}:{entry}: image_key has {len(key)} values for {shape[0]} frames")
    rot = nx.sample.rotation_angle
    if rot is None:
        raise KeyError(f"{path}: {entry}/sample/rotation_angle could not be read")
    rot_rad = np.asarray(rot.to("radian").magnitude, float).ravel()
    proj_idx = np.flatnonzero(key == 0)
    with h5py.File(path, "r") as f:
        data = f[entry]["instrument/detector/data"]
        flats = data[np.flatnonzero(key == 1).tolist()] if (key == 1).any() else np.zeros((0, *shape[1:]))
        darks = data[np.flatnonzero(key == 2).tolist()] if (key == 2).any() else np.zeros((0, *shape[1:]))
    angles = rot_rad[proj_idx] if len(rot_rad) == len(key) else rot_rad

    def si(quantity, unit: str) -> float | None:
        if quantity is None:
            return None
        values = np.asarray(quantity.to(unit).magnitude, float).ravel()
        return float(values[0]) if values.size else None

    pixel = si(detector.x_pixel_size, "m")
    distance = si(detector.distance, "m")
    energy = si(nx.instrument.beam.incident_energy, "keV")
    translation = None
    tz, tx = nx.sample.z_translation, nx.sample.x_translation
    if pixel and tz is not None and tx is not None:
        translation = (
            float(np.mean(tz.to("m").magnitude)) / pixel,
            float(np.mean(tx.to("m").magnitude)) / pixel,
        )

    def read_rows(rows: slice) -> np.ndarray:
        with h5py.File(path, "r") as fh:
            return fh[entry]["instrument/detector/data"][proj_idx.tolist(), rows, :]

    def read_frames(start: int, stop: int) -> np.ndarray:
        with h5py.File(path, "r") as fh:
            return fh[entry]["instrument/detector/data"][proj_idx[start:stop].tolist()]

    scan = TomoScan(
        source=path,
        format=f"NXtomo:{entry}",
        shape=(len(proj_idx), shape[1], shape[2]),
        dtype=np.dtype(dtype),
        angles_rad=np.asarray(angles, dtype=float),
        flats=np.asarray(flats, dtype=np.float32),
        darks=np.asarray(darks, dtype=np.float32),
        pixel_size_m=pixel,
        distance_m=distance,
        energy_kev=energy,
        translation_px=translation,
        _read_rows=read_rows,
        _read_frames=read_frames,
    )
    return _validate(scan)


def read_dataexchange(path: str | Path) -> TomoScan:
    """Read a Data Exchange HDF5 file (APS/dxchange): ``exchange/{data, data_white, data_dark, theta}``.

    ``theta`` is in degrees (Data Exchange convention) unless its ``units`` attribute says rad.
    """
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        if "exchange/data" not in f:
            raise KeyError(f"{path}: exchange/data missing: not a Data Exchange file")
        ex = f["exchange"]
        shape = ex["data"].shape
        _require_3d(shape, f"{path}:exchange/data")
        dtype = ex["data"].dtype
        flats = ex["data_white"][()] if "data_white" in ex else np.zeros((0, *shape[1:]))
        darks = ex["data_dark"][()] if "data_dark" in ex else np.zeros((0, *shape[1:]))
        if "theta" not in ex:
            raise KeyError(f"{path}: exchange/theta missing: the rotation angles are needed")
        theta = np.asarray(ex["theta"][()], dtype=float)
        units = ex["theta"].attrs.get("units", "deg")
        units = units.decode() if isinstance(units, bytes) else str(units)
        angles = theta if units.lower().startswith("rad") else np.radians(theta)
        pixel = None
        for cand in (
            "measurement/instrument/detector/pixel_size_x",
            "measurement/instrument/detector/x_pixel_size",
        ):
            if cand in f:
                pixel = float(np.asarray(f[cand][()]).ravel()[0])

    def read_rows(rows: slice) -> np.ndarray:
        with h5py.File(path, "r") as fh:
            return fh["exchange/data"][:, rows, :]

    def read_frames(start: int, stop: int) -> np.ndarray:
        with h5py.File(path, "r") as fh:
            return fh["exchange/data"][start:stop]

    scan = TomoScan(
        source=path,
        format="DataExchange",
        shape=tuple(shape),
        dtype=np.dtype(dtype),
        angles_rad=angles,
        flats=np.asarray(flats, dtype=np.float32),
        darks=np.asarray(darks, dtype=np.float32),
        pixel_size_m=pixel,
        _read_rows=read_rows,
        _read_frames=read_frames,
    )
    return _validate(scan)


def _read_image(path: Path) -> np.ndarray:
    suffix = path.suffix.lower()
    if suffix in (".tif", ".tiff"):
        import tifffile

        return tifffile.imread(path)
    if suffix == ".edf":
        import fabio

        return fabio.open(str(path)).data
    raise ValueError(f"{path}: unsupported image type {suffix!r}; use .tif/.tiff or .edf")


def read_image_stack(
    projection_files: Sequence[str | Path],
    flat_files: Sequence[str | Path],
    dark_files: Sequence[str | Path],
    angles_deg: Sequence[float] | np.ndarray,
) -> TomoScan:
    """A scan stored as one image per file (TIFF via tifffile, EDF via fabio), given in order.

    Angles must be given (image files do not carry them reliably), one per projection file, in degrees.
    Reading a slab of rows reads every projection file once (the files are not row-chunked).
    """
    proj_files = [Path(p) for p in projection_files]
    if not proj_files:
        raise ValueError("no projection files given")
    missing = [
        str(p) for p in [*proj_files, *map(Path, flat_files), *map(Path, dark_files)] if not p.exists()
    ]
    if missing:
        raise OSError(f"{len(missing)} image files not found, first: {missing[0]}")
    first = _read_image(proj_files[0])
    flats = np.array([_read_image(Path(p)) for p in flat_files], dtype=np.float32).reshape(-1, *first.shape)
    darks = np.array([_read_image(Path(p)) for p in dark_files], dtype=np.float32).reshape(-1, *first.shape)

    def read_rows(rows: slice) -> np.ndarray:
        return np.stack([_read_image(p)[rows] for p in proj_files])

    def read_frames(start: int, stop: int) -> np.ndarray:
        return np.stack([_read_image(p) for p in proj_files[start:stop]]).reshape(-1, *first.shape)

    scan = TomoScan(
        source=proj_files[0].parent,
        format=f"image stack ({proj_files[0].suffix})",
        dtype=np.dtype(first.dtype),
        shape=(len(proj_files), *first.shape),
        angles_rad=np.radians(np.asarray(angles_deg, dtype=float)),
        flats=flats,
        darks=darks,
        _read_rows=read_rows,
        _read_frames=read_frames,
    )
    return _validate(scan)


def _units_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _angles_in_rad(values: np.ndarray, units_attr, stated: str | None, where: str) -> np.ndarray:
    """Angles converted to rad from the ``units`` attribute or the stated units ('deg'/'rad')."""
    from_file = None
    if units_attr is not None:
        text = _units_text(units_attr).strip().lower()
        if text.startswith("rad"):
            from_file = "rad"
        elif text.startswith("deg") or text in ("°", "degree", "degrees"):
            from_file = "deg"
        else:
            raise ValueError(f"{where}: angle units {text!r} not understood; state --angles-units deg|rad")
    if from_file and stated and from_file != stated:
        raise ValueError(f"{where}: the file says {from_file} but --angles-units says {stated}")
    units = from_file or stated
    if units is None:
        raise ValueError(f"{where} has no 'units' attribute: state the angle units (--angles-units deg|rad)")
    return np.asarray(values, float) if units == "rad" else np.radians(np.asarray(values, float))


def _h5_get(f, name: str, path: Path, what: str):
    """The object at ``name`` (links followed), with a clear error when it or its link target is missing."""
    link = f.get(name, getlink=True)
    if link is None:
        raise KeyError(f"{path}: {what} path {name!r} not found in the file")
    try:
        return f[name]
    except KeyError as err:
        target = getattr(link, "filename", "")
        raise OSError(f"{path}: {what} {name!r} is a link to {target or link} that cannot be opened "
                      f"({err}); keep the linked files beside the scan") from err


def read_hdf5_paths(
    path: str | Path,
    data_path: str,
    image_key_path: str | None = None,
    angles_path: str | None = None,
    angles_units: str | None = None,
    flats_path: str | None = None,
    darks_path: str | None = None,
) -> TomoScan:
    """Read a scan from any NeXus/HDF5 layout by naming its paths (as httomo's loader does).

    ``data_path``: (frames, rows, columns), possibly an external/virtual link to another file.
    ``image_key_path``: one key per frame (0 projection, 1 flat, 2 dark, 3 invalid); without it every
    frame is a projection and ``flats_path``/``darks_path`` give the flats and darks. ``angles_path``:
    one rotation angle per frame or per projection, in the units of its ``units`` attribute or
    ``angles_units`` ('deg'/'rad'). Example, Diamond K11 (DIAD): ``data_path="entry/imaging/data"``,
    ``image_key_path="entry/instrument/imaging/image_key"``, angles from the linked position file.
    """
    import h5py

    path = Path(path)
    if angles_path is None:
        raise ValueError(f"{path}: --angles-path is needed with --data-path (the rotation angles)")
    with h5py.File(path, "r") as f:
        data = _h5_get(f, data_path, path, "data")
        if not isinstance(data, h5py.Dataset):
            raise ValueError(f"{path}: {data_path!r} is a group, not the frames dataset")
        shape, dtype = data.shape, data.dtype
        _require_3d(shape, f"{path}:{data_path}")
        n_frames = shape[0]
        if image_key_path is not None:
            key = np.asarray(_h5_get(f, image_key_path, path, "image key")[()]).astype(int).ravel()
            if len(key) != n_frames:
                raise ValueError(f"{path}: {image_key_path} has {len(key)} values for {n_frames} frames")
            unknown = sorted(set(np.unique(key)) - {0, 1, 2, 3})
            if unknown:
                raise ValueError(f"{path}: {image_key_path} holds keys {unknown}; NXtomo keys are 0–3")
        else:
            key = np.zeros(n_frames, int)
        proj_idx = np.flatnonzero(key == 0)

        def stack(key_value: int, extra: str | None, what: str) -> np.ndarray:
            parts = []
            if (key == key_value).any():
                parts.append(np.asarray(data[np.flatnonzero(key == key_value).tolist()], np.float32))
            if extra is not None:
                ds = _h5_get(f, extra, path, what)
                arr = np.asarray(ds[()], np.float32)
                parts.append(arr[None] if arr.ndim == 2 else arr)
            return np.concatenate(parts) if parts else np.zeros((0, *shape[1:]), np.float32)

        flats = stack(1, flats_path, "flats")
        darks = stack(2, darks_path, "darks")
        angles_ds = _h5_get(f, angles_path, path, "angles")
        values = np.asarray(angles_ds[()], float).ravel()
        if len(values) == n_frames:
            values = values[proj_idx]
        elif len(values) != len(proj_idx):
            raise ValueError(f"{path}: {angles_path} has {len(values)} angles for {n_frames} frames "
                             f"({len(proj_idx)} projections); need one per frame or per projection")
        angles = _angles_in_rad(values, angles_ds.attrs.get("units"), angles_units, f"{path}:{angles_path}")

    def read_rows(rows: slice) -> np.ndarray:
        with h5py.File(path, "r") as fh:
            return fh[data_path][proj_idx.tolist(), rows, :]

    def read_frames(start: int, stop: int) -> np.ndarray:
        with h5py.File(path, "r") as fh:
            return fh[data_path][proj_idx[start:stop].tolist()]

    scan = TomoScan(
        source=path,
        format=f"HDF5 paths ({data_path})",
        shape=(len(proj_idx), shape[1], shape[2]),
        dtype=np.dtype(dtype),
        angles_rad=angles,
        flats=flats,
        darks=darks,
        _read_rows=read_rows,
        _read_frames=read_frames,
    )
    return _validate(scan)


def open_scan(path: str | Path, entry: str | None = None) -> TomoScan:
    """Open an HDF5 scan, NXtomo (``image_key``) or Data Exchange (``exchange/data``), by its content."""
    import h5py

    path = Path(path)
    if not path.exists():
        raise OSError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as f:
            is_dx = "exchange/data" in f
            is_nx = bool(_nxtomo_entries(f))
    except OSError as err:
        raise OSError(f"{path}: not an HDF5 file ({err}); for TIFF/EDF stacks use read_image_stack") from err
    if is_nx:
        return read_nxtomo(path, entry)
    if is_dx:
        return read_dataexchange(path)
    raise KeyError(
        f"{path}: neither NXtomo (entry/instrument/detector/image_key) nor Data Exchange (exchange/data); "
        "for another NeXus/HDF5 layout name its paths: --data-path, --image-key-path (or --flats-path/"
        "--darks-path) and --angles-path"
    )


def flat_dark_correct(projections: np.ndarray, flat: np.ndarray, dark: np.ndarray) -> np.ndarray:
    """Transmission (P − D)/(F − D) as float32; raises where F ≤ D (would divide by zero)."""
    denom = np.asarray(flat, np.float32) - np.asarray(dark, np.float32)
    if np.any(denom <= 0):
        raise ValueError(f"{int(np.sum(denom <= 0))} pixels have flat ≤ dark: cannot flat-field correct")
    return ((np.asarray(projections, np.float32) - dark) / denom).astype(np.float32)


def write_dataexchange(
    path: str | Path, projections, flats, darks, angles_rad, pixel_size_m: float | None = None
) -> Path:
    """Write a minimal Data Exchange file (``exchange/{data, data_white, data_dark, theta}``, θ in deg)."""
    import h5py

    path = Path(path)
    with h5py.File(path, "w") as f:
        ex = f.create_group("exchange")
        ex.create_dataset("data", data=projections, chunks=(1, *np.shape(projections)[1:]))
        ex["data_white"] = flats
        ex["data_dark"] = darks
        ex["theta"] = np.degrees(angles_rad)
        ex["theta"].attrs["units"] = "deg"
        if pixel_size_m is not None:
            f["measurement/instrument/detector/pixel_size_x"] = pixel_size_m
    return path
