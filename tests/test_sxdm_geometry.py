"""ID01 geometry: pixel Q vectors against xrayutilities ``Ang2Q.area`` and analytic Bragg cases."""

import numpy as np
import pytest

from helpers.sxdm import geometry as geo

LAM_M, DIST_M, PIX_M = 1.24e-10, 1.6, 55e-6


@pytest.mark.parametrize(
    "phi, nu, delta, centre, roi",
    [
        (0.0, 0.0, 15.04, (258.0, 258.0), None),
        (3.0, 1.2, 15.04, (250.3, 270.7), (100, 164, 200, 264)),
        (-20.0, -2.5, 30.0, (10.0, 500.0), (0, 16, 490, 516)),
    ],
)
def test_pixel_q_vectors_match_xrayutilities_area(phi, nu, delta, centre, roi):
    """Same angles, energy, distance and pixel size in both: agreement to 1e-6 relative (issue spec).

    xrayutilities is set up exactly as XSOCS does (QConversion(["y-","z-"], ["z-","y-"], [1,0,0]),
    HXRD([1,0,0],[0,0,1]), init_area("z-","y+")), with distance/pixel width instead of channels per
    degree so that no rounding of chpdeg enters. Both are float64 closed forms, so the only
    difference is rounding (~1e-15); 1e-6 is the acceptance bound of the issue.
    """
    import xrayutilities as xu  # core dependency: a failed import must fail the test
    eta = np.array([6.0, 7.52, 9.1])
    q = geo.pixel_q_vectors(eta, phi, nu, delta, LAM_M, DIST_M, PIX_M, centre, (516, 516), roi=roi)
    qconv = xu.experiment.QConversion(["y-", "z-"], ["z-", "y-"], [1, 0, 0])
    hxrd = xu.HXRD([1, 0, 0], [0, 0, 1], qconv=qconv)
    hxrd.Ang2Q.init_area(
        "z-",
        "y+",
        cch1=centre[0],
        cch2=centre[1],
        Nch1=516,
        Nch2=516,
        distance=DIST_M,
        pwidth1=PIX_M,
        pwidth2=PIX_M,
    )
    energy_ev = xu.lam2en(LAM_M * 1e10)
    xu_roi = roi if roi is not None else (0, 516, 0, 516)
    for index, eta_deg in enumerate(eta):
        ref = np.stack(hxrd.Ang2Q.area(eta_deg, phi, nu, delta, en=energy_ev, roi=xu_roi), axis=-1)
        assert q[index].shape == ref.shape
        rel = np.abs(q[index] - ref).max() / np.linalg.norm(ref, axis=-1).min()
        assert rel <= 1e-6


def test_symmetric_bragg_puts_the_003_reflection_on_the_beam_centre_pixel():
    """eta = θ, delta = 2θ: the central pixel sees Q along sample z with |Q| = 2π/d (analytic)."""
    d = 14.214 / 3
    eta, delta = geo.detector_angles_for_d(d, LAM_M)
    assert delta == pytest.approx(15.04, abs=0.01)  # WORKBOOK §2
    q = geo.pixel_q_vectors([eta], 0, 0, delta, LAM_M, DIST_M, PIX_M, (258, 258), (516, 516))
    np.testing.assert_allclose(q[0, 258, 258], [0, 0, 2 * np.pi / d], atol=1e-12)
    assert geo.d_from_q(q[0, 258, 258]) == pytest.approx(d, rel=1e-12)


def test_one_pixel_step_changes_q_by_k_times_pixel_angle():
    """Adjacent pixels differ by k·p/L in |ΔQ| (1.74e-4 1/Å, WORKBOOK §2) to first order."""
    q = geo.pixel_q_vectors([7.5], 0, 0, 15.0, LAM_M, DIST_M, PIX_M, (258, 258), (516, 516))
    step = np.linalg.norm(q[0, 259, 258] - q[0, 258, 258])
    assert step == pytest.approx(2 * np.pi / 1.24 * PIX_M / DIST_M, rel=1e-6)
    assert step == pytest.approx(1.74e-4, rel=0.01)


