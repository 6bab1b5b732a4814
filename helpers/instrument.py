"""Instrument and sample constants of the paper's two experiments, with units and sources.

Every number carries its unit in the field name and, in the field metadata, where it comes from:
``paper`` (Martens et al., Methods/SI), ``derived`` (computed from paper numbers), or ``estimate``
(the workbook's estimate, with the reasoning). :func:`describe` turns an instrument into a table.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from scipy.constants import c, e, h

#: Planck constant times speed of light in keV·m (CODATA values of ``scipy.constants``: 12.398 keV·Å);
#: the one h·c of the workbook (SXDM geometry, phase retrieval and the simulators import it)
HC_KEV_M = h * c / (e * 1e3)
#: the same in keV·Å
HC_KEV_ANGSTROM = HC_KEV_M * 1e10


def _f(value, unit: str, source: str):
    return field(default=value, metadata={"unit": unit, "source": source})


@dataclass(frozen=True)
class NMC003:
    """The NMC-622 003 reflection (R-3m, hexagonal setting) used for SXDM."""

    c_angstrom: float = _f(14.214, "Å", "estimate: typical NMC-622 c lattice parameter (XRD literature)")
    hkl: tuple[int, int, int] = _f((0, 0, 3), "", "paper: the 003 reflection is measured")

    @property
    def d_angstrom(self) -> float:
        """Interplanar spacing d₀₀₃ = c/3 (Å)."""
        return self.c_angstrom / 3.0

    @property
    def q_inv_angstrom(self) -> float:
        """Scattering-vector length |Q| = 2π/d (Å⁻¹)."""
        return 2.0 * math.pi / self.d_angstrom


@dataclass(frozen=True)
class ID01:
    """ESRF ID01 scanning X-ray diffraction microscope, as used in the paper."""

    wavelength_angstrom: float = _f(1.24, "Å", "paper: Methods")
    flux_ph_s: float = _f(1e9, "ph/s", "paper: Methods")
    beam_fwhm_fig1_nm: float = _f(140.0, "nm", "paper: Methods (particle of Fig. 1-2)")
    beam_fwhm_ensemble_nm: float = _f(80.0, "nm", "paper: Methods (particles of Fig. 3)")
    detector_name: str = _f("mpx1x4", "", "estimate: ID01 BLISS alias of the 2x2 Maxipix")
    detector_shape_px: tuple[int, int] = _f(
        (516, 516), "px", "derived: paper's 512x512 Maxipix = 2x2 chips of 256² plus gap pixels"
    )
    chip_px: int = _f(256, "px", "derived: Maxipix chip size (Timepix ASIC)")
    pixel_size_um: float = _f(55.0, "µm", "derived: Timepix/Maxipix pixel pitch")
    distance_m: float = _f(1.6, "m", "paper: Methods")
    q_grid_shape: tuple[int, int, int] = _f((50, 100, 100), "voxels", "paper: SI, SXDM analysis")
    median_filter_px: tuple[int, int] = _f((2, 2), "px", "paper: SI (a no-op in silx, WORKBOOK §2)")
    mask_threshold: float = _f(0.2, "of max intensity", "paper: SI, SXDM analysis")

    @property
    def energy_kev(self) -> float:
        """Photon energy E = hc/λ (keV)."""
        return HC_KEV_ANGSTROM / self.wavelength_angstrom

    @property
    def k_inv_angstrom(self) -> float:
        """Wave number k = 2π/λ (Å⁻¹)."""
        return 2.0 * math.pi / self.wavelength_angstrom

    @property
    def pixel_angle_rad(self) -> float:
        """Angle one detector pixel subtends at the sample (rad)."""
        return self.pixel_size_um * 1e-6 / self.distance_m


@dataclass(frozen=True)
class ID16B:
    """ESRF ID16B nano-tomography (holotomography), as used in the paper."""

    energy_kev: float = _f(29.6, "keV", "paper: Methods")
    beam_focus_nm: float = _f(50.0, "nm", "paper: Methods (50x50 nm focus)")
    flux_ph_s: float = _f(1.6e12, "ph/s", "paper: Methods")
    n_projections: int = _f(3203, "", "paper: Methods")
    angular_range_deg: float = _f(360.0, "deg", "paper: Methods")
    exposure_s: float = _f(0.04, "s", "paper: Methods")
    camera: str = _f("PCO edge 5.5", "", "paper: Methods")
    camera_shape_px: tuple[int, int] = _f((2160, 2560), "px (rows, cols)", "derived: PCO edge 5.5")
    n_distances: int = _f(4, "", "paper: Methods (four focus-to-sample distances)")
    voxel_size_nm: float = _f(25.0, "nm", "paper: Methods")
    delta_beta: float = _f(87.0, "", "paper: Methods (Paganin-like retrieval)")
    volume_shape_vox: tuple[int, int, int] = _f(
        (960, 2560, 2560), "voxels (z, y, x)", "derived: paper's 24x64x64 µm at 25 nm"
    )
    delta_nmc: float = _f(1.05e-6, "", "estimate: NMC-622 at ρ ≈ 4.7 g/cm³, 29.6 keV (WORKBOOK §3)")
    snr_mean_nmc: float = _f(5737.0, "grey", "paper: SI, SNR/CNR")
    snr_mean_air: float = _f(4255.0, "grey", "paper: SI, SNR/CNR")
    snr_sigma_air: float = _f(649.0, "grey", "paper: SI, SNR/CNR")

    @property
    def wavelength_angstrom(self) -> float:
        """Wavelength λ = hc/E (Å)."""
        return HC_KEV_ANGSTROM / self.energy_kev

    @property
    def beta_nmc(self) -> float:
        """Absorption index β = δ/(δ/β) of NMC."""
        return self.delta_nmc / self.delta_beta

    @property
    def paper_snr(self) -> float:
        """The paper's SNR = m_NMC / σ_air (its formula and numbers)."""
        return self.snr_mean_nmc / self.snr_sigma_air

    @property
    def paper_cnr(self) -> float:
        """The paper's CNR = (m_NMC − m_air) / σ_air."""
        return (self.snr_mean_nmc - self.snr_mean_air) / self.snr_sigma_air


