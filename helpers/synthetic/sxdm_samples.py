"""Bundled and cached SXDM samples: the Fig. 1 particle series in ``data_samples/`` and its truth.

``write_fig1_sample(out_folder)`` (registered as ``sxdm_fig1_particle`` in
:mod:`helpers.synthetic.registry`, run by ``make data``) writes

- ``sxdm_fig1_particle/sxdm_fig1_particle.h5``: BLISS dataset file, 20 entries (one per eta) of a
  40 × 40-point raster (0.1 µm steps) with 64 × 120-pixel Maxipix ROI frames in
  ``sxdm_fig1_particle/scanNNNN/mpx1x4_0000.h5`` (gzip + shuffle);
- ``sxdm_fig1_particle_truth.h5``: the particle's fine-grid fields (float32), the exact scan-grid truth
  maps (float64), the drift, the design targets and the scan settings (attributes).

``load_truth(path) -> (ParticleModel, ScanTruth, settings dict)`` reads the truth file back;
``simulate_fig1(n_fast=40, n_slow=40)`` rebuilds the simulation object (same seeds) for tests.
``cached_series(name, particle, settings, seed)`` writes larger cases once into
``helpers.paths.cache_dir() / "sxdm" / name`` and returns the dataset-file path.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

import h5py
import numpy as np

from helpers.synthetic import sxdm_model, sxdm_scan

FIG1_NAME = "sxdm_fig1_particle"
FIG1_SEED_PARTICLE = 20240501
FIG1_SEED_SCAN = 20240502


#: Maxipix ROI (rows 2θ, columns Debye ring) of the bundled sample: 120 columns hold the 0.8° bending
#: of particle 1 about x, which sweeps its peak ≈ 100 pixels along the Debye ring (columns 147–248),
#: and stop before the chip gap at column 256.
FIG1_ROI = (278, 342, 136, 256)


def fig1_settings(n_fast: int = 40, n_slow: int = 40) -> sxdm_scan.ScanSettings:
    """Scan settings of the bundled sample: 140 nm beam, 0.1 µm steps, 20 eta steps of 0.02°, 64 × 120 ROI.

    Particle 1 bends about x, so its rocking curve is narrow (the eta range covers the instrument width
    and mosaicity) and its peak moves along the Debye ring instead (:data:`FIG1_ROI`). No sample drift
    between eta maps, so that the truth is exact for every scan point (the sample is the accuracy
    reference of the analysis notebooks); drift is one knob away (``ScanSettings.drift_um_per_eta``).
    """
    from helpers.sxdm import geometry

    theta, _ = geometry.detector_angles_for_d(sxdm_model.D003_A, 1.24e-10)
    return sxdm_scan.ScanSettings(
        n_fast=n_fast,
        n_slow=n_slow,
        beam_fwhm_um=(sxdm_model.FIG1_DESIGN["beam_fwhm_um"],) * 2,
        drift_um_per_eta=0.0,
        roi=FIG1_ROI,
        eta_deg=theta + 0.02 * (np.arange(20) - 9.5),
    )


def simulate_fig1(n_fast: int = 40, n_slow: int = 40) -> sxdm_scan.SxdmSimulation:
    """The bundled sample's simulation (deterministic seeds); frames are made lazily."""
    particle = sxdm_model.fig1_particle(np.random.default_rng(FIG1_SEED_PARTICLE))
    return sxdm_scan.simulate_scan(
        particle, fig1_settings(n_fast, n_slow), np.random.default_rng(FIG1_SEED_SCAN)
    )


def _settings_attrs(settings: sxdm_scan.ScanSettings) -> dict:
    out = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, np.ndarray):
            value = value.tolist()
        out[f.name] = value
    return out


