"""Truth-free correction of the coupling for the CT's void-volume recovery (helpers.correlate).

Fast tests use a stand-in CT: the true phase volume on the CT grid blurred by a Gaussian resolution
(σ = 1.2 voxels, which removes part of the volume of voids a few voxels across, as Paganin blur does)
plus smoothed Gaussian noise, thresholded at the mid grey. Calibration phantoms and the analysed
particle are different seeds of the correlative model. The slow test runs the full chain of notebook 09.
"""

import numpy as np
import pytest
from scipy import ndimage

from helpers import cli_correlate
from helpers import correlate as cr
from helpers import void_recovery as vr
from helpers.synthetic import correlative as co

NMC, AIR = 200.0, 50.0


def _stand_in_ct(seed: int, noise: float = 20.0, design=None):
    """(found void mask, true void mask, particle mask, grey volume, threshold) of the stand-in CT."""
    p = co.make_particle(design or co.CorrelativeDesign(void_diameter_um=(0.06, 0.28)), seed=seed)
    envelope, true_void = co.ct_truth_masks(p)
    rng = np.random.default_rng(seed + 500)
    clean = ndimage.gaussian_filter(np.where(envelope & ~true_void, NMC, AIR), 1.2)
    white = ndimage.gaussian_filter(rng.normal(0, 1, clean.shape), 1)
    grey = np.clip(clean + noise * white / white.std(), 1, 254)
    particle = envelope  # labels: the envelope (holes filled), as ct-analyse's particle labels
    thr = 0.5 * (NMC + AIR)
    return particle & (grey <= thr), true_void, particle, grey, thr


@pytest.fixture(scope="module")
def calibration():
    recs, cnr = [], []
    for seed in range(1000, 1005):
        found, true, particle, grey, thr = _stand_in_ct(seed)
        recs.append(vr.void_detection_record(found, true, 0.025))
        cnr.append(vr.volume_cnr(grey, particle, thr))
    return vr.VoidRecoveryCalibration(recs, np.array(cnr), 0.025)


def test_cnr_is_the_contrast_over_the_air_noise():
    """A block of NMC (200) in air (50) with white Gaussian noise σ = 25: CNR = 150 / 25 = 6; the robust
    σ of 10⁵ air voxels is within 1 % of σ (standard error of a MAD-based σ: 1.1 % / √(n / 10⁴))."""
    rng = np.random.default_rng(3)
    grey = np.full((40, 60, 60), AIR)
    particle = np.zeros(grey.shape, bool)
    particle[10:30, 15:45, 15:45] = True
    grey[particle] = NMC
    grey = np.clip(grey + rng.normal(0, 25.0, grey.shape), 1, 254)
    assert vr.volume_cnr(grey, particle, 125.0) == pytest.approx(6.0, rel=0.03)


def test_a_void_opened_to_the_surface_by_a_thin_break_stays_a_void():
    """A 6-voxel cavity 3 voxels under the surface of a block, joined to the outside by a 1-voxel channel
    (a wall the blur broke): the label excludes it, the envelope closed by a 2-voxel ball holds it, and
    all 216 of its voxels are voids; with no closing none are."""
    grey = np.full((30, 30, 30), AIR)
    grey[5:25, 5:25, 5:25] = NMC
    grey[8:14, 12:18, 12:18] = AIR  # cavity
    grey[5:8, 14, 14] = AIR  # channel to the top face
    labels = (grey > 125).astype(np.int32)
    labels[ndimage.binary_fill_holes(labels > 0)] = 1
    env, voids, _ = cr.found_void_mask(labels, grey, 125.0)
    assert voids[8:14, 12:18, 12:18].all() and voids.sum() >= 216
    _, voids_open, _ = cr.found_void_mask(labels, grey, 125.0, closing_radius_vox=0)
    assert voids_open.sum() == 0


