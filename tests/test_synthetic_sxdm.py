"""SXDM forward model: primitives against analytic values, frames against truth, detector effects,
and the bundled sample's design targets and reproducibility."""

import os

import h5py
import numpy as np
import pytest
from regenerated import assert_regenerated_equal

from helpers.paths import data_sample
from helpers.sxdm import geometry as geo
from helpers.synthetic import sxdm_model as sm
from helpers.synthetic import sxdm_samples, sxdm_scan


def test_bending_primitive_has_exactly_the_requested_radius():
    """Tilt grows by 1/R rad per µm across any in-plane axis (analytic; float64 rounding only)."""
    for axis_deg in (0.0, 90.0, 35.0):
        model = sm.blank_particle((3.0, 3.0), step_um=0.05)
        sm.add_grain(model, (1.5, 1.5), (1.2, 1.0))
        sm.add_bending(model, 250.0, axis_angle_deg=axis_deg)
        a = np.radians(axis_deg)
        gx, gy = model.coordinates()
        across = gx * np.sin(a) - gy * np.cos(a)
        omega = np.radians(model.tilt_deg[0] * np.cos(a) + model.tilt_deg[1] * np.sin(a))
        sup = model.support
        slope = np.polyfit(across[sup], omega[sup], 1)[0]
        assert slope == pytest.approx(1 / 250.0, rel=1e-9)
        # the rotation axis is the bending axis: no tilt component along a × z
        perp = model.tilt_deg[0] * np.sin(a) - model.tilt_deg[1] * np.cos(a)
        assert np.abs(perp[sup]).max() < 1e-12


def test_stripes_have_the_requested_period_and_rms():
    """Sinusoidal stripes: rms Δd/d = A/√2 over whole periods; spectrum peak at 1/period."""
    model = sm.blank_particle((4.4, 4.4), step_um=0.01)
    model.thickness_um[:] = 1.0
    sm.add_stripes(model, 0.44, 1e-3, intensity_amplitude=0.2)
    rel = model.d_spacing_A / sm.D003_A - 1
    assert rel.std() == pytest.approx(1e-3 / np.sqrt(2), rel=1e-3)
    spectrum = np.abs(np.fft.rfft(rel[:, 0]))
    freqs = np.fft.rfftfreq(rel.shape[0], d=0.01)
    assert 1 / freqs[np.argmax(spectrum)] == pytest.approx(0.44, rel=1e-6)


def test_local_q_points_along_the_tilted_normal_with_length_2pi_over_d():
    model = sm.blank_particle((1.0, 1.0), step_um=0.1)
    sm.add_grain(model, (0.5, 0.5), (0.4, 0.4), d_spacing_A=4.7, tilt_deg=(0.3, -0.2))
    q = model.q_vectors()[model.support]
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 2 * np.pi / 4.7, rtol=1e-14)
    # small rotation about x by +ω_x turns z towards −y; about y by +ω_y towards +x
    assert np.all(q[:, 1] < 0) and np.all(q[:, 0] < 0)


@pytest.fixture(scope="module")
def fig1_small():
    """The Fig. 1 particle on a coarser fine grid, scanned over its centre without drift."""
    particle = sm.fig1_particle(np.random.default_rng(5), step_um=0.03)
    settings = sxdm_scan.ScanSettings(
        n_fast=5, n_slow=4, start_um=(1.6, 1.7), drift_um_per_eta=0.0, roi=sxdm_samples.FIG1_ROI
    )
    return sxdm_scan.simulate_scan(particle, settings, np.random.default_rng(6))


