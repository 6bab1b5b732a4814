"""Patterns in the maps: the stripe period of the d-map and the bending direction of the tilt map.

Angles are in the scan plane, measured from the fast axis (x, ``pix``) towards the slow axis
(y, ``piy``), in degrees modulo 180 (a direction, not an orientation).

- :func:`stripe_period` — periodic planar-defect stripes in d (paper Fig. 1C: ≈ 440 nm): the
  strongest peak of the zero-padded 2-D power spectrum of the masked, plane-detrended d-map starts a
  least-squares fit of ``plane + A cos(k·r) + B sin(k·r)`` on the masked points; period = 2π/|k|
  with its 1-σ error from the fit's covariance, and the stripe *normal* angle (direction of k).
- :func:`bending_direction` — bending about one in-plane axis makes the lattice tilt change
  linearly along the direction perpendicular to that axis: a plane is fitted to each tilt component
  (towards X and towards Y, deg); the 2 × 2 tilt gradient's leading right singular vector is the
  direction of fastest rotation, its singular value the curvature κ (deg/µm, R = 1/κ in rad).
  The bending *axis* is perpendicular to it (paper Fig. 2B: the axis is perpendicular to the stripes,
  i.e. along the stripe normal).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class StripeFit:
    """Stripe period (µm) ± error, normal angle (deg), amplitude of d (Å)."""

    period_um: float
    period_err_um: float
    normal_angle_deg: float
    amplitude_A: float


@dataclass
class BendingFit:
    """Direction of fastest lattice rotation (deg), bending-axis angle (deg), curvature, radius."""

    gradient_angle_deg: float
    axis_angle_deg: float
    curvature_deg_per_um: float
    radius_um: float
    anisotropy: float  # second / first singular value (0 = bending about exactly one axis)


def _coords(x_um, y_um):
    xx, yy = np.meshgrid(np.asarray(x_um, float), np.asarray(y_um, float))
    return xx, yy


def stripe_period(d_map, mask, x_um, y_um, pad: int = 8, min_period_um: float | None = None) -> StripeFit:
    """Stripe period of a d-map (see module docstring); ``ValueError`` if fewer than 12 points."""
    from scipy.optimize import least_squares

    d_map = np.asarray(d_map, float)
    ok = np.asarray(mask, bool) & np.isfinite(d_map)
    if ok.sum() < 12:
        raise ValueError(f"stripe period: only {ok.sum()} masked points with a finite d (need ≥ 12)")
    xx, yy = _coords(x_um, y_um)
    step_x, step_y = abs(x_um[1] - x_um[0]), abs(y_um[1] - y_um[0])
    design = np.stack([np.ones(ok.sum()), xx[ok], yy[ok]], axis=1)
    coef, *_ = np.linalg.lstsq(design, d_map[ok], rcond=None)
    resid = np.zeros_like(d_map)
    resid[ok] = d_map[ok] - design @ coef
    ny, nx = d_map.shape
    power = np.abs(np.fft.fft2(resid, s=(pad * ny, pad * nx))) ** 2
    ky = np.fft.fftfreq(pad * ny, d=step_y)
    kx = np.fft.fftfreq(pad * nx, d=step_x)
    kk = np.hypot(kx[None, :], ky[:, None])
    # periods longer than half the field of view are gradients, not stripes
    field = min(nx * step_x, ny * step_y)
    too_long = kk < 2.0 / field
    too_short = kk > 1.0 / min_period_um if min_period_um else np.zeros_like(too_long)
    power[too_long | too_short] = 0.0
    iy, ix = np.unravel_index(np.argmax(power), power.shape)
    k0 = 2 * np.pi * np.array([kx[ix], ky[iy]])
    x, y, d = xx[ok], yy[ok], d_map[ok]

    def model(p):
        phase = p[3] * x + p[4] * y
        return p[0] + p[1] * x + p[2] * y + p[5] * np.cos(phase) + p[6] * np.sin(phase)

    p0 = np.array([*coef, *k0, 0.0, 0.0])
    fit = least_squares(lambda p: model(p) - d, p0, x_scale="jac")
    kvec = fit.x[3:5]
    k = np.hypot(*kvec)
    dof = max(d.size - 7, 1)
    s2 = np.sum(fit.fun**2) / dof
    try:
        cov = np.linalg.inv(fit.jac.T @ fit.jac) * s2
        grad = -2 * np.pi / k**3 * kvec  # ∂(2π/|k|)/∂k
        period_err = float(np.sqrt(grad @ cov[3:5, 3:5] @ grad))
    except np.linalg.LinAlgError:
        period_err = float("nan")
    angle = float(np.degrees(np.arctan2(kvec[1], kvec[0])) % 180.0)
    return StripeFit(float(2 * np.pi / k), period_err, angle, float(np.hypot(fit.x[5], fit.x[6])))


def bending_direction(tilt_xy_deg, mask, x_um, y_um) -> BendingFit:
    """Direction of fastest lattice rotation and the bending axis from a tilt map (deg, (ny, nx, 2))."""
    tilt = np.asarray(tilt_xy_deg, float)
    ok = np.asarray(mask, bool) & np.isfinite(tilt).all(axis=-1)
    if ok.sum() < 6:
        raise ValueError(f"bending direction: only {ok.sum()} masked points with a finite tilt (need ≥ 6)")
    xx, yy = _coords(x_um, y_um)
    design = np.stack([np.ones(ok.sum()), xx[ok], yy[ok]], axis=1)
    coef, *_ = np.linalg.lstsq(design, tilt[ok], rcond=None)  # (3, 2)
    gradient = coef[1:].T  # rows: tilt component, columns: ∂/∂x, ∂/∂y  (deg/µm)
    _, sing, vt = np.linalg.svd(gradient)
    direction = vt[0]
    grad_angle = float(np.degrees(np.arctan2(direction[1], direction[0])) % 180.0)
    kappa = float(sing[0])
    radius = float(1.0 / np.radians(kappa)) if kappa > 0 else float("inf")
    return BendingFit(grad_angle, (grad_angle + 90.0) % 180.0, kappa, radius,
                      float(sing[1] / sing[0]) if sing[0] > 0 else float("nan"))


def angle_between_deg(a_deg: float, b_deg: float) -> float:
    """Smallest angle (0–90°) between two directions given modulo 180°."""
    diff = abs((a_deg - b_deg) % 180.0)
    return float(min(diff, 180.0 - diff))
