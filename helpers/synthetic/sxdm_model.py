"""Simulated NMC crystals for SXDM: fields on a fine real-space grid, built from physical primitives.

A particle is a :class:`ParticleModel`: on a regular grid in the sample plane (x along the beam and
the ``pix`` piezo, y along ``piy``; spacing ``step_um``, finer than the scan step) it holds

- ``thickness_um``: crystal thickness (0 outside the support);
- ``d_spacing_A``: local 003 spacing d (Å);
- ``tilt_deg``: (2, ny, nx) lattice tilt as a small rotation vector (ω_x, ω_y) in degrees: the local
  003 normal is the sample z axis turned by the rotation vector (ω_x, ω_y, 0);
- ``mosaic_deg``: local orientation spread (Gaussian σ, deg) inside one grid cell;
- ``strength``: scattering strength per unit thickness (dimensionless, 1 = nominal);
- ``grain_id``: which grain a cell belongs to (0 = none), kept as truth for domain separation.

The local scattering vector of a cell is Q = Rot(ω) · (0, 0, 2π/d) (:meth:`ParticleModel.q_vectors`).

Primitives (each modifies the model in place and returns it, so they chain):
:func:`blank_particle`, :func:`add_grain` (size, shape, thickness profile, own d and tilt; call it
several times for fused grains or small neighbouring crystallites), :func:`add_bending` (uniform
radius of curvature R about an in-plane axis), :func:`add_shell` (shell with shorter c),
:func:`add_stripes` (periodic planar defects in d and intensity), :func:`add_mosaicity` (smooth random
tilt field + local spread), :func:`add_crystallites` (random small neighbours).
:func:`fig1_particle` builds the paper's particle 1 (Fig. 1–2, design inputs in :data:`FIG1_DESIGN`);
:func:`compact_striped_particle` a striped test crystal whose peak fits a small detector ROI.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage
from scipy.spatial.transform import Rotation

#: NMC-622 d003 (Å) used as the default spacing (c = 14.214 Å, helpers.instrument.NMC003).
D003_A = 14.214 / 3.0


@dataclass
class ParticleModel:
    """Fields of one simulated particle on a fine grid (see the module docstring for each field)."""

    step_um: float
    origin_um: tuple[float, float]
    thickness_um: np.ndarray
    d_spacing_A: np.ndarray
    tilt_deg: np.ndarray
    mosaic_deg: np.ndarray
    strength: np.ndarray
    grain_id: np.ndarray
    name: str = "particle"
    design: dict = field(default_factory=dict)

    def __post_init__(self):
        shape = self.thickness_um.shape
        for name in ("d_spacing_A", "mosaic_deg", "strength", "grain_id"):
            if getattr(self, name).shape != shape:
                raise ValueError(f"{name} has shape {getattr(self, name).shape}, thickness_um has {shape}")
        if self.tilt_deg.shape != (2,) + shape:
            raise ValueError(f"tilt_deg must have shape {(2,) + shape}, got {self.tilt_deg.shape}")
        if self.step_um <= 0:
            raise ValueError(f"step_um must be positive, got {self.step_um}")

    @property
    def shape(self) -> tuple[int, int]:
        """(ny, nx) of the fine grid."""
        return self.thickness_um.shape

    @property
    def support(self) -> np.ndarray:
        """Boolean map of cells holding crystal."""
        return self.thickness_um > 0

    @property
    def x_um(self) -> np.ndarray:
        """x coordinate (µm) of each grid column centre."""
        return self.origin_um[0] + self.step_um * np.arange(self.shape[1])

    @property
    def y_um(self) -> np.ndarray:
        """y coordinate (µm) of each grid row centre."""
        return self.origin_um[1] + self.step_um * np.arange(self.shape[0])

    def coordinates(self) -> tuple[np.ndarray, np.ndarray]:
        """(X, Y) coordinate maps (µm), each of shape (ny, nx)."""
        return np.meshgrid(self.x_um, self.y_um)

    def weight(self) -> np.ndarray:
        """Scattering weight per cell: thickness × strength (µm, 0 outside the support)."""
        return self.thickness_um * self.strength

    def q_vectors(self) -> np.ndarray:
        """Local Q (1/Å, sample frame) of every cell, shape (ny, nx, 3)."""
        rotvec = np.zeros(self.shape + (3,))
        rotvec[..., 0] = np.radians(self.tilt_deg[0])
        rotvec[..., 1] = np.radians(self.tilt_deg[1])
        normal = Rotation.from_rotvec(rotvec.reshape(-1, 3)).apply([0.0, 0.0, 1.0]).reshape(self.shape + (3,))
        return normal * (2.0 * np.pi / self.d_spacing_A)[..., None]

    def copy(self) -> ParticleModel:
        """Deep copy (fields are arrays)."""
        return ParticleModel(
            self.step_um,
            tuple(self.origin_um),
            self.thickness_um.copy(),
            self.d_spacing_A.copy(),
            self.tilt_deg.copy(),
            self.mosaic_deg.copy(),
            self.strength.copy(),
            self.grain_id.copy(),
            self.name,
            dict(self.design),
        )


def blank_particle(
    extent_um: tuple[float, float],
    step_um: float = 0.02,
    origin_um: tuple[float, float] = (0.0, 0.0),
    d_spacing_A: float = D003_A,
    name: str = "particle",
) -> ParticleModel:
    """An empty field of view of ``extent_um = (width_x, height_y)`` µm at grid spacing ``step_um``."""
    if min(extent_um) <= 0 or step_um <= 0:
        raise ValueError(f"extent_um {extent_um} and step_um {step_um} must be positive")
    nx = int(round(extent_um[0] / step_um))
    ny = int(round(extent_um[1] / step_um))
    shape = (ny, nx)
    return ParticleModel(
        step_um=float(step_um),
        origin_um=(float(origin_um[0]), float(origin_um[1])),
        thickness_um=np.zeros(shape),
        d_spacing_A=np.full(shape, float(d_spacing_A)),
        tilt_deg=np.zeros((2,) + shape),
        mosaic_deg=np.zeros(shape),
        strength=np.ones(shape),
        grain_id=np.zeros(shape, dtype=np.int32),
        name=name,
    )


def grain_shape(model: ParticleModel, center_um, semi_axes_um, angle_deg: float = 0.0, exponent: float = 2.0):
    """Normalised radius ρ (< 1 inside) of a super-ellipse |u/a|^p + |v/b|^p on the model grid.

    ``exponent`` 2 is an ellipse, larger values give rounded rectangles (faceted platelets).
    """
    gx, gy = model.coordinates()
    a = np.radians(angle_deg)
    u = (gx - center_um[0]) * np.cos(a) + (gy - center_um[1]) * np.sin(a)
    v = -(gx - center_um[0]) * np.sin(a) + (gy - center_um[1]) * np.cos(a)
    return (np.abs(u / semi_axes_um[0]) ** exponent + np.abs(v / semi_axes_um[1]) ** exponent) ** (
        1 / exponent
    )


def add_grain(
    model: ParticleModel,
    center_um,
    semi_axes_um,
    thickness_um: float = 1.0,
    d_spacing_A: float | None = None,
    tilt_deg=(0.0, 0.0),
    angle_deg: float = 0.0,
    exponent: float = 2.0,
    strength: float = 1.0,
    mosaic_deg: float = 0.0,
    grain_id: int | None = None,
    profile_power: float = 0.5,
) -> ParticleModel:
    """Paint one grain (super-ellipse, dome-shaped thickness) with its own d, tilt and strength.

    Where it overlaps earlier grains it replaces their fields (the later grain is on top), so fused
    aggregates are a few calls with different ``tilt_deg``/``d_spacing_A``. Thickness profile:
    ``thickness_um · (1 − ρ²)^profile_power`` inside ρ < 1.
    """
    if min(semi_axes_um) <= 0 or thickness_um <= 0:
        raise ValueError(f"semi_axes_um {semi_axes_um} and thickness_um {thickness_um} must be positive")
    rho = grain_shape(model, center_um, semi_axes_um, angle_deg, exponent)
    inside = rho < 1
    if not inside.any():
        raise ValueError(f"grain at {center_um} µm with semi-axes {semi_axes_um} µm lies outside the grid")
    gid = int(grain_id) if grain_id is not None else int(model.grain_id.max()) + 1
    model.thickness_um[inside] = thickness_um * (1 - rho[inside] ** 2) ** profile_power
    model.d_spacing_A[inside] = D003_A if d_spacing_A is None else d_spacing_A
    model.tilt_deg[0][inside] = tilt_deg[0]
    model.tilt_deg[1][inside] = tilt_deg[1]
    model.strength[inside] = strength
    model.mosaic_deg[inside] = mosaic_deg
    model.grain_id[inside] = gid
    return model


def _select(model: ParticleModel, grain_ids):
    if grain_ids is None:
        return model.support
    return np.isin(model.grain_id, np.atleast_1d(grain_ids)) & model.support


def add_bending(
    model: ParticleModel,
    radius_um: float,
    axis_angle_deg: float = 90.0,
    center_um=None,
    grain_ids=None,
) -> ParticleModel:
    """Uniform bending about an in-plane axis: tilt grows linearly, by 1/R per µm, across the axis.

    The axis lies in the sample plane at ``axis_angle_deg`` from +x (90° = the y axis, so the tilt is a
    rotation about y, i.e. along the rocking direction). The tilt is the rotation vector
    ω = (s / R) · a, with a the axis unit vector and s the signed distance from the axis through
    ``center_um`` (default: centroid of the selected cells) measured along a × z. Total tilt across a
    length L is L/R (the paper's R = L/Δφ). Positive R: planes fan out (convex up).
    """
    if radius_um == 0 or not np.isfinite(radius_um):
        raise ValueError(f"radius_um must be finite and non-zero, got {radius_um}")
    sel = _select(model, grain_ids)
    gx, gy = model.coordinates()
    if center_um is None:
        center_um = (gx[sel].mean(), gy[sel].mean())
    a = np.radians(axis_angle_deg)
    axis = np.array([np.cos(a), np.sin(a)])
    across = np.array([axis[1], -axis[0]])  # a × z
    s = (gx - center_um[0]) * across[0] + (gy - center_um[1]) * across[1]
    angle_deg = np.degrees(s / radius_um)
    model.tilt_deg[0][sel] += (angle_deg * axis[0])[sel]
    model.tilt_deg[1][sel] += (angle_deg * axis[1])[sel]
    return model


def add_shell(model: ParticleModel, shell_um: float, delta_d_rel: float, grain_ids=None) -> ParticleModel:
    """A surface shell of width ``shell_um`` (in-plane distance to the support edge) with d·(1 + δ).

    ``delta_d_rel < 0`` is the shorter-c shell (e.g. a Li-poor or reconstructed surface layer).
    """
    if shell_um <= 0:
        raise ValueError(f"shell_um must be positive, got {shell_um}")
    sel = _select(model, grain_ids)
    depth_um = ndimage.distance_transform_edt(sel) * model.step_um
    shell = sel & (depth_um <= shell_um)
    model.d_spacing_A[shell] *= 1.0 + delta_d_rel
    return model


def stripe_phase(model: ParticleModel, period_um: float, normal_angle_deg: float, phase_deg: float = 0.0):
    """Phase 2π s/period (rad) of stripes whose d varies along the in-plane direction ``normal_angle_deg``."""
    gx, gy = model.coordinates()
    a = np.radians(normal_angle_deg)
    s = gx * np.cos(a) + gy * np.sin(a)
    return 2 * np.pi * s / period_um + np.radians(phase_deg)


def add_stripes(
    model: ParticleModel,
    period_um: float,
    d_amplitude_rel: float,
    intensity_amplitude: float = 0.0,
    normal_angle_deg: float = 90.0,
    phase_deg: float = 0.0,
    grain_ids=None,
) -> ParticleModel:
    """Periodic planar-defect stripes: d·(1 + A sin φ) and strength·(1 + B sin φ).

    φ advances by 2π per ``period_um`` along ``normal_angle_deg`` (90° = along y: stripes are lines
    parallel to x). A sinusoid of relative amplitude A has an rms Δd/d of A/√2.
    """
    if period_um <= 0:
        raise ValueError(f"period_um must be positive, got {period_um}")
    if not 0 <= intensity_amplitude < 1:
        raise ValueError(f"intensity_amplitude must be in [0, 1), got {intensity_amplitude}")
    sel = _select(model, grain_ids)
    wave = np.sin(stripe_phase(model, period_um, normal_angle_deg, phase_deg))
    model.d_spacing_A[sel] *= (1.0 + d_amplitude_rel * wave)[sel]
    model.strength[sel] *= (1.0 + intensity_amplitude * wave)[sel]
    return model


def add_mosaicity(
    model: ParticleModel,
    rng: np.random.Generator,
    rms_tilt_deg: float,
    correlation_um: float = 0.3,
    local_spread_deg: float = 0.0,
    grain_ids=None,
) -> ParticleModel:
    """Random mosaicity: a smooth random tilt field (rms ``rms_tilt_deg`` per component, Gaussian
    correlation length ``correlation_um``) plus a local orientation spread ``local_spread_deg`` (σ)."""
    sel = _select(model, grain_ids)
    sigma_px = max(correlation_um / model.step_um, 0.5)
    for comp in range(2):
        noise = ndimage.gaussian_filter(rng.standard_normal(model.shape), sigma_px, mode="reflect")
        noise /= noise.std() or 1.0
        model.tilt_deg[comp][sel] += (rms_tilt_deg * noise)[sel]
    model.mosaic_deg[sel] = np.hypot(model.mosaic_deg[sel], local_spread_deg)
    return model


def add_crystallites(
    model: ParticleModel,
    rng: np.random.Generator,
    n: int,
    radius_um=(0.1, 0.25),
    region_um=None,
    tilt_rms_deg: float = 0.2,
    d_rel_rms: float = 5e-4,
    thickness_um: float = 0.3,
    strength: float = 1.0,
) -> ParticleModel:
    """``n`` small round crystallites at random places of ``region_um`` = (x0, x1, y0, y1) (default:
    the whole grid), each with a random tilt (rms ``tilt_rms_deg``) and d (rms ``d_rel_rms``);
    they sit on top of what is there (their own grain ids)."""
    x0, x1, y0, y1 = region_um or (model.x_um[0], model.x_um[-1], model.y_um[0], model.y_um[-1])
    for _ in range(int(n)):
        radius = rng.uniform(*radius_um)
        add_grain(
            model,
            (rng.uniform(x0, x1), rng.uniform(y0, y1)),
            (radius, radius * rng.uniform(0.7, 1.0)),
            thickness_um=thickness_um,
            d_spacing_A=D003_A * (1 + d_rel_rms * rng.standard_normal()),
            tilt_deg=tuple(tilt_rms_deg * rng.standard_normal(2)),
            angle_deg=rng.uniform(0, 180),
            strength=strength,
        )
    return model


#: Design inputs of the paper's particle 1 (Fig. 1–2 and the striped #1 of Fig. 3), used by every
#: notebook that shows it. Paper: total curvature across the crystal ≈ 0.8° (main text, Fig. 2), stripe
#: period ≈ 440 nm, d histogram Δd/d = 4.2·10⁻⁴ (Fig. 1E), bending perpendicular to the stripes, and
#: the SI: "in the tilt orientation maps all the particles are colored red-blue (with the exception of
#: particle 1) and their tilts preferentially oriented east-west along the polar coordinate system". It
#: names no direction for particle 1; this model reads the exception as north–south: its bending axis
#: is the sample x axis, so the lattice turns about x and its pole-figure points spread along the Debye
#: ring, Y, not along the rocking direction X.
FIG1_DESIGN = {
    "size_um": 3.2,  # extent along the bending gradient (sample y)
    "width_um": 2.6,  # extent along the bending axis (sample x)
    "thickness_um": 1.2,
    "total_curvature_deg": 0.8,
    "bending_axis_angle_deg": 0.0,
    "stripe_period_um": 0.44,
    "stripe_normal_angle_deg": 0.0,
    "stripe_d_amplitude_rel": 8.65e-4,
    "shell_um": 0.12,
    "shell_delta_d_rel": -3e-4,
    "d_spread_rel": 4.2e-4,
    "beam_fwhm_um": 0.14,
}
FIG1_DESIGN["bending_radius_um"] = FIG1_DESIGN["size_um"] / np.radians(FIG1_DESIGN["total_curvature_deg"])


def fig1_particle(rng: np.random.Generator, step_um: float = 0.02) -> ParticleModel:
    """The paper's particle 1 (Fig. 1–2; the striped #1 of Fig. 3); design inputs in :data:`FIG1_DESIGN`.

    A 3.2 × 2.6 µm faceted platelet (long axis along y), 1.2 µm thick, bent about the x axis with
    R = 3.2 µm / 0.8° = 229 µm (total tilt 0.8° across the crystal, the lattice turning about x: the
    tilt points north–south in the pole figure: the model's reading of the SI's "exception of particle
    1" to the east–west tilts, the SI names no direction), stripes of period
    0.44 µm whose d varies along x (lines parallel to y, so the bending axis x is perpendicular to the
    stripes), a 0.12 µm shell with shorter c (Δd/d = −3·10⁻⁴), weak random mosaicity. The stripe
    amplitude (8.65·10⁻⁴) is set so that the d map *as the 140 nm beam sees it* (footprint-weighted
    truth on the 0.1 µm scan grid, inside the 20 %-intensity mask) has a relative standard deviation
    of ≈ 4.2·10⁻⁴, the paper's Fig. 1E microstrain
    (:func:`helpers.synthetic.sxdm_samples.truth_summary` measures it). :func:`d_spread_rel` gives the
    unblurred fine-grid value.
    """
    des = FIG1_DESIGN
    model = blank_particle((4.0, 4.0), step_um=step_um, name="fig1_particle")
    semi = (des["size_um"] / 2, des["width_um"] / 2)
    add_grain(
        model, (2.0, 2.0), semi, thickness_um=des["thickness_um"], angle_deg=90.0, exponent=3.0, grain_id=1
    )
    add_shell(model, des["shell_um"], des["shell_delta_d_rel"])
    add_stripes(
        model,
        des["stripe_period_um"],
        des["stripe_d_amplitude_rel"],
        intensity_amplitude=0.15,
        normal_angle_deg=des["stripe_normal_angle_deg"],
    )
    add_bending(model, des["bending_radius_um"], axis_angle_deg=des["bending_axis_angle_deg"])
    add_mosaicity(model, rng, rms_tilt_deg=0.003, correlation_um=0.4, local_spread_deg=0.01)
    model.design = {
        "stripe_period_um": des["stripe_period_um"],
        "stripe_normal_angle_deg": des["stripe_normal_angle_deg"],
        "bending_radius_um": des["bending_radius_um"],
        "bending_axis_angle_deg": des["bending_axis_angle_deg"],
        "total_curvature_deg": des["total_curvature_deg"],
        "size_um": des["size_um"],
        "d_spread_rel": des["d_spread_rel"],
        "d0_A": D003_A,
    }
    return model


def compact_striped_particle(rng: np.random.Generator, step_um: float = 0.02) -> ParticleModel:
    """A striped crystal whose peak stays inside a small detector ROI: a test object, not particle 1.

    3.2 × 2.6 µm platelet (long axis 12° from x), 1.2 µm thick, bent about the y axis with R = 400 µm
    (≈ 0.45° along the rocking direction, so the peak does not move on the detector), 0.44 µm stripes
    whose d varies along y (relative amplitude 8.3·10⁻⁴), a 0.12 µm shell with Δd/d = −3·10⁻⁴. The
    reducer and drift tests use it because a 32–64 pixel ROI holds its whole peak; the paper's particle
    1 (:func:`fig1_particle`) sweeps ≈ 100 pixels along the Debye ring.
    """
    model = blank_particle((4.0, 4.0), step_um=step_um, name="compact_striped_particle")
    add_grain(model, (2.0, 2.0), (1.6, 1.3), thickness_um=1.2, angle_deg=12.0, exponent=3.0, grain_id=1)
    add_shell(model, 0.12, -3e-4)
    add_stripes(model, 0.44, 8.3e-4, intensity_amplitude=0.15, normal_angle_deg=90.0)
    add_bending(model, 400.0, axis_angle_deg=90.0)
    add_mosaicity(model, rng, rms_tilt_deg=0.003, correlation_um=0.4, local_spread_deg=0.01)
    model.design = {
        "stripe_period_um": 0.44,
        "stripe_normal_angle_deg": 90.0,
        "bending_radius_um": 400.0,
        "bending_axis_angle_deg": 90.0,
        "d0_A": D003_A,
    }
    return model


def d_spread_rel(model: ParticleModel) -> float:
    """Weighted relative standard deviation of d over the support (weights: thickness × strength)."""
    w = model.weight()
    d = model.d_spacing_A
    mean = np.sum(w * d) / np.sum(w)
    return float(np.sqrt(np.sum(w * (d - mean) ** 2) / np.sum(w)) / mean)
