"""One NMC crystal in 3-D seen by both microscopes: voids and lattice linked by a stated coupling.

Physics of the model (design inputs, all in :class:`CorrelativeDesign`)
-----------------------------------------------------------------------
Oxygen-vacancy-rich regions form during growth as a smooth random field (Gaussian correlation length
``vacancy_corr_um``). Their local vacancy load sets the *expected local void volume fraction*
f(r) ∈ [0, ``void_fraction_max``]: Kirkendall voids (spheres of diameter ``void_diameter_um``)
nucleate there with a density such that their expected volume fraction is f. The same vacancies expand
the lattice: Δd₀₀₃/d = ``coupling`` · f(r). ``coupling`` (Δd/d per unit void volume fraction) is the
number a correlative analysis should recover. ``coupled=False`` is the control: the lattice expands by
the same law but following an *independent* vacancy field (same statistics, other seed), so d and the
voids share nothing. The crystal is also bent uniformly (about y, radius ``bending_radius_um``),
independently of the voids, so its tilt carries no association either.

Two renderings of the same object
---------------------------------
- SXDM (:func:`sxdm_particle`): the beam crosses the whole thickness, so each column (x, y) scatters
  with weight = solid thickness and the centre of mass of its peak sits at the solid-weighted column
  mean of Q: the 2-D :class:`~helpers.synthetic.sxdm_model.ParticleModel` holds the solid thickness,
  the column-mean d and the bending tilt; :func:`write_sxdm` scans it with
  :mod:`helpers.synthetic.sxdm_scan` (frames in the ID01 BLISS layout).
- nano-CT (:func:`ct_volume`, :func:`write_ct`): the object is placed on the CT grid after a known
  in-plane rotation and shift (the alignment the analysis must find), in air, and projected with
  Fresnel propagation and noise by :mod:`helpers.synthetic.ct_projections` (NXtomo).

Coordinates: the object frame is the SXDM sample frame (x along ``pix``, y along ``piy``, z the
thickness, along the integrating beam direction). The CT volume is (z, y, x) with z the rotation axis,
so the projection along the SXDM beam is the sum over CT slices. The alignment maps an SXDM point
p_s = (x, y) µm to CT in-plane coordinates p_c = (col, row) · voxel µm as p_c = R(angle) p_s + shift
(:data:`CorrelativeParticle.alignment`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from scipy import ndimage

from helpers.synthetic import sxdm_model


@dataclass(frozen=True)
class CorrelativeDesign:
    """Design inputs of the correlative particle (units in the names)."""

    coupling: float = 2.0e-3  # Δd/d per unit local void volume fraction
    coupled: bool = True  # False: the control, d follows an independent vacancy field
    void_fraction_max: float = 0.25
    void_diameter_um: tuple[float, float] = (0.10, 0.20)
    vacancy_corr_um: float = 0.18
    semi_axes_um: tuple[float, float] = (1.35, 1.05)
    thickness_um: float = 1.0
    bending_radius_um: float = 1500.0
    voxel_um: float = 0.025
    extent_um: tuple[float, float] = (3.4, 2.9)
    ct_size_vox: int = 160
    ct_angle_deg: float = 23.0
    ct_shift_um: tuple[float, float] = (0.35, -0.25)


@dataclass
class CorrelativeParticle:
    """The 3-D object on the voxel grid of the object frame, (z, y, x), and its truth."""

    design: CorrelativeDesign
    crystal: np.ndarray  # bool, inside the particle envelope (voids included)
    voids: np.ndarray  # bool, void voxels (inside the envelope)
    void_expected: np.ndarray  # float32, expected local void volume fraction f
    d_rel: np.ndarray  # float32, Δd/d of the lattice
    tilt_deg: np.ndarray  # (2, ny, nx) bending tilt (ω_x, ω_y) of each column
    origin_um: tuple[float, float] = (0.0, 0.0)
    info: dict = field(default_factory=dict)

    @property
    def solid(self) -> np.ndarray:
        """Crystal voxels that hold NMC (envelope minus voids)."""
        return self.crystal & ~self.voids

    def centre_um(self) -> np.ndarray:
        """Envelope centre (x, y) in the SXDM frame (µm)."""
        return np.array([self.design.extent_um[0] / 2, self.design.extent_um[1] / 2]) + np.asarray(
            self.origin_um
        )

    def alignment(self) -> dict:
        """True SXDM → CT alignment: ``angle_deg`` and ``shift_um`` with p_c = R(angle) p_s + shift."""
        des = self.design
        c_ct = (des.ct_size_vox - 1) / 2 * des.voxel_um + np.asarray(des.ct_shift_um)
        rot = _rotation(des.ct_angle_deg)
        shift = c_ct - rot @ self.centre_um()
        return {"angle_deg": float(des.ct_angle_deg), "shift_um": (float(shift[0]), float(shift[1]))}

    def projected_truth(self) -> dict:
        """Column truths on the object grid: solid thickness (µm), void fraction of the column and
        solid-weighted mean Δd/d (what the SXDM centre of mass measures)."""
        solid = self.solid
        n_solid = solid.sum(axis=0)
        n_env = self.crystal.sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            void_fraction = np.where(n_env > 0, self.voids.sum(axis=0) / n_env, np.nan)
            d_rel = np.where(n_solid > 0, (self.d_rel * solid).sum(axis=0) / n_solid, np.nan)
        return {
            "thickness_um": n_solid * self.design.voxel_um,
            "void_fraction": void_fraction,
            "d_rel": d_rel,
        }


def _rotation(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])


def _vacancy_field(shape, sigma_vox: float, rng: np.random.Generator) -> np.ndarray:
    """Expected void fraction shape in [0, 1]: a smooth Gaussian field through a logistic (rich patches)."""
    g = ndimage.gaussian_filter(rng.standard_normal(shape), sigma_vox, mode="reflect")
    g /= g.std() or 1.0
    return 1.0 / (1.0 + np.exp(-(g - 0.8) / 0.35))


def _sphere_voxels(radius_vox: float) -> int:
    r = int(np.ceil(radius_vox))
    g = np.arange(-r, r + 1)
    return int(np.sum(g[:, None, None] ** 2 + g[None, :, None] ** 2 + g[None, None, :] ** 2 <= radius_vox**2))


def _boolean_spheres(f: np.ndarray, diameter_um: tuple[float, float], voxel_um: float, rng):
    """Union of random spheres (Boolean model) whose expected covered fraction is ``f`` per voxel.

    Centres at voxel centres with intensity λ = −ln(1 − f) / E[V] (E[V]: mean voxel count of a sphere
    of uniform random diameter), so that P(voxel in a void) = 1 − exp(−λ E[V]) = f.
    """
    radii_test = np.linspace(*diameter_um, 41) / 2 / voxel_um
    mean_vox = float(np.mean([_sphere_voxels(r) for r in radii_test]))
    weight = -np.log1p(-f.astype(np.float64).ravel())
    n = rng.poisson(weight.sum() / mean_vox)
    voids = np.zeros(f.shape, bool)
    if n == 0:
        return voids, 0
    centres = np.unravel_index(rng.choice(f.size, size=n, p=weight / weight.sum()), f.shape)
    for k in range(n):
        r = rng.uniform(*diameter_um) / 2 / voxel_um
        c = [centres[i][k] for i in range(3)]
        sl = tuple(slice(max(ci - int(np.ceil(r)), 0), ci + int(np.ceil(r)) + 1) for ci in c)
        grids = np.ogrid[sl[0], sl[1], sl[2]]
        voids[sl] |= sum((g - ci) ** 2 for g, ci in zip(grids, c, strict=True)) <= r * r
    return voids, n


def make_particle(design: CorrelativeDesign | None = None, seed: int = 0) -> CorrelativeParticle:
    """Build the 3-D correlative particle (seeded); see the module docstring for the physics."""
    des = design or CorrelativeDesign()
    if des.coupling < 0 or not 0 < des.void_fraction_max < 1:
        raise ValueError(
            f"coupling must be ≥ 0 and void_fraction_max in (0, 1): {des.coupling}, {des.void_fraction_max}"
        )
    rng = np.random.default_rng(seed)
    v = des.voxel_um
    nx, ny = (int(round(e / v)) for e in des.extent_um)
    nz = int(np.ceil((des.thickness_um + 0.2) / v))
    x = (np.arange(nx) + 0.5) * v
    y = (np.arange(ny) + 0.5) * v
    z = (np.arange(nz) + 0.5) * v - nz * v / 2
    cx, cy = des.extent_um[0] / 2, des.extent_um[1] / 2
    rho = (
        np.abs((x[None, :] - cx) / des.semi_axes_um[0]) ** 3
        + np.abs((y[:, None] - cy) / des.semi_axes_um[1]) ** 3
    ) ** (1 / 3)
    half = np.where(rho < 1, des.thickness_um / 2 * np.clip(1 - rho**2, 0, None) ** 0.4, 0.0)
    crystal = np.abs(z)[:, None, None] < half[None]
    sigma = des.vacancy_corr_um / v
    depth = ndimage.distance_transform_edt(crystal) * v
    # vacancies diffuse out near the surface: a depleted layer as thick as the largest void radius
    # (+ one voxel), so that no void breaks the surface and every nucleated void is kept
    core = depth >= des.void_diameter_um[1] / 2 + v
    f = (des.void_fraction_max * _vacancy_field(crystal.shape, sigma, rng)).astype(np.float32)
    f[~core] = 0
    voids, n_voids = _boolean_spheres(f, des.void_diameter_um, v, rng)
    voids &= crystal
    f_lattice = f if des.coupled else (des.void_fraction_max * _vacancy_field(crystal.shape, sigma, rng))
    d_rel = (des.coupling * f_lattice).astype(np.float32)
    d_rel[~crystal] = 0
    gx = np.broadcast_to(x[None, :], (ny, nx))
    tilt = np.zeros((2, ny, nx))
    tilt[1] = np.degrees((gx - cx) / des.bending_radius_um)  # bent about y: tilt along the rocking direction
    particle = CorrelativeParticle(des, crystal, voids, f, d_rel, tilt)
    particle.info = {
        "seed": int(seed),
        "n_voids": int(n_voids),
        "void_fraction": float(voids.sum() / crystal.sum()),
    }
    return particle


# ----------------------------------------------------------------------------------------------
# SXDM rendering
# ----------------------------------------------------------------------------------------------
def sxdm_particle(particle: CorrelativeParticle) -> sxdm_model.ParticleModel:
    """The 2-D SXDM model of the object: solid thickness, column-mean d and bending tilt per column."""
    cols = particle.projected_truth()
    thickness = cols["thickness_um"]
    d = sxdm_model.D003_A * (1 + np.nan_to_num(cols["d_rel"]))
    support = thickness > 0
    model = sxdm_model.ParticleModel(
        step_um=particle.design.voxel_um,
        origin_um=(
            particle.origin_um[0] + particle.design.voxel_um / 2,
            particle.origin_um[1] + particle.design.voxel_um / 2,
        ),
        thickness_um=thickness,
        d_spacing_A=np.where(support, d, sxdm_model.D003_A),
        tilt_deg=particle.tilt_deg * support,
        mosaic_deg=np.where(support, 0.01, 0.0),
        strength=np.ones_like(thickness),
        grain_id=support.astype(np.int32),
        name="correlative_particle",
        design={**asdict(particle.design), "kind": "correlative"},
    )
    return model


def sxdm_settings(particle: CorrelativeParticle, scan_step_um: float = 0.1, beam_fwhm_um: float = 0.1):
    """Scan settings covering the field of view: 0.1 µm steps, a 100 nm beam, eta across the bending,
    a 32 × 32-pixel ROI around the peak (the d range moves it by a few pixels only)."""
    from helpers.sxdm import geometry
    from helpers.synthetic.sxdm_scan import ScanSettings

    des = particle.design
    n_fast = int(np.floor(des.extent_um[0] / scan_step_um))
    n_slow = int(np.floor(des.extent_um[1] / scan_step_um))
    theta, _ = geometry.detector_angles_for_d(sxdm_model.D003_A, 1.24e-10)
    half = float(np.abs(particle.tilt_deg[1]).max()) + 0.08
    n_eta = int(np.ceil(2 * half / 0.02)) + 1
    return ScanSettings(
        n_fast=n_fast,
        n_slow=n_slow,
        start_um=(particle.origin_um[0] + scan_step_um / 2, particle.origin_um[1] + scan_step_um / 2),
        step_um=(scan_step_um, scan_step_um),
        beam_fwhm_um=(beam_fwhm_um, beam_fwhm_um),
        roi=(294, 326, 181, 213),
        eta_deg=theta + np.linspace(-half, half, n_eta),
        drift_um_per_eta=0.0,
    )


def write_sxdm(particle: CorrelativeParticle, path, seed: int = 1) -> Path:
    """Simulate the SXDM scan of ``particle`` and write it in the ID01 BLISS layout; returns the path."""
    from helpers.synthetic import sxdm_scan

    sim = sxdm_scan.simulate_scan(
        sxdm_particle(particle), sxdm_settings(particle), np.random.default_rng(seed)
    )
    return sxdm_scan.write_simulation(
        sim,
        Path(path),
        external_frames=False,
        attrs={"sample": "correlative_particle", "made_by": "helpers.synthetic.correlative.write_sxdm"},
    )


# ----------------------------------------------------------------------------------------------
# nano-CT rendering
# ----------------------------------------------------------------------------------------------
def _on_ct_grid(particle: CorrelativeParticle, labels: np.ndarray) -> np.ndarray:
    """An integer volume of the object frame resampled (nearest voxel) onto the CT grid, aligned."""
    des = particle.design
    n = des.ct_size_vox
    nz = particle.crystal.shape[0]
    align = particle.alignment()
    rot_inv = _rotation(align["angle_deg"]).T
    rows, cols = np.mgrid[0:n, 0:n].astype(float)
    pc = np.stack([cols * des.voxel_um, rows * des.voxel_um]) - np.asarray(align["shift_um"])[:, None, None]
    ps = np.einsum("ij,jyx->iyx", rot_inv, pc)  # SXDM frame (µm)
    obj_col = (ps[0] - particle.origin_um[0]) / des.voxel_um - 0.5
    obj_row = (ps[1] - particle.origin_um[1]) / des.voxel_um - 0.5
    out = np.zeros((nz, n, n), labels.dtype)
    for k in range(nz):
        out[k] = ndimage.map_coordinates(labels[k], [obj_row, obj_col], order=0, cval=0)
    return out


def ct_phase_volume(particle: CorrelativeParticle) -> np.ndarray:
    """Phase volume on the CT grid (uint8: 0 air, 2 NMC; voids are air), after the alignment."""
    phase_obj = np.where(particle.voids, 0, np.where(particle.crystal, 2, 0)).astype(np.uint8)
    return _on_ct_grid(particle, phase_obj)


def ct_truth_masks(particle: CorrelativeParticle) -> tuple[np.ndarray, np.ndarray]:
    """True (envelope, voids) boolean masks on the CT grid, rendered from the object's void spheres by
    the same resampling as :func:`ct_phase_volume` (the truth a CT void-detection curve is scored on)."""
    code = (particle.crystal.astype(np.uint8) + particle.voids.astype(np.uint8)).astype(np.uint8)
    on_ct = _on_ct_grid(particle, code)
    return on_ct >= 1, on_ct == 2


def ct_volume(
    particle: CorrelativeParticle, energy_kev: float = 29.6
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(phase, δ, β) volumes on the CT grid; δ/β of NMC 87 (the paper's), glue and air tabulated."""
    from helpers.synthetic.ct_phantom import refractive_indices

    phase = ct_phase_volume(particle)
    table = refractive_indices(energy_kev)
    delta = np.array([table.loc[p, "delta"] for p in ("air", "glue", "NMC")], np.float32)[phase]
    beta = np.array([table.loc[p, "beta"] for p in ("air", "glue", "NMC")], np.float32)[phase]
    return phase, delta, beta


