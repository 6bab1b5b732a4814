"""Peak widths as the paper's Fig. S2 shows them, and the instrument's share of them.

The reducers give a Gaussian σ of each scan point's 3-D peak along the peak-frame axes X (rocking),
Y (Debye ring) and Z (along 2θ, parallel to Q) in 1/Å (``SxdmMaps.sigma_q``). Fig. S2 reads them as

- Z: local microstrain Δd/d = σ_Z / |Q| (dimensionless);
- X, Y: local angular spread (curvature and mosaicity under the footprint) σ_X,Y / |Q| in degrees.

The instrument broadens all three (the SI: "no correction for the convolution ... with instrumental
divergence of the focused beam"). :func:`instrumental_widths` computes its σ from the beam and
detector numbers:

- divergence of the focused beam: a Gaussian focus of intensity FWHM w cannot be less divergent than
  its coherent (diffraction) limit, σ_α = λ / (4π σ_w), σ_w = w / 2.3548 (FWHM product 2 ln2 λ/π). A
  zone plate illuminated over a wider aperture is more divergent; pass its full convergence angle to
  use it instead (a uniform fan, σ = full angle / √12).
- detector pixel: angular size p / L, uniform, σ_p = p / (L √12).

Propagation to the reconstructed Q (incident direction assumed nominal): an in-plane change δ of the
incident or outgoing direction moves Q by k·δ perpendicular to k_f, i.e. Δd/d = δ / (2 tan θ) along Z
and an orientation change δ/2 along X; an out-of-plane change δ moves Q by k·δ along Y, an angle
δ / (2 sin θ). Widths add in quadrature; :func:`deconvolve` removes the instrumental σ that way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))


@dataclass(frozen=True)
class InstrumentalWidths:
    """Gaussian σ of the instrument along Z (Δd/d), X and Y (deg), and the two sources (rad)."""

    strain_rel: float
    rocking_deg: float
    ring_deg: float
    divergence_rad: float
    pixel_rad: float
    source: str


def instrumental_widths(
    beam_fwhm_m: float,
    wavelength_m: float,
    pixel_size_m: float,
    distance_m: float,
    two_theta_deg: float,
    convergence_full_rad: float | None = None,
) -> InstrumentalWidths:
    """Instrumental σ of Fig. S2's three widths from the beam focus, wavelength and detector.

    ``convergence_full_rad``: full convergence angle of the focusing optic when known (e.g. zone-plate
    diameter / focal length); without it the coherent limit of the focus size is used (a lower bound).
    """
    for name, value in (
        ("beam_fwhm_m", beam_fwhm_m),
        ("wavelength_m", wavelength_m),
        ("pixel_size_m", pixel_size_m),
        ("distance_m", distance_m),
    ):
        if not np.isfinite(value) or value <= 0:
            raise ValueError(f"{name} must be positive, got {value}")
    if not 0 < two_theta_deg < 180:
        raise ValueError(f"two_theta_deg must lie in (0, 180), got {two_theta_deg}")
    if convergence_full_rad is None:
        divergence = wavelength_m / (4 * np.pi * beam_fwhm_m / FWHM_PER_SIGMA)
        source = "coherent limit of the focus (lower bound)"
    else:
        divergence = convergence_full_rad / np.sqrt(12.0)
        source = "convergence of the focusing optic"
    pixel = pixel_size_m / distance_m / np.sqrt(12.0)
    theta = np.radians(two_theta_deg / 2)
    both = np.hypot(divergence, pixel)
    return InstrumentalWidths(
        strain_rel=float(both / (2 * np.tan(theta))),
        rocking_deg=float(np.degrees(both / 2)),
        ring_deg=float(np.degrees(both / (2 * np.sin(theta)))),
        divergence_rad=float(divergence),
        pixel_rad=float(pixel),
        source=source,
    )


def fig_s2_widths(sigma_q: np.ndarray, q_norm: float) -> dict[str, np.ndarray]:
    """Fig. S2 maps from the peak σ (..., 3) in 1/Å along (X, Y, Z): Δd/d along Z, angles (deg) along X, Y."""
    sigma_q = np.asarray(sigma_q, dtype=float)
    if sigma_q.shape[-1] != 3:
        raise ValueError(f"sigma_q must end with the 3 peak-frame axes (X, Y, Z), got shape {sigma_q.shape}")
    if not q_norm > 0:
        raise ValueError(f"q_norm must be positive, got {q_norm}")
    return {
        "rocking_deg": np.degrees(sigma_q[..., 0] / q_norm),
        "ring_deg": np.degrees(sigma_q[..., 1] / q_norm),
        "strain_rel": sigma_q[..., 2] / q_norm,
    }


def deconvolve(width: np.ndarray, instrumental: float) -> np.ndarray:
    """Quadrature removal of an instrumental σ; NaN where the width is not above it."""
    width = np.asarray(width, dtype=float)
    with np.errstate(invalid="ignore"):
        out = np.sqrt(width**2 - instrumental**2)
    return np.where(width > instrumental, out, np.nan)