def test_noise_free_frames_have_their_3d_centre_of_mass_at_the_truth_q(fig1_small):
    """The footprint-weighted mean Q (truth) is the 3-D centre of mass of the expected intensity.

    Exact in the model up to: eta point-sampling of Gaussians with σ ≥ 0.6 step (< 1e-7 relative),
    Q non-linearity across a spot (≈ (5 px · 3.4e-5 rad)² ≈ 3e-8) and tails cut at the ROI/rocking
    range (peaks sit ≥ 6σ inside). 1e-6 relative is well below the 4e-4 microstrain being measured.
    """
    sim = fig1_small
    s = sim.settings
    q = geo.pixel_q_vectors(
        s.eta_deg,
        s.phi_deg,
        s.nu_deg,
        s.delta_deg,
        s.wavelength_m,
        s.distance_m,
        s.pixel_size_m,
        s.beam_center_px,
        s.detector_shape,
        s.roi,
    )
    for j, i in ((0, 0), (2, 3), (3, 4)):
        frames = sim.expected_frames(i, j, drift=False)
        com = np.einsum("erc,erck->k", frames, q) / frames.sum()
        truth_q = sim.truth.mean_q[j, i]
        assert np.linalg.norm(com - truth_q) / np.linalg.norm(truth_q) < 1e-6
        # eta point-sampling of the rocking curves changes the total by up to 2·exp(−2π²(σ/Δη)²) =
        # 7e-5 for σ = 0.018° (instrument ⊕ mosaic) and Δη = 0.025°: particle 1 bends about x, so all
        # its cells share one rocking position and this aliasing does not average out
        assert frames.sum() == pytest.approx(sim.truth.intensity[j, i], rel=1e-4)


def test_fused_grains_give_a_split_rocking_curve_at_their_boundary():
    """Two grains 0.2° apart in tilt about y, beam on the boundary: two rocking-curve maxima 0.2° apart."""
    model = sm.blank_particle((2.0, 1.0), step_um=0.02)
    sm.add_grain(model, (0.55, 0.5), (0.45, 0.4), tilt_deg=(0.0, -0.1), exponent=6)
    sm.add_grain(model, (1.45, 0.5), (0.45, 0.4), tilt_deg=(0.0, 0.1), exponent=6)
    settings = sxdm_scan.settings_for_particle(
        model, scan_step_um=0.1, eta_step_deg=0.01, drift_um_per_eta=0.0
    )
    sim = sxdm_scan.simulate_scan(model, settings, np.random.default_rng(0))
    i = int(np.argmin(np.abs(sim.truth.x_um[0] - 1.0)))
    j = int(np.argmin(np.abs(sim.truth.y_um[:, 0] - 0.5)))
    curve = sim.expected_frames(i, j, drift=False).sum(axis=(1, 2))
    peaks = [k for k in range(1, curve.size - 1) if curve[k] > curve[k - 1] and curve[k] >= curve[k + 1]]
    strong = [k for k in peaks if curve[k] > 0.3 * curve.max()]
    assert len(strong) == 2
    assert settings.eta_deg[strong[1]] - settings.eta_deg[strong[0]] == pytest.approx(0.2, abs=0.015)


def test_maxipix_gaps_hot_dead_pixels_and_poisson_background():
    """Flat background λ = 2 counts/pixel: normal pixels mean 2, wide chip-edge pixels 6 (corner 18),
    gaps 0, dead 0, hot λ + rate; means over 2400 frames within 5 standard errors."""
    model = sm.blank_particle((0.4, 0.4), step_um=0.05)
    sm.add_grain(model, (0.2, 0.2), (0.1, 0.1))
    settings = sxdm_scan.ScanSettings(
        n_fast=20,
        n_slow=20,
        eta_deg=np.linspace(7.4, 7.6, 6),
        roi=(250, 266, 250, 266),
        counts_per_um=0.0,
        background_per_px=2.0,
        n_hot=2,
        n_dead=2,
        hot_rate=40.0,
        monitor_rel_noise=0.0,
        monitor_decay_rel=0.0,
    )
    sim = sxdm_scan.simulate_scan(model, settings, np.random.default_rng(3))
    frames = sim.frames().reshape(-1, 16, 16).astype(float)
    mean = frames.mean(axis=0)
    n = frames.shape[0]
    local_mask = sim.pixel_mask[250:266, 250:266]
    gap = np.zeros((16, 16), bool)
    gap[6:10, :] = True
    gap[:, 6:10] = True
    assert np.all(frames[:, gap] == 0) and np.all(local_mask[gap])
    wide = np.zeros(16, bool)
    wide[[5, 10]] = True
    expected = np.full((16, 16), 2.0) * np.where(wide, 3, 1)[:, None] * np.where(wide, 3, 1)[None, :]
    hot_r, hot_c = sim.hot_pixels
    dead_r, dead_c = sim.dead_pixels
    expected[hot_r, hot_c] += 40.0
    expected[dead_r, dead_c] = 0.0
    good = ~gap
    z = (mean[good] - expected[good]) / np.sqrt(np.maximum(expected[good], 1e-9) / n)
    assert np.abs(z[expected[good] > 0]).max() < 5
    assert local_mask[hot_r, hot_c].all() and local_mask[dead_r, dead_c].all()
    assert local_mask.sum() == gap.sum() + 4


