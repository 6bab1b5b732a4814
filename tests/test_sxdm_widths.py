"""Fig. S2 widths and the instrumental share (helpers.sxdm.widths), checked on analytic cases."""

import numpy as np
import pytest

from helpers.sxdm import widths


def test_coherent_divergence_of_a_gaussian_focus_matches_its_far_field():
    """A Gaussian focus of intensity FWHM 140 nm, propagated to the far field by FFT: the angular
    intensity profile's σ equals the module's λ/(4πσ_w) (to the 1e-3 sampling of the FFT grid)."""
    lam, fwhm = 1.24e-10, 140e-9
    x = np.linspace(-4e-6, 4e-6, 2**16, endpoint=False)
    sigma_w = fwhm / widths.FWHM_PER_SIGMA
    field = np.exp(-(x**2) / (4 * sigma_w**2))  # intensity exp(−x²/2σ²)
    far = np.abs(np.fft.fftshift(np.fft.fft(field))) ** 2
    angle = lam * np.fft.fftshift(np.fft.fftfreq(x.size, x[1] - x[0]))
    sigma_far = np.sqrt(np.sum(far * angle**2) / np.sum(far))
    got = widths.instrumental_widths(fwhm, lam, 55e-6, 1.6, 15.04)
    assert got.divergence_rad == pytest.approx(sigma_far, rel=1e-3)
    assert got.pixel_rad == pytest.approx(55e-6 / 1.6 / np.sqrt(12))


def test_propagation_to_strain_and_angles():
    """Δd/d = δ/(2 tan θ), X = δ/2, Y = δ/(2 sin θ) for δ = divergence ⊕ pixel (quadrature)."""
    got = widths.instrumental_widths(140e-9, 1.24e-10, 55e-6, 1.6, 15.04, convergence_full_rad=1e-3)
    delta = np.hypot(1e-3 / np.sqrt(12), 55e-6 / 1.6 / np.sqrt(12))
    theta = np.radians(7.52)
    assert got.strain_rel == pytest.approx(delta / (2 * np.tan(theta)))
    assert got.rocking_deg == pytest.approx(np.degrees(delta / 2))
    assert got.ring_deg == pytest.approx(np.degrees(delta / (2 * np.sin(theta))))
    assert "optic" in got.source


def test_fig_s2_maps_and_deconvolution():
    q = 1.3261
    sigma = np.array([[q * np.radians(0.02), q * np.radians(0.03), q * 5e-4]])
    out = widths.fig_s2_widths(sigma, q)
    assert out["rocking_deg"][0] == pytest.approx(0.02) and out["ring_deg"][0] == pytest.approx(0.03)
    assert out["strain_rel"][0] == pytest.approx(5e-4)
    np.testing.assert_allclose(widths.deconvolve(np.array([5.0, 2.0]), 3.0), [4.0, np.nan])


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="beam_fwhm_m"):
        widths.instrumental_widths(0.0, 1.24e-10, 55e-6, 1.6, 15.0)
    with pytest.raises(ValueError, match="X, Y, Z"):
        widths.fig_s2_widths(np.zeros((3, 2)), 1.0)


def _rot(axis, angle: np.ndarray) -> np.ndarray:
    """Rotation matrices (n, 3, 3) about the unit vector ``axis`` by ``angle`` (rad)."""
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(np.outer(angle, np.asarray(axis, float))).as_matrix()


