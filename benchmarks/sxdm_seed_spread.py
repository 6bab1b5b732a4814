"""Where the SXDM ensemble and drift tests' tolerances come from: the spread of their measures over seeds.

Run after a change of the forward model or the reducer, and update the measured ranges stated beside the
asserts of ``tests/test_sxdm_ensemble.py`` and ``tests/test_sxdm_drift.py`` (a tolerance is set from the
spread, never just under one seed's value). About 2 min for the ensemble (3 seeds, detector frames at
0.2 µm) and ≈ 10 min for the drift (4 seed pairs, two crystals) on two cores::

    python benchmarks/sxdm_seed_spread.py [ensemble] [drift]
"""

from __future__ import annotations

import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from helpers.sxdm import curvature as cv
from helpers.sxdm import domains as dm
from helpers.sxdm.maps import tilt_components_deg
from helpers.sxdm.reduce import reduce
from helpers.synthetic import sxdm_ensemble as se
from helpers.synthetic import sxdm_model as sm
from helpers.synthetic import sxdm_scan as ss

FIT_NUMBERS = (1, 2, 3, 5, 6, 7, 8)


def ensemble_spread(seeds=(2026, 1, 2), step_um: float = 0.2) -> None:
    """Per seed: R vs the exact truth field's R and the design R; #8's domains vs their truth means."""
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as cache:
        for seed in seeds:
            ens = se.ensemble_maps(method="frames", cache=Path(cache), scan_step_um=step_um, seed=seed)
            for n in FIT_NUMBERS:
                maps = ens[n]["maps"]
                main = dm.segment_domains(maps.tilt_xy_deg, None, maps.mask, tilt_jump_deg=0.08) == 1
                res = cv.particle_curvature(maps.tilt_xy_deg, main, maps.x_um, maps.y_um)
                exact = cv.particle_curvature(np.moveaxis(ens[n]["truth"]["tilt_deg"], 0, -1), main,
                                              maps.x_um, maps.y_um, n_block_bootstrap=0)
                design = ens[n]["spec"].radius_um
                print(f"seed {seed} #{n}: R/R_exact − 1 = {res.radius_um / exact.radius_um - 1:+.4f}, "
                      f"R/R_design − 1 = {res.radius_um / design - 1:+.4f}, flags {res.flags}")
            maps, truth = ens[8]["maps"], ens[8]["truth"]
            labels = dm.segment_domains(maps.tilt_xy_deg, maps.d_spacing, maps.mask, tilt_jump_deg=0.08,
                                        d_jump_angstrom=1.5e-3)
            stats = {s.label: s for s in dm.domain_stats(labels, maps.tilt_xy_deg, maps.d_spacing,
                                                         maps.intensity, maps.x_um, maps.y_um)}
            true_tilt = tilt_components_deg(truth["mean_q"], maps.peak_frame)
            for t, (lab, iou) in dm.match_domains(labels, np.where(maps.mask, truth["domains"], 0)).items():
                sel = labels == lab
                d_true = truth["mean_d_A"][sel].mean()
                tilt_err = [stats[lab].mean_tilt_deg[k] - true_tilt[sel, k].mean() for k in range(2)]
                print(f"seed {seed} #8 domain {t}: {sel.sum()} points, IoU {iou:.3f}, "
                      f"Δd/d {(stats[lab].mean_d_angstrom - d_true) / d_true:+.1e}, "
                      f"Δtilt {np.round(tilt_err, 4)} deg")


def _drift_scan(folder: Path, drift_um_per_eta: float, particle_seed: int, noise_seed: int,
                crystal: str = "compact"):
    """A drift scan. ``compact``: the drift tests' striped crystal bent along the rocking direction,
    40 × 40 points at 0.1 µm, 30 eta, 32² px ROI; ``fig1``: particle 1 (bent 0.8° about x, its peak
    sweeping ≈ 100 columns) with the bundled sample's settings (20 eta, 64 × 120 px ROI)."""
    import dataclasses

    from helpers.synthetic import sxdm_samples

    if crystal == "fig1":
        particle = sm.fig1_particle(np.random.default_rng(particle_seed))
        settings = dataclasses.replace(sxdm_samples.fig1_settings(), drift_um_per_eta=drift_um_per_eta)
    else:
        particle = sm.compact_striped_particle(np.random.default_rng(particle_seed))
        base = ss.ScanSettings()
        r_c, c_c = (int(round(v)) for v in base.beam_center_px)
        theta = np.degrees(np.arcsin(base.wavelength_m * 1e10 / (2 * base.d_ref_A)))
        settings = ss.ScanSettings(
            n_fast=40, n_slow=40, start_um=(0.05, 0.05), step_um=(0.1, 0.1),
            roi=(r_c - 16, r_c + 16, c_c - 16, c_c + 16), drift_um_per_eta=drift_um_per_eta,
            position_jitter_um=0.0, eta_deg=theta + 0.025 * (np.arange(30) - 14.5),
        )
    sim = ss.simulate_scan(particle, settings, np.random.default_rng(noise_seed))
    return ss.write_simulation(sim, folder / "scan.h5", external_frames=False), sim


def _strain_rmse(maps, truth) -> float:
    d_true = 2 * np.pi / np.linalg.norm(truth.mean_q, axis=-1)
    inside = truth.intensity >= 0.2 * truth.intensity.max()
    return float(np.sqrt(np.nanmean(((maps.strain - (d_true / maps.reference_d - 1))[inside]) ** 2)))


def drift_spread(seed_pairs=((1, 2), (3, 4), (5, 6), (7, 8)), crystals=("compact", "fig1")) -> None:
    """Per crystal and seed pair: drift estimate error, the whole-particle and the confirmed (both
    halves) shift, flags, and the strain RMSE before/after correction."""
    for crystal in crystals:
        for particle_seed, noise_seed in seed_pairs:
            for drift in (0.004, 0.0):
                with tempfile.TemporaryDirectory(dir=Path.cwd()) as folder, warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    path, sim = _drift_scan(Path(folder), drift, particle_seed, noise_seed, crystal)
                    est = reduce(path, method="com", progress=False, drift="estimate")
                    cor = reduce(path, method="com", progress=False, drift="correct")
                p = est.params
                line = f"{crystal} seeds {(particle_seed, noise_seed)} drift {drift * 1e3:.0f} nm/eta: "
                fitted = np.array(p["drift_fitted"], bool)
                if drift:
                    err = (np.array(p["drift_um"]) - sim.truth.drift_um)[fitted]
                    line += f"error {np.sqrt(np.mean(err**2)) * 1e3:.2f} nm rms, "
                    line += f"{np.abs(err).max() * 1e3:.2f} max; true max over the fitted maps "
                    line += f"{np.hypot(*sim.truth.drift_um[fitted].T).max() * 1e3:.1f} nm; "
                confirmed = p["drift_confirmed_um"]
                line += f"max {p['drift_max_um'] * 1e3:.2f} nm, confirmed "
                line += f"{'n/a' if confirmed is None else f'{confirmed * 1e3:.2f}'} nm, flagged "
                line += f"{p['drift_flagged']}, measurable {p['drift_measurable']}; strain RMSE "
                line += f"{_strain_rmse(est, sim.truth):.2e} → {_strain_rmse(cor, sim.truth):.2e} corrected"
                print(line, flush=True)


if __name__ == "__main__":
    chosen = sys.argv[1:] or ["ensemble", "drift"]
    if "ensemble" in chosen:
        ensemble_spread()
    if "drift" in chosen:
        drift_spread()