def test_counts_follow_the_monitor():
    """Beam decay of 20 % across the eta maps: total counts per map follow the monitor to Poisson error."""
    model = sm.blank_particle((0.6, 0.6), step_um=0.03)
    sm.add_grain(model, (0.3, 0.3), (0.25, 0.25))
    settings = sxdm_scan.settings_for_particle(
        model,
        scan_step_um=0.1,
        eta_step_deg=0.01,
        monitor_decay_rel=0.2,
        background_per_px=0.0,
        n_hot=0,
        n_dead=0,
        counts_per_um=5e4,
        drift_um_per_eta=0.0,
    )
    sim = sxdm_scan.simulate_scan(model, settings, np.random.default_rng(4))
    frames = sim.frames().astype(float)  # (n_slow, n_fast, n_eta, ny, nx)
    measured = frames.sum(axis=(0, 1, 3, 4))
    s = sim.settings
    expected = np.zeros(s.eta_deg.size)
    for j in range(s.n_slow):
        for i in range(s.n_fast):
            per_eta = sim.expected_frames(i, j).sum(axis=(1, 2))
            expected += per_eta * sim.monitor[:, j * s.n_fast + i] / s.monitor_mean
    ok = expected > 100
    z = (measured[ok] - expected[ok]) / np.sqrt(expected[ok])
    assert np.abs(z).max() < 5


def test_fig1_truth_reproduces_the_design_targets():
    """Committed sample's truth: stripe period 0.44 µm ± 3 % (spectral resolution of a ~2.6 µm profile
    with zero padding), bending R = design (3.2 µm / 0.8° = 229 µm) ± 5 % (random mosaicity of 0.003°
    rms over ~0.4 µm adds scatter to the fitted slope), Δd/d = 4.2e-4 ± 5 % (paper, Fig. 1E)."""
    particle, truth, _ = sxdm_samples.load_truth(data_sample("sxdm_fig1_particle_truth.h5"))
    summary = sxdm_samples.truth_summary(truth, particle.design)
    assert summary["stripe_period_um"] == pytest.approx(0.44, rel=0.03)
    assert particle.design["total_curvature_deg"] == 0.8 and particle.design["bending_axis_angle_deg"] == 0.0
    assert summary["bending_radius_um"] == pytest.approx(particle.design["bending_radius_um"], rel=0.05)
    assert summary["d_spread_rel"] == pytest.approx(4.2e-4, rel=0.05)
    assert summary["n_points_in_mask"] > 400


def _h5_items(path):
    out = {}

    def visit(name, obj):
        attrs = {k: obj.attrs[k] for k in obj.attrs}
        if isinstance(obj, h5py.Dataset):
            out[name] = (obj[()] if not obj.is_virtual else obj.shape, attrs)
        else:
            out[name] = (None, attrs)

    with h5py.File(path, "r") as h5:
        out["/"] = (None, {k: h5.attrs[k] for k in h5.attrs})
        h5.visititems(visit)
    return out