def write_truth(sim: sxdm_scan.SxdmSimulation, path: Path, source_name: str) -> Path:
    """Write the particle fields and scan truth of ``sim`` to ``path`` (HDF5)."""
    p, t = sim.particle, sim.truth
    comp = {"compression": "gzip", "compression_opts": 6, "shuffle": True}
    with h5py.File(path, "w") as h5:
        h5.attrs["description"] = f"exact truth of the simulated SXDM series {source_name}"
        h5.attrs["creator"] = "helpers.synthetic.sxdm_samples"
        h5.attrs["settings_json"] = json.dumps(_settings_attrs(sim.settings))
        h5.attrs["design_json"] = json.dumps(p.design)
        fine = h5.create_group("particle")
        fine.attrs["name"] = p.name
        fine.attrs["step_um"] = p.step_um
        fine.attrs["origin_um"] = np.asarray(p.origin_um)
        for name, unit in (
            ("thickness_um", "um"),
            ("d_spacing_A", "angstrom"),
            ("tilt_deg", "deg"),
            ("mosaic_deg", "deg"),
            ("strength", ""),
        ):
            ds = fine.create_dataset(name, data=getattr(p, name).astype(np.float32), **comp)
            ds.attrs["units"] = unit
        fine.create_dataset("grain_id", data=p.grain_id, **comp)
        scan = h5.create_group("scan_truth")
        for name, unit in (
            ("x_um", "um"),
            ("y_um", "um"),
            ("intensity", "counts"),
            ("mean_d_A", "angstrom"),
            ("mean_q", "1/angstrom"),
            ("tilt_deg", "deg"),
            ("d_spread_A", "angstrom"),
            ("drift_um", "um"),
            ("peak_eta_deg", "deg"),
            ("peak_row_px", "px"),
            ("peak_col_px", "px"),
        ):
            ds = scan.create_dataset(name, data=getattr(t, name), **comp)
            ds.attrs["units"] = unit
    return path


def load_truth(path) -> tuple[sxdm_model.ParticleModel, sxdm_scan.ScanTruth, dict]:
    """Read a truth file written by :func:`write_truth`: (particle, scan truth, settings dict)."""
    path = Path(path)
    with h5py.File(path, "r") as h5:
        f = h5["particle"]
        particle = sxdm_model.ParticleModel(
            step_um=float(f.attrs["step_um"]),
            origin_um=tuple(float(v) for v in f.attrs["origin_um"]),
            thickness_um=f["thickness_um"][()].astype(np.float64),
            d_spacing_A=f["d_spacing_A"][()].astype(np.float64),
            tilt_deg=f["tilt_deg"][()].astype(np.float64),
            mosaic_deg=f["mosaic_deg"][()].astype(np.float64),
            strength=f["strength"][()].astype(np.float64),
            grain_id=f["grain_id"][()],
            name=str(f.attrs["name"]),
            design=json.loads(h5.attrs["design_json"]),
        )
        s = h5["scan_truth"]
        truth = sxdm_scan.ScanTruth(**{name: s[name][()] for name in s})
        settings = json.loads(h5.attrs["settings_json"])
    return particle, truth, settings


def write_fig1_sample(out_folder: Path, n_lines: int | None = None) -> list[Path]:
    """Write the bundled Fig. 1 sample (dataset folder + truth file) into ``out_folder``.

    ``n_lines`` writes only the first scan lines' frames (the rest stay zero): the reproducibility test
    uses it to regenerate a part quickly; those lines are identical to a full run's.
    """
    out_folder = Path(out_folder)
    sim = simulate_fig1()
    folder = out_folder / FIG1_NAME
    dataset = folder / f"{FIG1_NAME}.h5"
    if n_lines is not None:
        original = sim.iter_lines

        def _partial(n=None):
            yield from original(n_lines)
            zeros = None
            for j in range(n_lines, sim.settings.n_slow):
                if zeros is None:
                    s = sim.settings
                    zeros = np.zeros((s.n_fast, s.eta_deg.size) + s.frame_shape, np.uint32)
                yield j, zeros

        sim.iter_lines = _partial
    sxdm_scan.write_simulation(
        sim,
        dataset,
        attrs={
            "sample": FIG1_NAME,
            "description": "simulated ID01 SXDM series of the paper's Fig. 1 particle (NMC-622 003)",
            "made_by": "helpers.synthetic.sxdm_samples.write_fig1_sample (make data)",
        },
    )
    truth = write_truth(sim, out_folder / f"{FIG1_NAME}_truth.h5", f"{FIG1_NAME}/{FIG1_NAME}.h5")
    return [dataset, truth]


