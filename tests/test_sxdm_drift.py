"""Sample drift between eta maps (helpers.sxdm.drift) against the forward model's known drift vectors.

Scans: the Fig. 1 particle (bent about y, stripes along y), 40 × 40 points at 0.1 µm (the paper's
step, beam 140 nm FWHM), 30 eta, 32² ROI; the forward model's random-walk drift of 4 nm rms per eta
step (≈ 15 nm rms, 30 nm max relative to the middle map) and the same scan without drift (same seeds:
identical particle, noise draws differ only through the drift).
"""

import warnings

import h5py
import numpy as np
import pytest

from helpers.cli import main as cli_main
from helpers.sxdm import drift as D
from helpers.sxdm import io as sxio
from helpers.sxdm import maps as M
from helpers.sxdm import reduce as R
from helpers.synthetic import sxdm_model as SM
from helpers.synthetic import sxdm_scan as SS

STEP_UM = 0.1


def _write(folder, drift_um_per_eta, n=40, step=STEP_UM, n_eta=30):
    particle = SM.compact_striped_particle(np.random.default_rng(1))
    base = SS.ScanSettings()
    r_c, c_c = (int(round(v)) for v in base.beam_center_px)
    theta = np.degrees(np.arcsin(base.wavelength_m * 1e10 / (2 * base.d_ref_A)))
    settings = SS.ScanSettings(
        n_fast=n, n_slow=n, start_um=(0.05, 0.05), step_um=(step, step),
        roi=(r_c - 16, r_c + 16, c_c - 16, c_c + 16), drift_um_per_eta=drift_um_per_eta,
        position_jitter_um=0.0, eta_deg=theta + 0.025 * (np.arange(n_eta) - (n_eta - 1) / 2),
    )
    sim = SS.simulate_scan(particle, settings, np.random.default_rng(2))
    return SS.write_simulation(sim, folder / "scan.h5", external_frames=False), sim


def _reduce(path, mode):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        maps = R.reduce(path, method="com", progress=False, drift=mode)
    return maps, [str(w.message) for w in caught]


def _strain_rmse(maps, truth):
    d_true = 2 * np.pi / np.linalg.norm(truth.mean_q, axis=-1)
    inside = truth.intensity >= 0.2 * truth.intensity.max()
    err = (maps.strain - (d_true / maps.reference_d - 1))[inside]
    return float(np.sqrt(np.nanmean(err**2)))


@pytest.fixture(scope="module")
def drifted(tmp_path_factory):
    path, sim = _write(tmp_path_factory.mktemp("drifted"), 0.004)
    return path, sim, _reduce(path, "estimate"), _reduce(path, "correct")


@pytest.fixture(scope="module")
def still(tmp_path_factory):
    path, sim = _write(tmp_path_factory.mktemp("still"), 0.0)
    return path, sim, _reduce(path, "estimate"), _reduce(path, "correct")


def test_estimated_drift_matches_truth(drifted):
    """The drift component along the bending axis (y here) is recovered to ≤ 5 nm rms, ≤ 12 nm max.

    Only the component perpendicular to the rocking-COM gradient is observable (along the gradient a
    drift is equivalent to a tilt), so the estimated direction must be y (|cos| > 0.99) and x is not
    estimated. Tolerance: the reported 1-σ error per eta map is ≈ 0.5 nm (counting statistics, scaled by
    the scatter of the redundant pair registrations); measured errors over four particle/noise seed
    pairs (1, 2), (3, 4), (5, 6), (7, 8): 1.8–3.8 nm rms, 4.8–9.1 nm max (the shifts are sums of pair
    shifts, a random walk of their errors, plus spline resampling of footprint-blurred maps); the
    bounds are 1/3 and 2/5 of the true drift's rms and max (15, 30 nm), i.e. far from "no estimate".
    """
    _, sim, (maps, _), _ = drifted
    p = maps.params
    assert abs(p["drift_direction_xy"][1]) > 0.99
    est = np.array(p["drift_um"])
    fitted = np.array(p["drift_fitted"], bool)
    assert fitted.sum() >= 15
    err_y = (est[:, 1] - sim.truth.drift_um[:, 1])[fitted]
    true_y = sim.truth.drift_um[fitted, 1]
    assert np.sqrt(np.mean(true_y**2)) > 0.01  # the case really drifts
    assert np.sqrt(np.mean(err_y**2)) < 0.005
    assert np.abs(err_y).max() < 0.012
    ratio = p["drift_direction_xy"][0] / p["drift_direction_xy"][1]
    np.testing.assert_allclose(est[:, 0], est[:, 1] * ratio, atol=1e-5)  # only along the direction