def test_eta_rotation_moves_q_along_the_rocking_axis_x():
    """A small eta step moves a fixed pixel's Q along X of :func:`peak_frame_axes` by |Q|·Δeta."""
    q = geo.pixel_q_vectors([7.5, 7.51], 0, 0, 15.04, LAM_M, DIST_M, PIX_M, (258, 258), (516, 516))
    axes = geo.peak_frame_axes(q[0, 258, 258])
    dq = axes @ (q[1, 258, 258] - q[0, 258, 258])
    qn = np.linalg.norm(q[0, 258, 258])
    assert abs(dq[0]) == pytest.approx(qn * np.radians(0.01), rel=1e-4)
    # along Z only the second-order chord term |Q|·Δeta²/2 (2e-8 1/Å) remains
    assert abs(dq[1]) < 1e-12 and abs(dq[2]) < qn * np.radians(0.01) ** 2
    np.testing.assert_allclose(axes @ axes.T, np.eye(3), atol=1e-12)
    # detector columns move Q along Y (the Debye ring), rows along Z (2θ) near the central pixel
    col_step = axes @ (q[0, 258, 259] - q[0, 258, 258])
    row_step = axes @ (q[0, 259, 258] - q[0, 258, 258])
    assert abs(col_step[1]) > 100 * max(abs(col_step[0]), abs(col_step[2]))
    assert abs(row_step[2]) > 5 * abs(row_step[1])


def test_per_eta_detector_angles_equal_scalar_ones():
    eta = np.array([7.0, 7.5])
    a = geo.pixel_q_vectors(eta, 1.0, 0.5, 15.0, LAM_M, DIST_M, PIX_M, (3, 4), (8, 9))
    b = geo.pixel_q_vectors(eta, [1.0, 1.0], [0.5, 0.5], [15.0, 15.0], LAM_M, DIST_M, PIX_M, (3, 4), (8, 9))
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"roi": (0, 600, 0, 10)}, "roi"),
        ({"roi": (0, 10)}, "roi"),
        ({"phi_deg": [1.0, 2.0, 3.0]}, "phi_deg"),
        ({"wavelength_m": -1.0}, "positive"),
        ({"pixel_size_m": 0.0}, "pixel_size_m"),
    ],
)
def test_bad_geometry_input_raises_clear_errors(kwargs, match):
    args = dict(
        eta_deg=[7.0, 7.5],
        phi_deg=0.0,
        nu_deg=0.0,
        delta_deg=15.0,
        wavelength_m=LAM_M,
        distance_m=DIST_M,
        pixel_size_m=PIX_M,
        beam_center_px=(258, 258),
        detector_shape=(516, 516),
    )
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        geo.pixel_q_vectors(**args)


def test_energy_and_wavelength_of_copper_k_alpha1():
    """Cu Kα1: λ = 1.5405929 Å at E = 8.047823 keV (NIST X-ray transition energies), both ways."""
    assert geo.energy_from_wavelength_kev(1.5405929e-10) == pytest.approx(8.047823, abs=2e-6)
    assert geo.wavelength_from_energy_m(8.047823) == pytest.approx(1.5405929e-10, rel=3e-7)


def test_fractional_coordinates_reproduce_integer_pixels():
    """q_at_detector_coordinates at integer pixels equals pixel_q_vectors (same closed form, 1e-14)."""
    eta = np.array([7.0, 7.6])
    q = geo.pixel_q_vectors(
        eta, 2.0, 0.7, 15.0, LAM_M, DIST_M, PIX_M, (250.5, 260.2), (516, 516), (10, 14, 20, 25)
    )
    rows, cols = np.meshgrid(np.arange(10, 14), np.arange(20, 25), indexing="ij")
    for i, e in enumerate(eta):
        qf = geo.q_at_detector_coordinates(
            e, rows, cols, 2.0, 0.7, 15.0, LAM_M, DIST_M, PIX_M, (250.5, 260.2)
        )
        np.testing.assert_allclose(qf, q[i], rtol=0, atol=1e-14)
