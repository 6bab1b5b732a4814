"""Voxelised exact reference shapes and their analytic morphology values.

A voxel belongs to a shape when its centre lies inside it (no partial volumes). The shapes are the
references of WORKBOOK §4: sphere, cube, rounded cube (a cube of half-side ``h`` whose edges and corners
are rounded with radius ``rho``, i.e. the Minkowski sum of a cube of half-side ``h - rho`` and a ball of
radius ``rho``), cylinder and triaxial ellipsoid, each optionally rotated. Lengths are in voxels.

:func:`reference_values` gives the exact continuum values (volume, surface, semi-axes of the inertia
ellipsoid, inscribed and circumscribed radii, S, ψ, 3-D Wadell roundness R) that the tests and
notebook 07 compare the estimators of :mod:`helpers.nanoct.morphology` with.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.special import elliprg

__all__ = ["SHAPES", "cube", "cylinder", "ellipsoid", "reference_values", "rotation_matrix", "rounded_cube",
           "sphere", "voxelise"]

SHAPES = ("sphere", "cube", "rounded_cube", "cylinder", "ellipsoid")


def rotation_matrix(angles_deg=(0.0, 0.0, 0.0)) -> np.ndarray:
    """3×3 rotation matrix from intrinsic z-y-x Euler angles in degrees (axis order z, y, x of arrays)."""
    az, ay, ax = np.deg2rad(np.asarray(angles_deg, dtype=float))
    rz = np.array([[1, 0, 0], [0, np.cos(az), -np.sin(az)], [0, np.sin(az), np.cos(az)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rx = np.array([[np.cos(ax), -np.sin(ax), 0], [np.sin(ax), np.cos(ax), 0], [0, 0, 1]])
    return rz @ ry @ rx


def voxelise(inside, circumradius_vox: float, rotation=None, offset_vox=(0.0, 0.0, 0.0), pad: int = 3):
    """Boolean volume of a body given by ``inside(p) -> bool array`` for body-frame points ``p`` (N×3).

    The grid is centred on the body (plus ``offset_vox``), large enough for ``circumradius_vox`` plus
    ``pad`` empty voxels on every side; ``rotation`` (3×3) turns the body before sampling.
    """
    half = int(math.ceil(circumradius_vox + max(abs(o) for o in offset_vox))) + pad
    axis = np.arange(-half, half + 1, dtype=float)
    grid = np.stack(np.meshgrid(axis, axis, axis, indexing="ij"), axis=-1).reshape(-1, 3)
    points = grid - np.asarray(offset_vox, dtype=float)
    if rotation is not None:
        points = points @ np.asarray(rotation, dtype=float)  # body frame: R^T p, written row-wise
    return inside(points).reshape((2 * half + 1,) * 3)


def sphere(radius_vox: float, offset_vox=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Voxelised ball of radius ``radius_vox``."""
    return voxelise(lambda p: np.einsum("ij,ij->i", p, p) <= radius_vox**2, radius_vox, None, offset_vox)


def ellipsoid(a_vox: float, b_vox: float, c_vox: float, rotation=None, offset_vox=(0.0, 0.0, 0.0)):
    """Voxelised ellipsoid with semi-axes ``a, b, c`` along body axes x, y, z (array axes 2, 1, 0)."""
    scale = np.array([c_vox, b_vox, a_vox], dtype=float)
    return voxelise(lambda p: np.sum((p / scale) ** 2, axis=1) <= 1.0, max(scale), rotation, offset_vox)


def rounded_cube(half_side_vox: float, corner_radius_vox: float, rotation=None, offset_vox=(0.0, 0.0, 0.0)):
    """Voxelised cube of half-side ``h`` with edges and corners rounded to radius ``rho`` (0 ≤ rho ≤ h)."""
    h, rho = float(half_side_vox), float(corner_radius_vox)
    if not 0.0 <= rho <= h:
        raise ValueError(f"rounded_cube: corner radius {rho} must lie in [0, half side {h}]")
    core = h - rho

    def inside(p):
        outside_core = np.clip(np.abs(p) - core, 0.0, None)
        return np.einsum("ij,ij->i", outside_core, outside_core) <= rho**2 + 1e-9

    return voxelise(inside, math.sqrt(3.0) * core + rho, rotation, offset_vox)