def write_ct(
    particle: CorrelativeParticle,
    path,
    n_angles: int = 100,
    distance_m: float = 1.0e-4,
    seed: int = 2,
    flat_counts: float = 2000.0,
) -> Path:
    """Simulate a single-distance phase-contrast scan of the CT volume and write it as NXtomo.

    ``flat_counts`` 2000 photons per pixel gives a reconstructed NMC/air contrast-to-noise ratio of
    ≈ 3–4 on this thin particle (the paper's volume: 2.3), enough for a plain threshold.
    """
    from helpers.synthetic import ct_projections

    _, delta, beta = ct_volume(particle)
    angles = np.linspace(0.0, np.pi, n_angles, endpoint=False)
    scan = ct_projections.simulate_scan(
        delta,
        beta,
        angles,
        voxel_size_m=particle.design.voxel_um * 1e-6,
        distances_m=(distance_m,),
        rng=seed,
        flat_counts=flat_counts,
        n_bad_columns=0,
        ring_sigma=0.0,
    )
    return ct_projections.write_nxtomo(Path(path), scan)


# ----------------------------------------------------------------------------------------------
# cached sample (notebook 09)
# ----------------------------------------------------------------------------------------------
SAMPLE_VERSION = "1"


def write_truth(particle: CorrelativeParticle, path) -> Path:
    """Truth file: design inputs, the true alignment and the column truths on the object grid."""
    import json

    import h5py

    cols = particle.projected_truth()
    with h5py.File(path, "w") as h5:
        h5.attrs["design_json"] = json.dumps(asdict(particle.design))
        h5.attrs["info_json"] = json.dumps(particle.info)
        h5.attrs["alignment_json"] = json.dumps(particle.alignment())
        h5.attrs["voxel_um"] = particle.design.voxel_um
        h5.attrs["origin_um"] = np.asarray(particle.origin_um)
        for name, data in cols.items():
            h5.create_dataset(name, data=np.asarray(data, np.float32), compression="gzip")
    return Path(path)