def bragg_two_theta_deg(d_angstrom, wavelength_angstrom):
    """Scattering angle 2θ (deg) of planes with spacing ``d_angstrom`` at ``wavelength_angstrom``.

    Raises ``ValueError`` where λ/2d > 1 (the reflection cannot be reached).
    """
    import numpy as np

    d = np.asarray(d_angstrom, dtype=float)
    if np.any(d <= 0) or wavelength_angstrom <= 0:
        raise ValueError("d-spacing and wavelength must be positive (Å)")
    ratio = wavelength_angstrom / (2.0 * d)
    if np.any(ratio > 1):
        raise ValueError(
            f"λ/2d = {np.max(ratio):.3f} > 1: no Bragg reflection for d = {np.min(d):.4g} Å at "
            f"λ = {wavelength_angstrom:.4g} Å; use a shorter wavelength"
        )
    return np.degrees(2.0 * np.arcsin(ratio))


def d_from_two_theta(two_theta_deg, wavelength_angstrom):
    """Inverse of :func:`bragg_two_theta_deg`: d = λ / (2 sin θ) (Å)."""
    import numpy as np

    return wavelength_angstrom / (2.0 * np.sin(np.radians(np.asarray(two_theta_deg)) / 2.0))


def detector_two_theta_window_deg(instrument: ID01, center_two_theta_deg: float):
    """(min, max) 2θ (deg) seen by the detector row through the centre when centred on a peak."""
    half_width_rad = 0.5 * instrument.detector_shape_px[0] * instrument.pixel_angle_rad
    half_width_deg = math.degrees(half_width_rad)
    return center_two_theta_deg - half_width_deg, center_two_theta_deg + half_width_deg


def describe(instrument) -> list[dict]:
    """Rows (name, value, unit, source) for every constant of an instrument dataclass."""
    rows = []
    for fld in fields(instrument):
        rows.append(
            {
                "quantity": fld.name,
                "value": getattr(instrument, fld.name),
                "unit": fld.metadata.get("unit", ""),
                "source": fld.metadata.get("source", ""),
            }
        )
    return rows


def detector_two_theta_map_deg(instrument: ID01, center_two_theta_deg: float, shape_px=None):
    """Exact 2θ (deg) of every pixel of a flat detector centred on the ray at ``center_two_theta_deg``.

    The detector arm is rotated in the vertical scattering plane (beam along +x, z up, ID01's delta
    circle), its face perpendicular to the central ray at ``instrument.distance_m``. Rows run along
    2θ (the paper's Z), columns along the Debye ring (Y). Returns an array of ``shape_px``.
    """
    import numpy as np

    n_rows, n_cols = shape_px or instrument.detector_shape_px
    pixel_m = instrument.pixel_size_um * 1e-6
    tt = np.radians(center_two_theta_deg)
    centre = instrument.distance_m * np.array([np.cos(tt), 0.0, np.sin(tt)])
    along_two_theta = np.array([-np.sin(tt), 0.0, np.cos(tt)])
    along_ring = np.array([0.0, 1.0, 0.0])
    rows = (np.arange(n_rows) - (n_rows - 1) / 2.0) * pixel_m
    cols = (np.arange(n_cols) - (n_cols - 1) / 2.0) * pixel_m
    position = centre + rows[:, None, None] * along_two_theta + cols[None, :, None] * along_ring
    cos_two_theta = position[..., 0] / np.linalg.norm(position, axis=-1)
    return np.degrees(np.arccos(np.clip(cos_two_theta, -1.0, 1.0)))