def test_divergence_maps_to_q_as_the_rocking_reconstruction_does():
    """The Δd/d, rocking and ring floors from explicit scattering vectors of a convergent beam.

    A perfect crystal (Q along z, scattering plane x–z) lit by incident rays tilted by δ_in in the
    scattering plane and δ_out out of it (each N(0, σ)): an in-plane ray diffracts when the crystal is
    rocked by the same δ_in and leaves rotated by it; the reconstruction assumes the nominal k_i and
    undoes the rocking rotation. The spread of the reconstructed Q (20 000 rays; counting error of a σ
    from n samples ≈ 1/√(2n) = 0.5 %, tolerance 3 %) must equal the module's widths, which were derived
    as Δd/d = δ/(2 tan θ), X = δ/2, Y = δ/(2 sin θ).
    """
    rng = np.random.default_rng(5)
    lam, two_theta, sigma = 1.24e-10, 15.04, 1.0e-4
    theta = np.radians(two_theta / 2)
    k = 2 * np.pi / lam
    k_i = k * np.array([np.cos(theta), 0.0, -np.sin(theta)])
    k_f = k * np.array([np.cos(theta), 0.0, np.sin(theta)])
    q_norm = 2 * k * np.sin(theta)
    n = 20000
    d_in, d_out = rng.normal(0, sigma, n), rng.normal(0, sigma, n)
    rock = _rot([0, 1, 0], d_in)  # in-plane: about y, the normal of the scattering plane
    tip = _rot([np.sin(theta), 0, np.cos(theta)], d_out)  # out of plane: about the in-plane normal of k_i
    k_i_ray = np.einsum("nij,nj->ni", tip, np.einsum("nij,j->ni", rock, k_i))
    g_rocked = np.einsum("nij,j->ni", rock, k_f - k_i)
    k_f_ray = k_i_ray + g_rocked  # |k_f| = k to first order (δ_out enters at second order)
    q_rec = np.einsum("nji,nj->ni", rock, k_f_ray - k_i)  # nominal k_i, rocking rotation undone
    got = widths.instrumental_widths(140e-9, lam, 1e-12, 1e3, two_theta,
                                     convergence_full_rad=sigma * np.sqrt(12))
    assert np.std(q_rec[:, 2]) / q_norm == pytest.approx(got.strain_rel, rel=0.03)
    assert np.degrees(np.std(q_rec[:, 0]) / q_norm) == pytest.approx(got.rocking_deg, rel=0.03)
    assert np.degrees(np.std(q_rec[:, 1]) / q_norm) == pytest.approx(got.ring_deg, rel=0.03)


@pytest.mark.slow
def test_simulated_convergent_beam_reaches_the_floor(tmp_path):
    """The simulator's convergent-beam resolution against the analytic floor.

    A perfect 1 µm crystal (no strain, no mosaic, no bending), instrument widths made negligible (eta
    σ 0.001°, detector σ 0.05 px), 10⁶ counts per µm (no counting noise to speak of), incident
    directions σ_α = 1.7·10⁻⁴ rad (the 140 nm coherent limit), reduced by the workbook's reducer: the
    Fig. S2 widths along Z and along the ring equal :func:`instrumental_widths` for that σ_α and the
    55 µm pixel (measured 6.44·10⁻⁴ vs 6.45·10⁻⁴ and 0.0373° vs 0.0373°; tolerance 3 %, the size of the
    other contributions: pixel integration, 0.004° eta sampling). Without the convergence (the old
    independent widths) Δd/d stays an order of magnitude below the floor (measured 2.2·10⁻⁵).
    """
    import warnings

    from helpers.sxdm import geometry
    from helpers.sxdm.reduce import reduce
    from helpers.synthetic import sxdm_model as sm
    from helpers.synthetic import sxdm_scan as ss

    model = sm.blank_particle((1.2, 1.2), step_um=0.02)
    sm.add_grain(model, (0.6, 0.6), (0.5, 0.5), thickness_um=1.0, grain_id=1)
    theta, two_theta = geometry.detector_angles_for_d(sm.D003_A, 1.24e-10)
    r_c, c_c = (int(round(v)) for v in ss.ScanSettings().beam_center_px)
    sigma_a = 1.7e-4
    measured = {}
    for conv in (0.0, sigma_a):
        settings = ss.ScanSettings(
            n_fast=3, n_slow=3, start_um=(0.5, 0.5), step_um=(0.1, 0.1), beam_fwhm_um=(0.14, 0.14),
            roi=(r_c - 24, r_c + 24, c_c - 24, c_c + 24), eta_deg=theta + 0.004 * (np.arange(25) - 12),
            sigma_eta_deg=0.001, sigma_row_px=0.05, sigma_col_px=0.05, convergence_sigma_rad=conv,
            counts_per_um=1e6, background_per_px=0.0, monitor_rel_noise=0.0, monitor_decay_rel=0.0,
            drift_um_per_eta=0.0, position_jitter_um=0.0, n_hot=0, n_dead=0,
        )
        sim = ss.simulate_scan(model, settings, np.random.default_rng(0))
        path = ss.write_simulation(sim, tmp_path / f"conv{conv:g}.h5", external_frames=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            maps = reduce(path, method="com", progress=False, drift="off")
        measured[conv] = widths.fig_s2_widths(maps.sigma_q[1, 1], float(np.linalg.norm(maps.reference_q)))
    floor = widths.instrumental_widths(0.14e-6, 1.24e-10, 55e-6, 1.6, two_theta,
                                       convergence_full_rad=sigma_a * np.sqrt(12))
    assert measured[sigma_a]["strain_rel"] == pytest.approx(floor.strain_rel, rel=0.03)
    assert measured[sigma_a]["ring_deg"] == pytest.approx(floor.ring_deg, rel=0.03)
    assert measured[0.0]["strain_rel"] < 0.2 * floor.strain_rel