def read_truth(path) -> dict:
    """Read :func:`write_truth`: ``design``, ``alignment``, ``info`` dicts and the column maps."""
    import json

    import h5py

    with h5py.File(path, "r") as h5:
        out = {k: h5[k][()] for k in h5}
        out["design"] = json.loads(h5.attrs["design_json"])
        out["alignment"] = json.loads(h5.attrs["alignment_json"])
        out["info"] = json.loads(h5.attrs["info_json"])
    return out


def true_ct_voids(truth_path) -> np.ndarray:
    """True void mask on the CT grid of the particle a truth file describes (rebuilt from its design
    and seed: the generator is deterministic), for scoring a CT chain's void detection."""
    t = read_truth(truth_path)
    design = CorrelativeDesign(**{k: tuple(v) if isinstance(v, list) else v for k, v in t["design"].items()})
    particle = make_particle(design, t["info"]["seed"])
    if particle.info["n_voids"] != t["info"]["n_voids"]:
        raise ValueError(
            f"{truth_path}: the rebuilt particle differs from the simulated one (generator changed)"
        )
    return ct_truth_masks(particle)[1]


def cached_sample(
    coupled: bool = True, seed: int = 0, design: CorrelativeDesign | None = None, force: bool = False
) -> dict:
    """SXDM series, CT scan and truth of the correlative particle, simulated once into the cache.

    Returns ``{"sxdm": path, "ct": path, "truth": path}``; about 30 s on two cores the first time.
    """
    import hashlib
    import json

    from helpers.paths import cache_dir

    des = design or CorrelativeDesign(coupled=coupled)
    key = json.dumps({"v": SAMPLE_VERSION, "design": asdict(des), "seed": seed}, sort_keys=True)
    folder = cache_dir() / "correlative" / hashlib.sha256(key.encode()).hexdigest()[:12]
    paths = {"sxdm": folder / "sxdm.h5", "ct": folder / "ct.nx", "truth": folder / "truth.h5"}
    if force or not all(p.is_file() for p in paths.values()):
        folder.mkdir(parents=True, exist_ok=True)
        particle = make_particle(des, seed)
        write_sxdm(particle, paths["sxdm"], seed=seed + 1)
        write_ct(particle, paths["ct"], seed=seed + 2)
        write_truth(particle, paths["truth"])
    return paths