def _assert_same(a, b, where):
    assert a.keys() == b.keys(), where
    for key in a:
        (va, aa), (vb, ab) = a[key], b[key]
        assert aa.keys() == ab.keys(), f"{where}:{key}"
        for k in aa:
            assert_regenerated_equal(aa[k], ab[k], f"{where}:{key}@{k}")
        if va is None:
            assert vb is None, f"{where}:{key}"
        else:
            assert_regenerated_equal(va, vb, f"{where}:{key}")


def test_make_data_regenerates_the_committed_sample(tmp_path):
    """Regenerated sample equals the committed one: every dataset and attribute of the dataset and
    truth files and every frame of every eta map (~10 s; NMC_QUICK_DATA_CHECK=1 compares the first 3
    scan lines only: the lines come from one seeded stream, so a prefix equals a full run's)."""
    n_lines = 3 if os.environ.get("NMC_QUICK_DATA_CHECK") else None
    sxdm_samples.write_fig1_sample(tmp_path, n_lines=n_lines)
    committed = data_sample("sxdm_fig1_particle")
    name = "sxdm_fig1_particle"
    _assert_same(_h5_items(committed / f"{name}.h5"), _h5_items(tmp_path / name / f"{name}.h5"), "dataset")
    _assert_same(
        _h5_items(committed.parent / f"{name}_truth.h5"), _h5_items(tmp_path / f"{name}_truth.h5"), "truth"
    )
    n_points = 40 * (40 if n_lines is None else n_lines)
    scans = sorted(p.name for p in committed.glob("scan*"))
    assert len(scans) == 20
    for scan in scans:
        with (
            h5py.File(committed / scan / "mpx1x4_0000.h5") as a,
            h5py.File(tmp_path / name / scan / "mpx1x4_0000.h5") as b,
        ):
            assert_regenerated_equal(
                b["entry_0000/measurement/data"][:n_points], a["entry_0000/measurement/data"][:n_points], scan
            )


def test_aggregate_with_crystallites_and_a_peak_off_the_detector():
    """Ensemble building blocks together: two fused grains with their own tilt and d, bending of one
    grain only, small neighbouring crystallites, stripes; then a tilt about x of 0.8° moves the
    Bragg spot along the Debye ring by |Q|·0.8°/(k·p/L) ≈ 106 px, off a 64-px ROI."""
    rng = np.random.default_rng(8)
    model = sm.blank_particle((3.0, 2.0), step_um=0.03)
    sm.add_grain(model, (1.0, 1.0), (0.8, 0.7), grain_id=1)
    sm.add_grain(
        model, (2.0, 1.0), (0.6, 0.6), d_spacing_A=sm.D003_A * (1 + 3e-4), tilt_deg=(0.05, 0.1), grain_id=2
    )
    sm.add_bending(model, 300.0, grain_ids=1)
    sm.add_stripes(model, 0.44, 5e-4, grain_ids=2)
    sm.add_crystallites(model, rng, 3, region_um=(0.2, 2.8, 0.1, 0.4))
    assert set(np.unique(model.grain_id)) == {0, 1, 2, 3, 4, 5}
    # the bending touched grain 1 only
    assert np.ptp(model.tilt_deg[1][model.grain_id == 1]) > 0.2
    assert np.ptp(model.tilt_deg[1][model.grain_id == 2]) == 0.0
    settings = sxdm_scan.settings_for_particle(model, scan_step_um=0.2)
    sim = sxdm_scan.simulate_scan(model, settings, np.random.default_rng(9))
    r0, r1, c0, c1 = sim.settings.roi
    inside = sim.truth.intensity > 0.2 * sim.truth.intensity.max()
    assert np.all((sim.truth.peak_col_px[inside] > c0) & (sim.truth.peak_col_px[inside] < c1))
    tilted = model.copy()
    tilted.tilt_deg[0][tilted.support] += 0.8
    off = sxdm_scan.simulate_scan(tilted, sim.settings, np.random.default_rng(9))
    assert np.all(off.truth.peak_col_px[inside] < c0 - 30)
    j, i = np.argwhere(inside)[0]
    assert off.expected_frames(i, j).sum() < 1e-3 * off.truth.intensity[j, i]


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda m: sm.add_grain(m, (10.0, 10.0), (0.2, 0.2)), "outside the grid"),
        (lambda m: sm.add_bending(m, 0.0), "radius_um"),
        (lambda m: sm.add_stripes(m, -1.0, 1e-4), "period_um"),
        (lambda m: sxdm_scan.settings_for_particle(m, no_such_field=1), "no field"),
        (
            lambda m: sxdm_scan.simulate_scan(
                m, sxdm_scan.ScanSettings(roi=(0, 600, 0, 64)), np.random.default_rng(0)
            ),
            "roi",
        ),
    ],
)
def test_bad_model_and_scan_input_raise_clear_errors(call, match):
    model = sm.blank_particle((1.0, 1.0), step_um=0.05)
    sm.add_grain(model, (0.5, 0.5), (0.3, 0.3))
    with pytest.raises(ValueError, match=match):
        call(model)