def cube(half_side_vox: float, rotation=None, offset_vox=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Voxelised sharp cube of half-side ``half_side_vox``."""
    return rounded_cube(half_side_vox, 0.0, rotation, offset_vox)


def cylinder(radius_vox: float, half_height_vox: float, rotation=None, offset_vox=(0.0, 0.0, 0.0)):
    """Voxelised cylinder of radius ``radius_vox``, axis along array axis 0, height ``2 half_height_vox``."""

    def inside(p):
        return (p[:, 1] ** 2 + p[:, 2] ** 2 <= radius_vox**2) & (np.abs(p[:, 0]) <= half_height_vox)

    return voxelise(inside, math.hypot(radius_vox, half_height_vox), rotation, offset_vox)


def _ellipsoid_area(a, b, c):
    return 4.0 * math.pi * a * b * c * float(elliprg(1.0 / a**2, 1.0 / b**2, 1.0 / c**2))


def reference_values(shape: str, **size) -> dict:
    """Exact continuum morphology of a reference shape (lengths in voxels).

    ``shape`` and its sizes: ``sphere(r)``, ``cube(h)``, ``rounded_cube(h, rho)``, ``cylinder(r, h)``
    (h = half height), ``ellipsoid(a, b, c)``. Returns volume, surface, semi-axes ``a ≥ b ≥ c`` of the
    inertia ellipsoid (√(5λ)), ``r_ins``, ``r_cir``, ``sphericity`` (S = r_ins/r_cir),
    ``wadell_sphericity`` (ψ = π^(1/3)(6V)^(2/3)/A) and ``roundness`` (3-D Wadell R; NaN where the
    workbook has no exact value, the ellipsoid).
    """
    if shape == "sphere":
        r = size["r"]
        volume, area, var, r_ins, r_cir, roundness = 4 / 3 * math.pi * r**3, 4 * math.pi * r**2, \
            [r**2 / 5] * 3, r, r, 1.0
    elif shape in ("cube", "rounded_cube"):
        h = size["h"]
        rho = size.get("rho", 0.0) if shape == "rounded_cube" else 0.0
        k = h - rho
        volume = 8 * k**3 + 24 * k**2 * rho + 6 * math.pi * k * rho**2 + 4 / 3 * math.pi * rho**3
        area = 24 * k**2 + 12 * math.pi * k * rho + 4 * math.pi * rho**2
        var = [_rounded_cube_variance(h, rho)] * 3
        r_ins, r_cir, roundness = h, math.sqrt(3) * k + rho, rho / h
    elif shape == "cylinder":
        r, h = size["r"], size["h"]
        volume, area = 2 * math.pi * r**2 * h, 4 * math.pi * r * h + 2 * math.pi * r**2
        var = [r**2 / 4, r**2 / 4, h**2 / 3]
        r_ins, r_cir, roundness = min(r, h), math.hypot(r, h), 0.0
    elif shape == "ellipsoid":
        a, b, c = sorted((size["a"], size["b"], size["c"]), reverse=True)
        volume, area = 4 / 3 * math.pi * a * b * c, _ellipsoid_area(a, b, c)
        var = [a**2 / 5, b**2 / 5, c**2 / 5]
        r_ins, r_cir, roundness = c, a, math.nan
    else:
        raise KeyError(f"reference_values: unknown shape {shape!r}; known: {SHAPES}")
    a_ax, b_ax, c_ax = sorted((math.sqrt(5 * v) for v in var), reverse=True)
    return {
        "volume": volume, "surface": area, "a": a_ax, "b": b_ax, "c": c_ax,
        "e_yx": b_ax / a_ax, "e_zx": c_ax / a_ax, "e_zy": c_ax / b_ax,
        "r_ins": r_ins, "r_cir": r_cir, "sphericity": r_ins / r_cir,
        "wadell_sphericity": math.pi ** (1 / 3) * (6 * volume) ** (2 / 3) / area,
        "roundness": roundness, "d_eq": (6 * volume / math.pi) ** (1 / 3),
    }


def _rounded_cube_variance(h: float, rho: float) -> float:
    """Second moment <x²> of a solid rounded cube, by 1-D quadrature over slabs (exact to ~1e-9)."""
    k = h - rho
    x = np.linspace(-h, h, 20001)
    # area of the cross-section at height x: a rounded square of core half-side k and radius s
    s = np.sqrt(np.clip(rho**2 - np.clip(np.abs(x) - k, 0.0, None) ** 2, 0.0, None))
    area = 4 * k**2 + 8 * k * s + math.pi * s**2
    return float(np.trapezoid(x**2 * area, x) / np.trapezoid(area, x))
