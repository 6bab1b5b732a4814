"""Instrument constants and the Bragg-geometry helpers against hand-computed values."""

import math

import numpy as np
import pytest

from helpers import instrument as ins


def test_id01_derived_numbers_match_the_workbook_reference():
    id01 = ins.ID01()
    assert id01.energy_kev == pytest.approx(9.999, abs=5e-4)  # WORKBOOK §2: 9.999 keV
    assert id01.k_inv_angstrom == pytest.approx(5.067, abs=5e-4)
    assert id01.pixel_angle_rad == pytest.approx(3.4375e-5, rel=1e-12)


def test_nmc003_bragg_angle_is_the_workbook_value():
    refl, id01 = ins.NMC003(), ins.ID01()
    two_theta = ins.bragg_two_theta_deg(refl.d_angstrom, id01.wavelength_angstrom)
    assert two_theta == pytest.approx(15.04, abs=0.01)  # WORKBOOK §2
    assert refl.q_inv_angstrom == pytest.approx(1.3261, abs=2e-4)


def test_bragg_and_its_inverse_round_trip_and_satisfy_braggs_law():
    d = np.array([1.0, 2.5, 4.738, 10.0])
    tt = ins.bragg_two_theta_deg(d, 1.24)
    np.testing.assert_allclose(ins.d_from_two_theta(tt, 1.24), d, rtol=1e-13)
    np.testing.assert_allclose(2 * d * np.sin(np.radians(tt / 2)), 1.24, rtol=1e-13)


@pytest.mark.parametrize("d, lam", [(0.5, 1.24), (-1.0, 1.24), (2.0, 0.0)])
def test_bragg_rejects_unreachable_or_unphysical_input(d, lam):
    with pytest.raises(ValueError, match="Bragg|positive"):
        ins.bragg_two_theta_deg(d, lam)


def test_detector_window_spans_the_maxipix_angular_width():
    id01 = ins.ID01()
    lo, hi = ins.detector_two_theta_window_deg(id01, 15.04)
    assert hi - lo == pytest.approx(math.degrees(516 * 55e-6 / 1.6), rel=1e-12)


def test_id16b_paper_snr_and_cnr():
    id16b = ins.ID16B()
    assert id16b.paper_snr == pytest.approx(8.84, abs=0.005)
    assert id16b.paper_cnr == pytest.approx(2.28, abs=0.005)
    assert id16b.wavelength_angstrom == pytest.approx(0.4189, abs=1e-4)
    assert id16b.beta_nmc == pytest.approx(1.05e-6 / 87)


@pytest.mark.parametrize("cls", [ins.ID01, ins.ID16B, ins.NMC003])
def test_every_constant_states_its_unit_and_source(cls):
    rows = ins.describe(cls())
    assert rows
    for row in rows:
        assert row["source"].split(":")[0] in {"paper", "derived", "estimate"}, row