def test_flag_raised_with_drift_not_without(drifted, still):
    """Drift of 30 nm max (> 0.1 × 100 nm step) is flagged with a warning; the drift-free scan is not.

    Without drift the estimates stay under the 10 nm threshold (measured 4.4 nm here, 2.7–4.7 nm for
    seeds (3, 4), (7, 8), 5.4 nm on the 40-eta, 128² px benchmark file: the estimator's own error).
    The flag tests the shift confirmed by both halves of the particle (``drift_confirmed_um``): without
    drift 2.1, 1.0, 7.0, 2.2 nm for seeds (1, 2), (3, 4), (5, 6), (7, 8) (``benchmarks/
    sxdm_seed_spread.py``); seeds (5, 6), whose whole-particle estimate (10.6 nm) raised a false flag
    before, are no longer flagged. With drift the scan is flagged for (1, 2), (3, 4), (7, 8) (confirmed
    20.2, 24.5, 11.4 nm); (5, 6)'s drift is judged not measurable (known limit, unchanged).
    """
    _, _, (maps_d, warn_d), _ = drifted
    _, _, (maps_s, warn_s), _ = still
    assert maps_d.params["drift_flagged"] and maps_d.params["drift_measurable"]
    assert any("shifted by up to" in w for w in warn_d)
    assert maps_d.params["drift_threshold_um"] == pytest.approx(0.1 * STEP_UM)
    assert not maps_s.params["drift_flagged"] and maps_s.params["drift_measurable"]
    assert maps_s.params["drift_max_um"] < maps_s.params["drift_threshold_um"]
    assert not any("shifted by up to" in w for w in warn_s)


def test_correction_improves_strain(drifted, still):
    """drift='correct' cuts the strain RMSE vs truth by ≥ 15 % on the drifted scan (measured 5.0e-5 →
    2.7e-5 here; correcting with the *true* drift gives 2.6e-5, the bilinear resampling of the frames
    limits it; cuts of 46, 38 and 22 % for seeds (1, 2), (3, 4), (7, 8), none for (5, 6) whose drift
    is judged not measurable, so the maps are left as they are) and raises it by < 20 % on the
    drift-free scan (the resampling's cost: measured −1.5 % here, +13 % and +10 % for (3, 4), (7, 8);
    +70 % for (5, 6), whose drift-free estimate reaches 10.6 nm: see the flag test).
    """
    _, sim_d, (maps_d, _), (corr_d, _) = drifted
    _, sim_s, (maps_s, _), (corr_s, _) = still
    before, after = _strain_rmse(maps_d, sim_d.truth), _strain_rmse(corr_d, sim_d.truth)
    assert after < 0.85 * before
    base, again = _strain_rmse(maps_s, sim_s.truth), _strain_rmse(corr_s, sim_s.truth)
    assert again < 1.2 * base
    assert corr_d.params["drift_mode"] == "correct"


def test_known_drift_shifts_frames_exactly(still):
    """A drift of exactly one scan step in +y reads every eta map's frames from the row above (r − d),
    the first row repeating (edge extended); zero drift gives the plain frames."""
    path, _, _, _ = still
    series = sxio.open_sxdm_series(path)
    n_fast = series.scan_shape[1]
    plain = series.read_points(slice(0, 3 * n_fast))
    zero = next(D.iter_drift_corrected_chunks(series, 3 * n_fast, np.zeros((series.n_eta, 2))))[1]
    np.testing.assert_array_equal(zero, plain)
    shift = np.zeros((series.n_eta, 2))
    shift[:, 1] = STEP_UM
    shifted = next(D.iter_drift_corrected_chunks(series, 3 * n_fast, shift))[1]
    np.testing.assert_allclose(shifted[n_fast:], plain[: 2 * n_fast], atol=1e-3)
    np.testing.assert_allclose(shifted[:n_fast], plain[:n_fast], atol=1e-3)


def test_coarse_scan_is_not_measurable(tmp_path):
    """Steps of 0.45 µm (3 × the beam) alias the crystal's features: the pair registrations disagree
    (their scatter inflates the error beyond half the threshold) or run into the ± 1 step bound, so the
    drift is reported 'not measurable', never flagged, and not corrected."""
    path, _ = _write(tmp_path, 0.0, n=8, step=0.45)
    maps, warn = _reduce(path, "correct")
    assert not maps.params["drift_measurable"] and not maps.params["drift_flagged"]
    assert any("not measurable" in w for w in warn)


def test_results_file_cli_and_bad_input(drifted, tmp_path, capsys):
    """The CLI prints the drift line and stores the estimate in /maps; bad drift arguments are refused."""
    path, _, _, _ = drifted
    out = tmp_path / "maps.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert cli_main(["sxdm-maps", str(path), "--out", str(out), "--method", "com", "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "drift: confirmed" in text and "FLAGGED" in text
    params = M.read_maps(out).params
    assert len(params["drift_um"]) == 30 and params["drift_flagged"]
    with h5py.File(out) as h5:
        assert "drift_um" in h5["maps"].attrs["params_json"]
    with pytest.raises(ValueError, match="drift"):
        R.reduce(path, progress=False, drift="fix")
    with pytest.raises(ValueError, match="drift_um has shape"):
        R.reduce(path, progress=False, drift=np.zeros((3, 2)))


