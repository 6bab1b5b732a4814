"""Radius of curvature (helpers.sxdm.curvature) on analytic, uniformly bent tilt fields of known R."""

from __future__ import annotations

import numpy as np
import pytest

from helpers.sxdm import curvature as cv

STEP_UM = 0.1


def bent_field(
    radius_um,
    *,
    noise_deg=0.005,
    gradient_deg=30.0,
    tilt_dir_deg=75.0,
    semi_axes_um=(2.03, 1.43),
    step_um=STEP_UM,
    seed=0,
    offset_deg=(0.02, -0.01),
):
    """A uniformly bent crystal: tilt vector linear in position along one direction, plus noise.

    The elliptical particle has its first semi-axis along the gradient direction, so the true size
    along that direction is 2 × semi_axes_um[0].
    """
    rng = np.random.default_rng(seed)
    n = int(np.ceil(2.6 * max(semi_axes_um) / step_um)) | 1
    x_um = (np.arange(n) - n // 2) * step_um
    y_um = x_um.copy()
    xx, yy = np.meshgrid(x_um, y_um)
    g = np.deg2rad(gradient_deg)
    s = xx * np.cos(g) + yy * np.sin(g)
    w = -xx * np.sin(g) + yy * np.cos(g)
    mask = (s / semi_axes_um[0]) ** 2 + (w / semi_axes_um[1]) ** 2 <= 1.0
    u = np.deg2rad(tilt_dir_deg)
    kappa_deg = np.degrees(1.0 / radius_um) if np.isfinite(radius_um) else 0.0
    tilt = np.empty(mask.shape + (2,))
    tilt[..., 0] = offset_deg[0] + kappa_deg * s * np.cos(u)
    tilt[..., 1] = offset_deg[1] + kappa_deg * s * np.sin(u)
    tilt += rng.normal(0.0, noise_deg, tilt.shape)
    tilt[~mask] = np.nan
    return tilt, mask, x_um, y_um


@pytest.mark.parametrize("radius_um", [50.0, 150.0, 483.0, 1000.0, 2000.0])
@pytest.mark.parametrize("gradient_deg", [0.0, 30.0, -60.0])
def test_radius_of_uniform_bend_within_fit_error(radius_um, gradient_deg):
    """R from the plane fit agrees with the true R within 4σ, σ being the least-squares error.

    The noise is independent per point (σ = 0.005° — a COM tilt precision typical of the reduction,
    WORKBOOK §2 measured ~5e-4° to 1e-2°), so the least-squares σ of κ is exact:
    σ_κ = σ_t / sqrt(Σ s²); we check the fit reports that σ to 20 % and that |R − R_true| < 4 σ_R.
    Size along the gradient direction is the ellipse's true extent within one scan cell projected on
    that direction (grid discretisation of the boundary), and the direction within 1° (far more than
    its noise error at these SNRs).
    """
    noise = 0.005
    tilt, mask, x_um, y_um = bent_field(radius_um, noise_deg=noise, gradient_deg=gradient_deg)
    res = cv.particle_curvature(tilt, mask, x_um, y_um)
    assert res.flags == []
    xx, yy = np.meshgrid(x_um, y_um)
    g = np.deg2rad(gradient_deg)
    s = (xx * np.cos(g) + yy * np.sin(g))[mask]
    predicted_sigma = noise / np.sqrt(np.sum((s - s.mean()) ** 2))
    assert res.curvature_sigma_deg_per_um == pytest.approx(predicted_sigma, rel=0.2)
    assert abs(res.radius_um - radius_um) < 4 * res.radius_sigma_um
    cell_um = STEP_UM * (abs(np.cos(g)) + abs(np.sin(g)))  # one scan cell projected on the axis
    assert abs(res.size_um - 4.06) <= cell_um
    assert abs(((res.gradient_direction_deg - gradient_deg) + 90) % 180 - 90) < 1.0
    assert abs(((res.bending_axis_deg - gradient_deg) % 180) - 90) < 1.0
    assert res.total_curvature_deg == pytest.approx(res.size_um * np.degrees(1 / radius_um), rel=0.05)


def test_end_decile_estimate_agrees_with_plane_fit():
    """The model-light end-decile Δφ agrees with the plane Δφ to a few σ of the decile medians."""
    tilt, mask, x_um, y_um = bent_field(300.0, noise_deg=0.01, seed=3)
    res = cv.particle_curvature(tilt, mask, x_um, y_um)
    n_decile = res.n_points // 10
    # medians of n points: σ ≈ 1.25 σ_t / sqrt(n); difference of two, scaled by size / Δs (≈ 1.5)
    tol = 4 * 1.5 * 1.25 * 0.01 * np.sqrt(2.0 / n_decile)
    assert res.total_curvature_ends_deg == pytest.approx(res.total_curvature_deg, abs=tol)


def test_paper_particle_three_arithmetic():
    """4.3 µm / 0.51° = 4.3 / 8.90e-3 rad = 483 µm (paper SI, WORKBOOK §2)."""
    assert cv.radius_from_size_and_tilt(4.3, 0.51) == pytest.approx(483.1, abs=0.5)
    assert cv.radius_from_size_and_tilt(4.3, 0.0) == np.inf
    with pytest.raises(ValueError, match="size must be positive"):
        cv.radius_from_size_and_tilt(0.0, 0.5)


def test_polar_to_vector():
    vec = cv.tilt_vector_deg(np.array([0.2, 0.1]), np.array([0.0, 90.0]))
    np.testing.assert_allclose(vec, [[0.2, 0.0], [0.0, 0.1]], atol=1e-12)
    with pytest.raises(ValueError, match="tilt_azimuth_deg"):
        cv.tilt_vector_deg(np.zeros(3), np.zeros(4))


@pytest.mark.parametrize("seed", range(5))
def test_flat_particle_reports_no_measurable_curvature(seed):
    """R → ∞: no division error, a flag, R = inf and a finite lower bound consistent with the noise."""
    tilt, mask, x_um, y_um = bent_field(np.inf, noise_deg=0.01, seed=seed)
    res = cv.particle_curvature(tilt, mask, x_um, y_um)
    assert cv.FLAG_FLAT in res.flags and not res.measurable
    assert res.radius_um == np.inf and np.isnan(res.radius_sigma_um)
    assert np.isfinite(res.radius_lower_bound_um) and res.radius_lower_bound_um > 1000


def test_two_domain_step_is_flagged():
    """Two halves with different constant tilt (a domain boundary, no bending) are flagged as a step."""
    tilt, mask, x_um, y_um = bent_field(np.inf, noise_deg=0.005, gradient_deg=0.0)
    xx, _ = np.meshgrid(x_um, y_um)
    tilt[..., 0] += np.where(xx > 0.3, 0.15, 0.0)
    res = cv.particle_curvature(tilt, mask, x_um, y_um)
    assert cv.FLAG_STEP in res.flags
    bent = cv.particle_curvature(*bent_field(269.0, gradient_deg=0.0))
    assert cv.FLAG_STEP not in bent.flags


def test_twist_is_flagged_rank2():
    """A saddle/twist (tilt turning along both directions equally) has no single bending axis."""
    tilt, mask, x_um, y_um = bent_field(np.inf, noise_deg=0.002)
    xx, yy = np.meshgrid(x_um, y_um)
    tilt[..., 0] += 0.1 * xx
    tilt[..., 1] += -0.1 * yy
    res = cv.particle_curvature(tilt, mask, x_um, y_um)
    assert cv.FLAG_RANK2 in res.flags


def test_bad_inputs():
    tilt, mask, x_um, y_um = bent_field(300.0)
    one = np.zeros_like(mask)
    one[mask.shape[0] // 2, mask.shape[1] // 2] = True
    with pytest.raises(ValueError, match="only 1 masked scan point"):
        cv.particle_curvature(tilt, one, x_um, y_um)
    line = np.zeros_like(mask)
    line[mask.shape[0] // 2, 15:30] = True
    with pytest.raises(ValueError, match="lie on one line"):
        cv.particle_curvature(tilt, line, x_um, y_um)
    with pytest.raises(ValueError, match=r"expected \(n_slow, n_fast, 2\)"):
        cv.particle_curvature(tilt[..., 0], mask, x_um, y_um)
    with pytest.raises(ValueError, match="mask has shape"):
        cv.particle_curvature(tilt, mask[1:], x_um, y_um)
    with pytest.raises(ValueError, match="must be boolean"):
        cv.particle_curvature(tilt, mask.astype(int), x_um, y_um)
    with pytest.raises(ValueError, match="x_um has"):
        cv.particle_curvature(tilt, mask, x_um[1:], y_um)


def synthetic_ensemble(radius_um=269.0, n=7, scatter_deg=0.05, seed=1):
    rng = np.random.default_rng(seed)
    size = rng.uniform(1.5, 6.0, n)
    total = np.degrees(size / radius_um) + rng.normal(0, scatter_deg, n)
    return size, total


def test_ensemble_fit_recovers_radius_both_ways():
    """Through the origin and with an intercept, R is within 3σ (slope error) of the truth; the 68 %
    bootstrap interval contains the estimate and is of the same order as the delta-method σ."""
    size, total = synthetic_ensemble(n=30)
    for origin in (True, False):
        fit = cv.ensemble_fit(size, total, through_origin=origin, rng=np.random.default_rng(5))
        assert abs(fit.radius_um - 269.0) < 3 * fit.radius_sigma_um
        lo, hi = fit.radius_interval_um
        assert lo < fit.radius_um < hi
        assert 0.4 < fit.radius_bootstrap_std_um / fit.radius_sigma_um < 2.5
        assert fit.n_particles == 30 and fit.n_bootstrap == 2000
    assert cv.ensemble_fit(size, total, through_origin=True).intercept_deg == 0.0


def test_ensemble_bootstrap_interval_is_stable_across_seeds():
    """2000 resamples make the interval's Monte-Carlo error small: over bootstrap seeds 7–12 its
    half-width stays within ± 5 % of the mean (measured ± 3 %), and it is 0.6–1.2 × the delta-method σ
    (7 particles: the percentile bootstrap under-covers by √((n−1)/n) and more; measured 0.78–0.82)."""
    size, total = synthetic_ensemble()
    fits = [cv.ensemble_fit(size, total, rng=np.random.default_rng(seed)) for seed in range(7, 13)]
    half = np.array([(f.radius_interval_um[1] - f.radius_interval_um[0]) / 2 for f in fits])
    assert np.all(np.abs(half / half.mean() - 1) < 0.05)
    assert np.all((0.6 < half / fits[0].radius_sigma_um) & (half / fits[0].radius_sigma_um < 1.2))


def test_ensemble_bad_inputs():
    with pytest.raises(ValueError, match="at least 3 particles"):
        cv.ensemble_fit([1.0, 2.0], [0.2, 0.4])
    with pytest.raises(ValueError, match="non-finite"):
        cv.ensemble_fit([1.0, 2.0, 3.0], [0.2, np.inf, 0.5])
    with pytest.raises(ValueError, match="same size"):
        cv.ensemble_fit([2.0, 2.0, 2.0], [0.2, 0.3, 0.5], through_origin=False)
    with pytest.raises(ValueError, match="slope"):
        cv.ensemble_fit([1.0, 2.0, 3.0], [-0.2, -0.4, -0.6])
    with pytest.raises(ValueError, match="sizes but"):
        cv.ensemble_fit([1.0, 2.0, 3.0], [0.2, 0.4])


def maps_from_tilt(tilt, mask, x_um, y_um, flags=None, d_angstrom=4.738):
    """An SxdmMaps whose Q vectors carry the given tilt components about an identity peak frame."""
    from helpers.sxdm.maps import SxdmMaps

    q_len = 2 * np.pi / d_angstrom
    tan = np.tan(np.deg2rad(np.nan_to_num(tilt)))
    q = np.stack([tan[..., 0], tan[..., 1], np.ones(mask.shape)], -1)
    q *= q_len / np.linalg.norm(q, axis=-1, keepdims=True)
    shape = mask.shape
    zeros = np.zeros(shape)
    return SxdmMaps(
        intensity=mask.astype(float) * 100 + 1,
        mask=mask,
        q=q,
        d_spacing=np.full(shape, d_angstrom),
        strain=zeros,
        tilt_deg=zeros,
        tilt_azimuth_deg=zeros,
        sigma_q=np.zeros(shape + (3,)),
        microstrain=zeros,
        flags=np.zeros(shape, np.uint16) if flags is None else flags,
        q_uncertainty=np.zeros(shape + (3,)),
        x_um=x_um,
        y_um=y_um,
        peak_frame=np.eye(3),
        reference_q=np.array([0, 0, q_len]),
        reference_d=d_angstrom,
    )


def test_cli_on_results_files(tmp_path, capsys):
    """The sub-command reads maps files, recovers each R within 4σ, excludes a truncated particle by its
    flags (with the reason), a flat one as not measurable, and fits the ensemble of the rest."""
    from helpers.cli import main
    from helpers.sxdm.cli_curvature import analyse_files
    from helpers.sxdm.maps import FLAG_BITS, write_maps

    radii = [200.0, 269.0, 350.0, 500.0]
    paths = []
    for i, radius in enumerate(radii):
        tilt, mask, x_um, y_um = bent_field(radius, seed=10 + i, semi_axes_um=(1.0 + 0.6 * i, 0.9))
        paths.append(write_maps(tmp_path / f"p{i + 1}.h5", maps_from_tilt(tilt, mask, x_um, y_um)))
    tilt, mask, x_um, y_um = bent_field(269.0, seed=20)
    right_half = mask & (np.arange(mask.shape[1]) > mask.shape[1] // 2)
    flags = np.where(right_half, FLAG_BITS["truncated_detector"], 0).astype(np.uint16)
    paths.append(write_maps(tmp_path / "p_trunc.h5", maps_from_tilt(tilt, mask, x_um, y_um, flags)))
    tilt, mask, x_um, y_um = bent_field(np.inf, seed=21)
    paths.append(write_maps(tmp_path / "p_flat.h5", maps_from_tilt(tilt, mask, x_um, y_um)))

    result = analyse_files(paths)
    for p, radius in zip(result["particles"][:4], radii, strict=True):
        assert p["excluded"] is None
        assert abs(p["radius_um"] - radius) < 4 * p["radius_sigma_um"]
    assert "truncated_detector" in result["particles"][4]["excluded"]
    assert result["particles"][5]["excluded"] == cv.FLAG_FLAT
    assert result["ensemble"]["through_origin"]["n_particles"] == 4

    out = tmp_path / "curv.json"
    assert main(["sxdm-curvature", *map(str, paths), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ensemble R (through origin)" in text and "truncated_detector" in text and out.is_file()

    assert main(["sxdm-curvature", str(tmp_path / "missing.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sxdm-curvature", *map(str, paths[:2])]) == 0
    assert "fewer than 3 usable particles" in capsys.readouterr().out


def test_ensemble_fit_with_intercept_matches_scipy_linregress():
    """The intercept fit's slope, intercept and their standard errors equal scipy.stats.linregress's."""
    from scipy.stats import linregress

    size, total = synthetic_ensemble(n=9, seed=4)
    fit = cv.ensemble_fit(size, total, through_origin=False)
    ref = linregress(size, total)
    assert fit.slope_deg_per_um == pytest.approx(ref.slope, rel=1e-10)
    assert fit.slope_sigma_deg_per_um == pytest.approx(ref.stderr, rel=1e-10)
    assert fit.intercept_deg == pytest.approx(ref.intercept, abs=1e-12)
    assert fit.intercept_sigma_deg == pytest.approx(ref.intercept_stderr, rel=1e-10)
    assert fit.radius_um == pytest.approx(1 / np.deg2rad(ref.slope), rel=1e-10)


def test_analyse_particle_reports_instead_of_raising():
    """analyse_particle turns the bad cases into an exclusion reason: one-pixel mask, flat particle;
    a clean bend is measured on its single domain and equals curvature_from_maps."""
    tilt, mask, x_um, y_um = bent_field(300.0, seed=7)
    maps = maps_from_tilt(tilt, mask, x_um, y_um)
    good = cv.analyse_particle(maps, "bent")
    assert good.excluded is None and good.n_domains == 1 and good.main_domain_fraction == 1.0
    assert good.curvature.radius_um == pytest.approx(cv.curvature_from_maps(maps).radius_um)
    one = np.zeros_like(mask)
    one[mask.shape[0] // 2, mask.shape[1] // 2] = True
    tiny = cv.analyse_particle(maps_from_tilt(tilt, one, x_um, y_um), "tiny")
    assert tiny.curvature is None and "only 1 masked scan point" in tiny.excluded
    flat = cv.analyse_particle(maps_from_tilt(*bent_field(np.inf, seed=8)), "flat")
    assert flat.excluded == cv.FLAG_FLAT and flat.curvature.radius_um == np.inf
    rows = cv.summary_rows([good, tiny, flat])
    assert [r["excluded"] for r in rows] == ["", tiny.excluded, cv.FLAG_FLAT]