def cached_series(name: str, particle, settings, seed: int, force: bool = False, **write_kwargs) -> Path:
    """Simulate and write a (large) series once into the cache folder; return its dataset-file path.

    The truth goes beside it as ``<name>_truth.h5``. A stamp of the settings, seed, writer options and
    a hash of the particle's fields decides whether an existing copy is reused.
    """
    from helpers.paths import cache_dir

    folder = cache_dir() / "sxdm" / name
    dataset = folder / f"{name}.h5"
    stamp_path = folder / "stamp.json"
    digest = hashlib.sha1()
    for field_name in ("thickness_um", "d_spacing_A", "tilt_deg", "mosaic_deg", "strength", "grain_id"):
        digest.update(np.ascontiguousarray(getattr(particle, field_name)).tobytes())
    digest.update(repr((particle.step_um, tuple(particle.origin_um))).encode())
    stamp = json.dumps(
        {
            "seed": int(seed),
            "settings": _settings_attrs(settings.resolved()),
            "particle": particle.name,
            "fields_sha1": digest.hexdigest(),
            "write_kwargs": write_kwargs,
        },
        sort_keys=True,
        default=str,
    )
    if not force and dataset.exists() and stamp_path.exists() and stamp_path.read_text() == stamp:
        return dataset
    sim = sxdm_scan.simulate_scan(particle, settings, np.random.default_rng(seed))
    sxdm_scan.write_simulation(sim, dataset, **write_kwargs)
    write_truth(sim, folder / f"{name}_truth.h5", dataset.name)
    stamp_path.write_text(stamp)
    return dataset


def truth_summary(truth: sxdm_scan.ScanTruth, design: dict, mask_fraction: float = 0.2) -> dict:
    """Design targets measured on the scan-grid truth maps (inside ``intensity > mask_fraction·max``).

    - ``stripe_period_um``: period of the d modulation along the stripe normal (x or y), from the peak
      of the zero-padded spectrum of the line-averaged d profile (detrended);
    - ``bending_radius_um``: 1 / slope of the bending tilt component against the distance across the
      bending axis (least squares; tilt in rad, distance in µm);
    - ``d_spread_rel``: standard deviation / mean of the truth d map (the paper's Δd/d of Fig. 1E).
    """
    mask = truth.intensity > mask_fraction * np.nanmax(truth.intensity)
    d = truth.mean_d_A
    angle = np.radians(design.get("stripe_normal_angle_deg", 90.0))
    if np.isclose(angle % np.pi, np.pi / 2):  # d varies along y: average each row
        step = float(truth.y_um[1, 0] - truth.y_um[0, 0])
        d_lines, mask_lines = d, mask
    elif np.isclose(angle % np.pi, 0.0):  # d varies along x: average each column
        step = float(truth.x_um[0, 1] - truth.x_um[0, 0])
        d_lines, mask_lines = d.T, mask.T
    else:
        raise ValueError("truth_summary handles stripes whose d varies along x or y (normal 0° or 90°) only")
    rows = np.flatnonzero(mask_lines.any(axis=1))
    profile = np.array([d_lines[j, mask_lines[j]].mean() for j in rows])
    profile = profile - np.polyval(np.polyfit(rows, profile, 1), rows)
    n_pad = 4096
    spectrum = np.abs(np.fft.rfft(profile * np.hanning(profile.size), n_pad))
    freqs = np.fft.rfftfreq(n_pad, d=step)
    valid = freqs > 1.0 / (profile.size * step)
    period = 1.0 / freqs[valid][np.argmax(spectrum[valid])]
    axis = np.radians(design.get("bending_axis_angle_deg", 90.0))
    across = truth.x_um * np.sin(axis) - truth.y_um * np.cos(axis)
    tilt_along_axis = truth.tilt_deg[0] * np.cos(axis) + truth.tilt_deg[1] * np.sin(axis)
    slope = np.polyfit(across[mask], np.radians(tilt_along_axis[mask]), 1)[0]
    return {
        "stripe_period_um": float(period),
        "bending_radius_um": float(1.0 / slope),
        "d_spread_rel": float(np.std(d[mask]) / np.mean(d[mask])),
        "n_points_in_mask": int(mask.sum()),
    }
