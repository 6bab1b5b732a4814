"""Write simulated SXDM scans in the real ESRF ID01 BLISS layout (what the readers must accept).

``write_bliss_sxdm(path, ...)`` writes the real ID01 layout: a dataset file with one ``N.1`` entry per
eta (``title`` ``asxdm( pix, x0, x1, nx, piy, y0, y1, ny, expo )``, ``start_time``, ``technique``,
``instrument/<det>/{beam_center_x, beam_center_y, distance, x_pixel_size, y_pixel_size, pixel_mask,
image}``, ``instrument/monochromator/{WaveLength (m), Energy (keV)}``, ``instrument/positioners/{eta,
phi, nu, delta, pix, piy, piz}``, ``instrument/{pix_position, piy_position}/value``,
``instrument/mon1/data``, ``measurement/{<det>, mon1, pix_position, piy_position}`` soft links) and the
frames in per-scan detector files ``scanNNNN/<det>_0000.h5`` (Lima layout ``/entry_0000/measurement/data``)
reached through an HDF5 virtual dataset, or inside the dataset file (``external_frames=False``).
Frames cropped to a detector ROI are stored with ``beam_center_x/y`` relative to the stored image (so
XSOCS, which assumes an uncropped image, converts them correctly) plus ``image_roi_offset`` (row, col)
and ``detector_shape``; the reader adds the offset back. ``pixel_mask`` is stored for the full detector.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from helpers.sxdm import geometry as geo


def write_bliss_sxdm(
    path,
    *,
    eta_deg,
    frame_lines: Iterable[tuple[int, np.ndarray]],
    scan_shape: tuple[int, int],
    scan_start_um: tuple[float, float],
    scan_end_um: tuple[float, float],
    positions_um: np.ndarray,
    monitor: np.ndarray,
    wavelength_m: float,
    distance_m: float,
    pixel_size_m: float,
    beam_center_px: tuple[float, float],
    pixel_mask: np.ndarray,
    roi: tuple[int, int, int, int] | None = None,
    phi_deg: float = 0.0,
    nu_deg: float = 0.0,
    delta_deg: float = 0.0,
    exposure_s: float = 0.01,
    detector: str = "mpx1x4",
    external_frames: bool = True,
    first_scan: int = 1,
    position_names: tuple[str, str] = ("pix_position", "piy_position"),
    monitor_name: str = "mon1",
    start_time: str = "2026-01-01T00:00:00",
    compression: str | None = "gzip",
    title_command: str = "asxdm",
    attrs: dict | None = None,
    frame_dtype=np.int32,
) -> Path:
    """Write an SXDM series in the ID01 BLISS layout (see module docstring); returns the dataset path.

    Parameters
    ----------
    frame_lines : iterable of (slow index, frames (n_fast, n_eta, ny, nx) integer counts)
        One scan line at a time (so a big series never sits in memory), lines in order.
    scan_shape : (n_slow, n_fast)
    positions_um : (n_eta, n_points, 2) measured (x = pix, y = piy) piezo positions (µm).
    monitor : (n_eta, n_points) monitor counts.
    beam_center_px : (row, col) of the direct beam in full-detector pixels.
    pixel_mask : full-detector bool mask (True = bad).
    roi : (row0, row1, col0, col1) of the stored frames in the full detector (None: whole detector).
    attrs : extra attributes (provenance) written on the file root.
    frame_dtype : dtype of the stored frames; int32 as BLISS stores Maxipix frames at ID01.
    """
    path = Path(path)
    eta = np.asarray(eta_deg, dtype=np.float64)
    n_eta = eta.size
    n_slow, n_fast = (int(v) for v in scan_shape)
    n_points = n_slow * n_fast
    mask = np.asarray(pixel_mask, dtype=bool)
    roi = (0, mask.shape[0], 0, mask.shape[1]) if roi is None else tuple(int(v) for v in roi)
    geo.check_roi(roi, mask.shape)
    ny, nx = roi[1] - roi[0], roi[3] - roi[2]
    positions_um = np.asarray(positions_um, dtype=np.float64)
    monitor = np.asarray(monitor, dtype=np.float64)
    if positions_um.shape != (n_eta, n_points, 2):
        raise ValueError(f"positions_um has shape {positions_um.shape}, expected {(n_eta, n_points, 2)}")
    if monitor.shape != (n_eta, n_points):
        raise ValueError(f"monitor has shape {monitor.shape}, expected {(n_eta, n_points)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    energy_kev = geo.energy_from_wavelength_kev(wavelength_m)
    title = (
        f"{title_command}( pix, {scan_start_um[0]:g}, {scan_end_um[0]:g}, {n_fast}, "
        f"piy, {scan_start_um[1]:g}, {scan_end_um[1]:g}, {n_slow}, {exposure_s:g} )"
    )
    comp = {"compression": compression, "shuffle": True} if compression else {}
    if compression == "gzip":
        comp["compression_opts"] = 6
    chunks = (n_fast, ny, nx)
    scans = [f"{first_scan + k}.1" for k in range(n_eta)]
    det_files = []
    with h5py.File(path, "w") as h5:
        h5.attrs["NX_class"] = "NXroot"
        h5.attrs["creator"] = "helpers.sxdm.io.write_bliss_sxdm (ID01 BLISS layout)"
        for key, value in (attrs or {}).items():
            h5.attrs[key] = value
        for k, scan in enumerate(scans):
            entry = h5.create_group(scan)
            entry.attrs["NX_class"] = "NXentry"
            entry["title"] = title
            entry["start_time"] = start_time
            entry["end_time"] = start_time
            tech = entry.create_group("technique")
            tech.attrs["NX_class"] = "NXcollection"
            tech["scan_type"] = "sxdm"
            instr = entry.create_group("instrument")
            instr.attrs["NX_class"] = "NXinstrument"
            det = instr.create_group(detector)
            det.attrs["NX_class"] = "NXdetector"
            det["beam_center_y"] = float(beam_center_px[0] - roi[0])
            det["beam_center_x"] = float(beam_center_px[1] - roi[2])
            det["beam_center_y"].attrs["units"] = "pixel"
            det["beam_center_x"].attrs["units"] = "pixel"
            det["distance"] = float(distance_m)
            det["distance"].attrs["units"] = "m"
            det["x_pixel_size"] = float(pixel_size_m)
            det["y_pixel_size"] = float(pixel_size_m)
            det["x_pixel_size"].attrs["units"] = "m"
            det["y_pixel_size"].attrs["units"] = "m"
            det.create_dataset("pixel_mask", data=mask.astype(np.uint8), compression="gzip", shuffle=True)
            det["image_roi_offset"] = np.array([roi[0], roi[2]], dtype=np.int64)
            det["detector_shape"] = np.array(mask.shape, dtype=np.int64)
            mono = instr.create_group("monochromator")
            mono.attrs["NX_class"] = "NXmonochromator"
            mono["WaveLength"] = float(wavelength_m)
            mono["WaveLength"].attrs["units"] = "m"
            mono["Energy"] = float(energy_kev)
            mono["Energy"].attrs["units"] = "keV"
            pos = instr.create_group("positioners")
            pos.attrs["NX_class"] = "NXcollection"
            for name, value in (
                ("eta", eta[k]),
                ("phi", phi_deg),
                ("nu", nu_deg),
                ("delta", delta_deg),
                ("pix", positions_um[k, 0, 0]),
                ("piy", positions_um[k, 0, 1]),
                ("piz", 0.0),
            ):
                pos[name] = float(value)
            meas = entry.create_group("measurement")
            meas.attrs["NX_class"] = "NXcollection"
            for axis, name in enumerate(position_names):
                grp = instr.create_group(name)
                grp.attrs["NX_class"] = "NXpositioner"
                grp["value"] = positions_um[k, :, axis]
                grp["value"].attrs["units"] = "um"
                meas[name] = h5py.SoftLink(f"/{scan}/instrument/{name}/value")
            mon = instr.create_group(monitor_name)
            mon.attrs["NX_class"] = "NXdetector"
            mon["data"] = monitor[k]
            meas[monitor_name] = h5py.SoftLink(f"/{scan}/instrument/{monitor_name}/data")
            if external_frames:
                rel = Path(f"scan{first_scan + k:04d}") / f"{detector}_0000.h5"
                det_files.append((path.parent / rel, rel))
                layout = h5py.VirtualLayout(shape=(n_points, ny, nx), dtype=frame_dtype)
                layout[:] = h5py.VirtualSource(
                    str(rel), "/entry_0000/measurement/data", shape=(n_points, ny, nx)
                )
                det.create_virtual_dataset("image", layout, fillvalue=0)
            else:
                det.create_dataset(
                    "image", shape=(n_points, ny, nx), dtype=frame_dtype, chunks=chunks, **comp
                )
            det["image"].attrs["interpretation"] = "image"
            meas[detector] = h5py.SoftLink(f"/{scan}/instrument/{detector}/image")

    def _targets():
        if external_frames:
            handles = []
            for full, _ in det_files:
                full.parent.mkdir(parents=True, exist_ok=True)
                handle = h5py.File(full, "w")
                handles.append(handle)
                grp = handle.create_group("entry_0000/measurement")
                grp.create_dataset("data", shape=(n_points, ny, nx), dtype=frame_dtype, chunks=chunks, **comp)
                handle["entry_0000/instrument/" + detector + "/data"] = grp["data"]
            return handles, [h["entry_0000/measurement/data"] for h in handles]
        handle = h5py.File(path, "a")
        return [handle], [handle[f"{scan}/instrument/{detector}/image"] for scan in scans]

    handles, targets = _targets()
    try:
        seen = 0
        for j, line in frame_lines:
            line = np.asarray(line)
            if line.shape != (n_fast, n_eta, ny, nx):
                raise ValueError(
                    f"scan line {j}: frames have shape {line.shape}, expected {(n_fast, n_eta, ny, nx)}"
                )
            for k, target in enumerate(targets):
                target[j * n_fast : (j + 1) * n_fast] = line[:, k]
            seen += 1
        if seen != n_slow:
            raise ValueError(f"got {seen} scan lines, expected {n_slow}")
    finally:
        for handle in handles:
            handle.close()
    return path


# --------------------------------------------------------------------------------------------- reader