def test_unbent_crystal_fits_both_components(tmp_path):
    """Without bending every eta map sees the whole particle, so both drift components are fitted
    (``direction`` 'both'). Its rocking curve is narrow (0.01° mosaic spread + 0.015° resolution):
    only ≈ 4 of 30 eta maps carry ≥ 3 % of the counts, too few overlapping pairs to beat the 5 nm
    error bound, so the drift is reported not measurable, not flagged and not corrected: the maps equal
    the uncorrected ones (and the strain barely depends on drift when all counts come from 4 adjacent
    eta maps)."""
    rng = np.random.default_rng(1)
    model = SM.blank_particle((4.0, 4.0), step_um=0.02, name="unbent")
    SM.add_grain(model, (2.0, 2.0), (1.6, 1.3), thickness_um=1.2, angle_deg=12.0, exponent=3.0, grain_id=1)
    SM.add_shell(model, 0.12, -3e-4)
    SM.add_stripes(model, 0.44, 8.3e-4, intensity_amplitude=0.15, normal_angle_deg=45.0)
    SM.add_mosaicity(model, rng, rms_tilt_deg=0.003, correlation_um=0.4, local_spread_deg=0.01)
    base = SS.ScanSettings()
    r_c, c_c = (int(round(v)) for v in base.beam_center_px)
    theta = np.degrees(np.arcsin(base.wavelength_m * 1e10 / (2 * base.d_ref_A)))
    settings = SS.ScanSettings(
        n_fast=40, n_slow=40, start_um=(0.05, 0.05), step_um=(STEP_UM, STEP_UM),
        roi=(r_c - 16, r_c + 16, c_c - 16, c_c + 16), drift_um_per_eta=0.004, position_jitter_um=0.0,
        eta_deg=theta + 0.025 * (np.arange(30) - 14.5),
    )
    sim = SS.simulate_scan(model, settings, np.random.default_rng(2))
    path = SS.write_simulation(sim, tmp_path / "scan.h5", external_frames=False)
    corrected, _ = _reduce(path, "correct")
    plain, _ = _reduce(path, "off")
    p = corrected.params
    assert p["drift_direction_xy"] == "both"
    assert not p["drift_measurable"] and not p["drift_flagged"]
    np.testing.assert_array_equal(corrected.q, plain.q)


def _fig1_estimate(tmp_path, particle_seed, noise_seed, drift_um_per_eta):
    """Drift estimate of a bundled-sample-like scan (particle 1: bent 0.8° about x, 20 eta, 64 × 120 px)."""
    import dataclasses

    from helpers.synthetic import sxdm_samples as SX

    settings = dataclasses.replace(SX.fig1_settings(), drift_um_per_eta=drift_um_per_eta)
    sim = SS.simulate_scan(SM.fig1_particle(np.random.default_rng(particle_seed)), settings,
                           np.random.default_rng(noise_seed))
    path = SS.write_simulation(sim, tmp_path / f"fig1_{particle_seed}_{drift_um_per_eta}.h5",
                               external_frames=False)
    maps, warned = _reduce(path, "estimate")
    return maps.params, warned, sim.truth.drift_um


@pytest.mark.slow
def test_bent_crystal_footprint_sampling_is_not_drift(tmp_path):
    """Particle 1 without drift is not flagged; with drift it is (the confirmed shift, not the maximum).

    Seeds (1, 2) are the case that raised a false flag before the halves test: the whole-particle
    estimate is 14.6 nm (> the 10 nm threshold) from the last fitted eta map (3 % of the peak's counts),
    lit in one quadrant of the crystal only. Measured confirmed shifts without drift over seeds (1, 2),
    (3, 4), (5, 6), (7, 8): 1.8, 0.2, 0.8, 0.2 nm (bound: half the threshold). With a random-walk drift
    of 8 nm per eta map (seeds (1, 2): 16 nm max over the 6 fitted eta maps; whole-particle estimate
    31.6 nm, confirmed 12.7 nm) the drift is flagged and the confirmed shift lies within ± 10 nm of the
    true one (the tail-map artefact measured without drift reaches 14 nm in one half of the crystal).
    """
    params, warned, _ = _fig1_estimate(tmp_path, 1, 2, 0.0)
    assert params["drift_max_um"] > 0.0  # the whole-particle estimate is not zero ...
    assert params["drift_confirmed_um"] < 0.5 * params["drift_threshold_um"]  # ... but no half confirms it
    assert not params["drift_flagged"] and not any("shifted by up to" in w for w in warned)
    params, warned, true = _fig1_estimate(tmp_path, 1, 2, 0.008)
    fitted = np.array(params["drift_fitted"], bool)
    true_max = float(np.hypot(*true[fitted].T).max())
    assert params["drift_flagged"] and any("shifted by up to" in w for w in warned)
    assert abs(params["drift_confirmed_um"] - true_max) < 0.010
