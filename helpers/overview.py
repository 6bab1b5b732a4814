"""Figures of the overview notebook: what the ID01 detector sees of the NMC 003 reflection."""

from __future__ import annotations

import numpy as np

from helpers.instrument import (
    ID01,
    NMC003,
    bragg_two_theta_deg,
    d_from_two_theta,
    detector_two_theta_map_deg,
)


def detector_strain_map(instrument: ID01, reflection: NMC003):
    """Strain ε = d/d₀₀₃ − 1 that each detector pixel would record (centred on the 003 peak)."""
    two_theta_0 = float(bragg_two_theta_deg(reflection.d_angstrom, instrument.wavelength_angstrom))
    two_theta = detector_two_theta_map_deg(instrument, two_theta_0)
    d_map = d_from_two_theta(two_theta, instrument.wavelength_angstrom)
    return d_map / reflection.d_angstrom - 1.0


def strain_per_pixel(instrument: ID01, reflection: NMC003) -> float:
    """|Δd/d| between neighbouring detector rows at the 003 peak centre (dimensionless)."""
    strain = detector_strain_map(instrument, reflection)
    centre_col = strain.shape[1] // 2
    return float(np.median(np.abs(np.diff(strain[:, centre_col]))))


def plot_detector_strain(ax, instrument: ID01, reflection: NMC003, microstrain: float = 4.2e-4):
    """Detector frame coloured by the strain each pixel records, with the paper's microstrain band.

    Contours mark ε = ±microstrain/2 around d₀₀₃ (the FWHM of the paper's Fig. 1E histogram);
    the dashed line is the Debye-ring arc of d₀₀₃ itself.
    """
    strain = detector_strain_map(instrument, reflection)
    limit = float(np.max(np.abs(strain)))
    image = ax.imshow(strain * 1e3, cmap="RdBu_r", vmin=-limit * 1e3, vmax=limit * 1e3, origin="lower")
    ax.contour(strain, levels=[0.0], colors="k", linestyles="--", linewidths=0.8)
    ax.contour(strain, levels=[-microstrain / 2, microstrain / 2], colors="k", linewidths=0.8)
    ax.set_xlabel("detector column (along the Debye ring, Y)")
    ax.set_ylabel("detector row (along 2θ, Z)")
    ax.set_title(f"strain seen by each pixel, λ = {instrument.wavelength_angstrom:.3f} Å")
    return image


def plot_two_theta_vs_d(ax, instrument: ID01, reflection: NMC003):
    """2θ(d) around the 003 reflection, with the detector's 2θ window shaded."""
    two_theta_0 = float(bragg_two_theta_deg(reflection.d_angstrom, instrument.wavelength_angstrom))
    half_window = 0.5 * instrument.detector_shape_px[0] * np.degrees(instrument.pixel_angle_rad)
    d = np.linspace(0.95, 1.05, 301) * reflection.d_angstrom
    ax.plot(d, bragg_two_theta_deg(d, instrument.wavelength_angstrom), color="C0")
    ax.axhspan(
        two_theta_0 - half_window,
        two_theta_0 + half_window,
        color="C1",
        alpha=0.25,
        label="detector window",
    )
    ax.axvline(reflection.d_angstrom, color="k", lw=0.8, ls="--", label="d$_{003}$")
    ax.set_xlabel("d-spacing (Å)")
    ax.set_ylabel("2θ (deg)")
    ax.legend(loc="upper right")