def test_detection_record_of_a_perfect_ct_is_complete():
    """Found = true voids: every true void fully recovered, every found void real, sizes unchanged."""
    _, true, _, _, _ = _stand_in_ct(7)
    rec = vr.void_detection_record(true, true, 0.025)
    big = rec["true_vox"] >= 2
    assert np.all(rec["true_found_vox"][big] == rec["true_vox"][big])
    assert np.all(rec["found_real_vox"] == rec["found_vox"])
    np.testing.assert_allclose(np.sort(rec["found_true_d_um"]), np.sort(rec["found_d_um"]))


def test_predicted_recovery_matches_the_particle_on_one_seed(calibration):
    """The recovery predicted for an analysed particle (seed 3 of the notebook's design, voids
    0.10–0.20 µm: a narrower size distribution than the phantoms') from its measured void table lies
    within 3 σ of its actual recovery, σ being the calibration's own leave-one-out error (the seed spread
    of the prediction); and the recovery is a real correction (well below 1)."""
    found, true, particle, grey, thr = _stand_in_ct(3, design=co.CorrelativeDesign())
    est = vr.estimate_recovery(calibration, found, 0.025, vr.volume_cnr(grey, particle, thr))
    rec = vr.void_detection_record(found, true, 0.025)
    actual = rec["true_found_vox"].sum() / rec["true_vox"].sum()
    assert actual < 0.9
    assert abs(est.recovery - actual) < 3 * est.sigma, (est, actual)
    assert 0 < est.sigma < 0.1


def test_correction_scales_the_coupling_and_widens_its_interval(calibration):
    """κ·R, and the interval's relative half-widths grow in quadrature by z σ_R / R (z = 1.96 at 95 %)."""
    assoc = cr.Association("d", 20, 0.8, (0.6, 0.9), 0.001, 2.5e-3, (2.0e-3, 3.2e-3), 0.95, "association",
                           np.zeros(20), np.zeros(20))
    est = vr.RecoveryEstimate(0.8, 0.04, 6.0, (5.5, 6.5), 0.0, 5)
    out = vr.correct_coupling(assoc, est)
    assert out.coupling == pytest.approx(2.0e-3)
    lo_rel = np.hypot(0.2, 1.959964 * 0.05)
    hi_rel = np.hypot(0.28, 1.959964 * 0.05)
    assert out.coupling_ci == pytest.approx((2.0e-3 * (1 - lo_rel), 2.0e-3 * (1 + hi_rel)))


def test_a_volume_unlike_the_calibration_is_refused(calibration):
    """Three times the noise (CNR ≈ 1/3 of the phantoms'): the detection of small voids differs, so the
    correction refuses with the two CNRs and what to do; so does another voxel size."""
    found, _, particle, grey, thr = _stand_in_ct(3, noise=60.0)
    cnr = vr.volume_cnr(grey, particle, thr)
    assert cnr < 0.5 * calibration.cnr.min()
    with pytest.raises(vr.CalibrationMismatch, match=r"contrast-to-noise ratio .* outside the calibration's"
                       r".*calibrate with phantoms simulated at the data's dose"):
        vr.estimate_recovery(calibration, found, 0.025, cnr)
    with pytest.raises(vr.CalibrationMismatch, match="voxel size 0.05 µm differs"):
        vr.estimate_recovery(calibration, found, 0.05, float(np.mean(calibration.cnr)))


def test_calibration_round_trips_through_json(calibration):
    back = vr.VoidRecoveryCalibration.from_json(calibration.to_json())
    r = calibration.records[0]
    expected = calibration.fold(r["found_d_um"], r["found_vox"])
    assert back.fold(r["found_d_um"], r["found_vox"]) == pytest.approx(expected)
    assert back.bins_um[-1] == np.inf