def test_cached_series_is_written_once_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    model = sm.blank_particle((0.6, 0.6), step_um=0.05, name="tiny")
    sm.add_grain(model, (0.3, 0.3), (0.2, 0.2))
    settings = sxdm_scan.settings_for_particle(model, scan_step_um=0.2)
    path = sxdm_samples.cached_series("tiny", model, settings, seed=1)
    first = path.stat().st_mtime_ns
    assert sxdm_samples.cached_series("tiny", model, settings, seed=1).stat().st_mtime_ns == first
    _, truth, saved = sxdm_samples.load_truth(path.parent / "tiny_truth.h5")
    assert saved["n_fast"] == settings.n_fast and truth.intensity.shape == (settings.n_slow, settings.n_fast)
    sxdm_samples.cached_series("tiny", model, settings, seed=2)  # another seed: rewritten
    second = path.stat().st_mtime_ns
    assert second != first
    model.d_spacing_A[model.support] *= 1.001  # same name, other fields: rewritten
    sxdm_samples.cached_series("tiny", model, settings, seed=2)
    assert path.stat().st_mtime_ns != second


def test_drift_moves_the_footprint_of_each_eta_map_and_a_short_rocking_range_cuts_the_peak():
    """Eta map k of point p sees the crystal at p + drift_k; an eta range ending before the
    Bragg angles loses the intensity the truth keeps."""
    model = sm.fig1_particle(np.random.default_rng(5), step_um=0.04)
    settings = sxdm_scan.ScanSettings(
        n_fast=2, n_slow=2, start_um=(1.2, 1.3), eta_deg=np.linspace(7.3, 7.7, 21), drift_um_per_eta=0.02
    )
    sim = sxdm_scan.simulate_scan(model, settings, np.random.default_rng(7))
    drift = sim.truth.drift_um
    assert np.abs(drift).max() > 0.01 and np.all(drift[10] == 0)
    with_drift = sim.expected_frames(1, 0, drift=True)
    px, py = 1.2 + 0.1, 1.3
    strongest = np.argsort(with_drift.sum(axis=(1, 2)))[-3:]
    assert not np.all(drift[strongest] == 0)
    for k in strongest:
        moved = sim.expected_at(px + drift[k, 0], py + drift[k, 1], drift=False)
        # equal up to the footprint tails cut at 3.5 σ (exp(-3.5²/2) = 0.2 % of the weight) around
        # slightly different window centres
        np.testing.assert_allclose(with_drift[k], moved[k], rtol=0, atol=3e-3 * moved[k].max())
        assert with_drift[k].sum() > 10.0
    short = sxdm_scan.ScanSettings(n_fast=2, n_slow=2, start_um=(1.2, 1.3), eta_deg=np.linspace(7.0, 7.25, 6))
    cut = sxdm_scan.simulate_scan(model, short, np.random.default_rng(7))
    assert np.all(cut.truth.peak_eta_deg > 7.25)
    assert cut.expected_frames(0, 0).sum() < 0.05 * cut.truth.intensity[0, 0]
