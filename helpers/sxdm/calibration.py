"""Detector calibration of one SXDM entry, per file format: BLISS dataset files and XSOCS master files.

Each reader returns the same dictionary: ``wavelength_m``, ``distance_m``, ``pixel_size_m`` (rows,
columns; m), ``beam_center_px`` (row, col) relative to the stored frames, ``offset`` (row, col) of the
stored frames on the full detector, ``mask_full`` (full-detector bad-pixel mask or ``None``) and
``detector_shape``. ``geometry`` holds user overrides (``distance_m``, ``pixel_size_m``,
``beam_center_px`` in full-detector pixels, ``wavelength_m``) for files with an uncalibrated distance or
direct beam.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

from helpers.sxdm import geometry as geo


def read_scalar(path: Path, group: h5py.Group, key: str, what: str):
    """``group[key]`` as a scalar; a clear KeyError naming the file, the dataset and what it holds."""
    if key not in group:
        raise KeyError(f"{path}: {group.name}/{key} ({what}) is missing")
    value = np.asarray(group[key][()])
    return value.ravel()[0] if value.size else value


def is_xsocs_master(h5: h5py.File) -> bool:
    """True for an XSOCS master file (entries are external links, or carry XSOCS channel calibration)."""
    for name in h5:
        link = h5.get(name, getlink=True)
        if isinstance(link, h5py.ExternalLink):
            return True
        obj = h5.get(name)
        if isinstance(obj, h5py.Group) and "instrument/detector/chan_per_deg_dim0" in obj:
            return True
    return False


def bliss_calibration(
    path: Path, entry: h5py.Group, scan: str, det: str, frame_shape, geometry: dict
) -> dict:
    """Calibration of a BLISS entry from ``instrument/<det>`` and ``instrument/monochromator``."""
    dgrp = entry[f"instrument/{det}"]
    offset = (
        tuple(int(v) for v in np.asarray(dgrp["image_roi_offset"][()]))
        if "image_roi_offset" in dgrp
        else (0, 0)
    )
    if "distance_m" in geometry:
        distance_m = float(geometry["distance_m"])
    else:
        distance_m = float(read_scalar(path, dgrp, "distance", "sample-detector distance, m"))
    if "pixel_size_m" in geometry:
        px = py = float(geometry["pixel_size_m"])
    else:
        px = float(read_scalar(path, dgrp, "x_pixel_size", "pixel size, m"))
        py = float(read_scalar(path, dgrp, "y_pixel_size", "pixel size, m"))
    if "beam_center_px" in geometry:
        bc = (geometry["beam_center_px"][0] - offset[0], geometry["beam_center_px"][1] - offset[1])
    else:
        bc = (
            float(read_scalar(path, dgrp, "beam_center_y", "direct-beam row, pixels")),
            float(read_scalar(path, dgrp, "beam_center_x", "direct-beam column, pixels")),
        )
    mono = entry.get("instrument/monochromator")
    if "wavelength_m" in geometry:
        wavelength_m = float(geometry["wavelength_m"])
    elif mono is not None and "WaveLength" in mono:
        wavelength_m = float(read_scalar(path, mono, "WaveLength", "wavelength, m"))
        if wavelength_m > 1e-6:  # stored in Å by some versions
            wavelength_m *= 1e-10
    elif mono is not None and ("Energy" in mono or "energy" in mono):
        energy = float(read_scalar(path, mono, "Energy" if "Energy" in mono else "energy", "energy, keV"))
        wavelength_m = geo.wavelength_from_energy_m(energy / 1000.0 if energy > 1000 else energy)
    else:
        raise KeyError(f"{path}: /{scan}/instrument/monochromator has neither WaveLength nor Energy")
    mask_full = None
    if "pixel_mask" in dgrp:
        mask_full = np.asarray(dgrp["pixel_mask"][()]).astype(bool)
    if "detector_shape" in dgrp:
        det_shape = tuple(int(v) for v in np.asarray(dgrp["detector_shape"][()]))
    elif mask_full is not None:
        det_shape = mask_full.shape
    else:
        det_shape = (offset[0] + frame_shape[0], offset[1] + frame_shape[1])
    return {
        "wavelength_m": wavelength_m, "distance_m": distance_m, "pixel_size_m": (py, px),
        "beam_center_px": bc, "offset": offset, "mask_full": mask_full, "detector_shape": det_shape,
    }


def xsocs_calibration(path: Path, entry: h5py.Group, frame_shape, geometry: dict) -> dict:
    """Calibration of an XSOCS entry: XSOCS keeps only channels per degree (the pixel angle)."""
    dgrp = entry["instrument/detector"]
    energy_ev = float(read_scalar(path, dgrp, "beam_energy", "beam energy, eV"))
    wavelength_m = geo.wavelength_from_energy_m(energy_ev / 1000.0)
    chpdeg = float(read_scalar(path, dgrp, "chan_per_deg_dim0", "channels per degree"))
    # XSOCS keeps only channels per degree = tan(1°)·distance/pixel; the distance is set to 1 m
    distance_m = 1.0
    px = py = float(np.tan(np.radians(1.0)) / chpdeg)
    bc = (
        float(read_scalar(path, dgrp, "center_chan_dim0", "direct-beam row")),
        float(read_scalar(path, dgrp, "center_chan_dim1", "direct-beam column")),
    )
    offset = (
        tuple(int(v) for v in np.asarray(dgrp["image_roi_offset"][()]))
        if "image_roi_offset" in dgrp
        else (0, 0)
    )
    mask_full = None
    det_shape = (offset[0] + frame_shape[0], offset[1] + frame_shape[1])
    wavelength_m = float(geometry.get("wavelength_m", wavelength_m))
    if "distance_m" in geometry or "pixel_size_m" in geometry:
        ratio = px / distance_m  # XSOCS fixes only the pixel angle: keep it unless both are given
        distance_m = float(geometry.get("distance_m", distance_m))
        px = py = float(geometry.get("pixel_size_m", ratio * distance_m))
    if "beam_center_px" in geometry:
        bc = (geometry["beam_center_px"][0] - offset[0], geometry["beam_center_px"][1] - offset[1])
    return {
        "wavelength_m": wavelength_m, "distance_m": distance_m, "pixel_size_m": (py, px),
        "beam_center_px": bc, "offset": offset, "mask_full": mask_full, "detector_shape": det_shape,
    }