@pytest.mark.slow
def test_full_chain_correction_on_one_seed(tmp_path):
    """Full chain (forward model → ct-reconstruct → ct-analyse) on the coupled particle of seed 1 with
    the notebook's calibration (six phantoms, cached; ≈ 1.5 min the first time): the predicted recovery
    lies within 3 σ of the actual one, σ the calibration's leave-one-out error (≈ 0.035)."""
    from helpers.synthetic import correlative_calibration as cc

    cal = cc.cached_calibration()
    sample = co.cached_sample(coupled=True, seed=1)
    analysis, recon = cli_correlate.run_ct_chain(sample["ct"], tmp_path, "seed1", 79.5)
    labels, grey, thr, vox = cr.read_ct_analysis(analysis, recon, "/volume_8bit")
    particle, found, _ = cr.found_void_mask(labels, grey, thr)
    est = vr.estimate_recovery(cal, found, vox, vr.volume_cnr(grey, particle, thr))
    true_void = co.true_ct_voids(sample["truth"])
    rec = vr.void_detection_record(found, true_void, vox)
    actual = rec["true_found_vox"].sum() / rec["true_vox"].sum()
    assert abs(est.recovery - actual) < 3 * est.sigma, (est, actual)


def test_command_corrects_or_refuses_by_the_calibration(tmp_path, calibration, capsys):
    """``nmc-workbook correlate --recovery-calibration``: a missing calibration file is exit code 2 before
    any work; a CT volume whose contrast-to-noise lies outside the calibration's is exit code 2 with both
    CNRs named, and no output file is left; at the calibration's dose the corrected coupling (κ · R) is
    written with the calibration's checksum."""
    import h5py

    from helpers.cli import main as cli_main
    from helpers.sxdm.maps import write_maps
    from helpers.synthetic import sxdm_ensemble, sxdm_scan

    p = co.make_particle(seed=0)
    sim = sxdm_scan.simulate_scan(co.sxdm_particle(p), co.sxdm_settings(p), np.random.default_rng(1))
    maps = sxdm_ensemble.maps_from_truth(sim, np.random.default_rng(2))
    maps_path = write_maps(tmp_path / "maps.h5", maps, provenance={"input_file": "forward model"})
    _, _, particle, grey, thr = _stand_in_ct(0, noise=60.0, design=co.CorrelativeDesign())
    np.save(tmp_path / "grey.npy", np.clip(grey, 0, 255).astype(np.uint8))
    with h5py.File(tmp_path / "analysis.h5", "w") as f:
        f["labels"] = particle.astype(np.int32)
        f.attrs.update({"voxel_size_um": 0.025, "void_threshold_grey": thr, "input_file": "grey.npy"})
    (tmp_path / "cal.json").write_text(calibration.to_json())
    true = p.alignment()
    args = ["correlate", str(maps_path), str(tmp_path / "analysis.h5"), "--out", str(tmp_path / "c.h5"),
            "--angle-deg", str(true["angle_deg"]), "--shift-um", *map(str, true["shift_um"]),
            "--footprint-um", "0.1", "--recovery-calibration"]
    assert cli_main([*args, str(tmp_path / "missing.json")]) == 2
    assert "recovery calibration" in capsys.readouterr().err
    assert cli_main([*args, str(tmp_path / "cal.json")]) == 2
    err = capsys.readouterr().err
    assert "contrast-to-noise ratio" in err and "outside the calibration's" in err
    assert not (tmp_path / "c.h5").exists()
    # the same particle at the calibration's dose: corrected coupling written beside the raw one
    _, _, particle, grey, thr = _stand_in_ct(0, design=co.CorrelativeDesign())
    np.save(tmp_path / "grey.npy", np.clip(grey, 0, 255).astype(np.uint8))
    assert cli_main([*args, str(tmp_path / "cal.json")]) == 0
    with h5py.File(tmp_path / "c.h5") as f:
        g = f["coupling_corrected"].attrs
        k = f["association_d"].attrs["coupling"]
        assert 0.5 < g["recovery"] < 1 and g["coupling"] == pytest.approx(k * g["recovery"])
        assert len(f.attrs["recovery_calibration_sha256"]) == 64
