"""A 3-D NMC-622 powder phantom at nano-CT voxel size, with exact per-voxel and per-particle truth.

The phantom stands in for the paper's ID16B volume (25 nm voxels): faceted-but-rounded NMC crystals
with a log-normal size distribution, a share of welded aggregates, a share of "defective" crystals that
hold clustered internal voids (50–300 nm), all embedded in a binder ("glue") phase with air pores.

Public API (stable; other modules and notebooks build on it)
-----------------------------------------------------------
- :func:`make_powder_phantom` → :class:`PowderPhantom` with
  ``labels`` (int32, particle id on solid NMC voxels, 0 elsewhere), ``phase`` (uint8: 0 air, 1 glue,
  2 NMC; internal voids are air), ``void_mask`` (bool, internal voids), ``void_owner`` (int32, label of
  the particle that encloses each void voxel), ``truth`` (pandas table, one row per particle), and
  ``refractive`` (δ, β per phase at the energy, with sources).
- :func:`refractive_indices` → the complex refractive index of air, glue and NMC at 29.6 keV.
- :func:`phantom_to_grey_8bit` → a realistic reconstructed-looking 8-bit volume (three grey phases,
  blur, noise at a chosen CNR) with its grey window, for segmentation work without the full chain.

Geometry convention: arrays are indexed ``(z, y, x)``; z is the rotation axis of the tomography.

Sizes. The paper's powder has a volume-weighted median equivalent diameter of 1.9 µm in a
64 × 64 × 24 µm volume. A 128³ test volume at 25 nm is only 3.2 µm wide, so by default the size
distribution is scaled: ``d50_volume_um = min(1.9, box_min_um / 5)``; at the paper's size the default
gives the paper's 1.9 µm. Voids are *not* scaled (50–300 nm at any box size), since their size is set
by the voxel size and the physics, not by the field of view.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

#: phase codes of :attr:`PowderPhantom.phase`
AIR, GLUE, NMC = 0, 1, 2
PHASE_NAMES = {AIR: "air", GLUE: "glue", NMC: "NMC"}

#: paper's volume-weighted median equivalent diameter of the powder (µm)
PAPER_D50_VOLUME_UM = 1.9

# Faceted crystal: cube faces plus truncating octahedron faces (a truncated-octahedron-like habit,
# as NMC single crystals show), rounded by a finite p-norm over the face distances.
_CUBE = np.eye(3)
_OCTA = np.array([[sx, sy, sz] for sx in (1, -1) for sy in (1, -1) for sz in (1, -1)]) / np.sqrt(3.0)
_NORMALS = np.vstack([_CUBE, -_CUBE, _OCTA])


@dataclass
class PowderPhantom:
    """A labelled NMC powder volume with exact truth (arrays indexed ``(z, y, x)``).

    Attributes
    ----------
    labels : int32 array, particle id (1..N) on solid NMC voxels, 0 elsewhere (voids are 0).
    phase : uint8 array, 0 air (pores and internal voids), 1 glue, 2 NMC.
    void_mask : bool array, internal voids (fully enclosed in a particle).
    void_owner : int32 array, label of the particle enclosing each void voxel, 0 elsewhere.
    truth : pandas.DataFrame, one row per particle (see :func:`make_powder_phantom`).
    voxel_size_um : voxel edge (µm).
    refractive : pandas.DataFrame, δ and β per phase (index ``air``, ``glue``, ``NMC``).
    params : the generation parameters (seed-independent description).
    """

    labels: np.ndarray
    phase: np.ndarray
    void_mask: np.ndarray
    void_owner: np.ndarray
    truth: pd.DataFrame
    voxel_size_um: float
    refractive: pd.DataFrame
    params: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.labels.shape)

    def filled_labels(self) -> np.ndarray:
        """Particle labels with the internal voids filled by their owner (int32)."""
        return np.where(self.void_mask, self.void_owner, self.labels).astype(np.int32)

    def delta_volume(self) -> np.ndarray:
        """Refractive-index decrement δ per voxel (float32)."""
        lut = np.array([self.refractive.loc[PHASE_NAMES[p], "delta"] for p in (AIR, GLUE, NMC)])
        return lut[self.phase].astype(np.float32)

    def beta_volume(self) -> np.ndarray:
        """Absorption index β per voxel (float32)."""
        lut = np.array([self.refractive.loc[PHASE_NAMES[p], "beta"] for p in (AIR, GLUE, NMC)])
        return lut[self.phase].astype(np.float32)

    def volume_fractions(self) -> dict[str, float]:
        """Fraction of the volume in each phase."""
        counts = np.bincount(self.phase.ravel(), minlength=3) / self.phase.size
        return {PHASE_NAMES[p]: float(counts[p]) for p in (AIR, GLUE, NMC)}


@functools.lru_cache(maxsize=8)
def refractive_indices(energy_kev: float = 29.6, delta_beta_nmc: float = 87.0) -> pd.DataFrame:
    """Complex refractive index n = 1 − δ + iβ of air, glue and NMC at ``energy_kev``.

    NMC-622 (LiNi₀.₆Mn₀.₂Co₀.₂O₂, ρ = 4.7 g cm⁻³) and the glue (PVDF (C₂H₂F₂)ₙ : carbon black = 1 : 1 by
    mass, ρ = 1.78 g cm⁻³) are computed with xrayutilities (Henke/Chantler atomic form factors). For
    NMC the phantom uses β = δ / ``delta_beta_nmc`` (default the paper's 87), so that the paper's
    Paganin retrieval is exact for the crystals; xrayutilities' own β (δ/β ≈ 120 at 29.6 keV) is
    reported in the ``beta_tabulated`` column. Air is taken as vacuum (δ_air ≈ 3e-10 is negligible).
    """
    import xrayutilities as xu

    el = xu.materials.elements
    energy_ev = energy_kev * 1e3
    nmc = xu.materials.Amorphous(
        "NMC622", 4700.0, atoms=[(el.Li, 1), (el.Ni, 0.6), (el.Mn, 0.2), (el.Co, 0.2), (el.O, 2)]
    )
    # 1:1 by mass PVDF (64.03 g/mol per C2H2F2) and carbon (12.011 g/mol): moles per 100 g
    n_pvdf, n_c = 50.0 / 64.035, 50.0 / 12.011
    glue = xu.materials.Amorphous(
        "glue", 1780.0, atoms=[(el.C, 2 * n_pvdf + n_c), (el.H, 2 * n_pvdf), (el.F, 2 * n_pvdf)]
    )
    d_nmc, b_nmc_tab = float(nmc.delta(energy_ev)), float(nmc.ibeta(energy_ev))
    d_glue, b_glue = float(glue.delta(energy_ev)), float(glue.ibeta(energy_ev))
    rows = {
        "air": (0.0, 0.0, 0.0, "vacuum (δ_air ≈ 3e-10 neglected)"),
        "glue": (d_glue, b_glue, b_glue, "xrayutilities: PVDF:carbon black 1:1 by mass, 1.78 g/cm³"),
        "NMC": (
            d_nmc,
            d_nmc / delta_beta_nmc,
            b_nmc_tab,
            f"xrayutilities: LiNi0.6Mn0.2Co0.2O2, 4.7 g/cm³; β = δ/{delta_beta_nmc:g} (paper's δ/β)",
        ),
    }
    columns = ["delta", "beta", "beta_tabulated", "source"]
    table = pd.DataFrame.from_dict(rows, orient="index", columns=columns)
    table.attrs["energy_kev"] = energy_kev
    return table


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    """Uniform random rotation matrix (from a normalised Gaussian quaternion)."""
    q = rng.normal(size=4)
    w, x, y, z = q / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _crystal_inside(points_local: np.ndarray, truncation: float, roundness_p: float) -> np.ndarray:
    """Inside test of a rounded truncated-octahedron habit in unit-scaled local coordinates.

    ``points_local`` is (..., 3) already divided by the semi-axes; a point is inside when the p-norm of
    the positive face distances (cube faces at 1, octahedron faces at ``truncation``) is ≤ 1.
    """
    heights = np.concatenate([np.ones(6), np.full(8, truncation)]).astype(np.float32)
    normals = (_NORMALS / heights[:, None]).astype(np.float32)
    total = np.zeros(points_local.shape[:-1], dtype=np.float32)
    p_int = int(roundness_p)
    for n in normals:
        proj = points_local @ n
        np.maximum(proj, 0.0, out=proj)
        term = proj.copy()
        for _ in range(p_int - 1):  # integer power by repeated multiplication (much faster than **)
            term *= proj
        total += term
    return total <= 1.0


@functools.lru_cache(maxsize=64)
def _habit_volume_factor(truncation: float, roundness_p: float) -> float:
    """Volume of the unit habit (semi-axes 1) by counting on a fine grid (cached)."""
    n = 64
    g = (np.arange(n) + 0.5) / n * 2.0 - 1.0
    pts = np.stack(np.meshgrid(g, g, g, indexing="ij"), axis=-1)
    return float(_crystal_inside(pts, truncation, roundness_p).mean() * 8.0)


def _grain_mask(
    center_vox: np.ndarray,
    semi_axes_vox: np.ndarray,
    rotation: np.ndarray,
    truncation: float,
    roundness_p: float,
    origin: np.ndarray,
    shape: tuple[int, int, int],
) -> np.ndarray:
    """Boolean mask of one grain on the box ``origin + [0, shape)`` (voxel centres at integers)."""
    axes = [np.arange(origin[i], origin[i] + shape[i], dtype=np.float64) - center_vox[i] for i in range(3)]
    zz, yy, xx = np.meshgrid(*axes, indexing="ij", sparse=True)
    # world → local: local = R^T · world, then scale by semi-axes
    r = rotation
    local = np.empty(shape + (3,), dtype=np.float32)
    for k in range(3):
        local[..., k] = (r[0, k] * zz + r[1, k] * yy + r[2, k] * xx) / semi_axes_vox[k]
    return _crystal_inside(local, truncation, roundness_p)


def _grains_hit_points(grains, center_vox, points_vox: np.ndarray) -> bool:
    """Whether any of ``points_vox`` (N, 3) lies inside any grain (fast sparse overlap test)."""
    if len(points_vox) == 0:
        return False
    for offset, semi, rot, trunc, p in grains:
        local = ((points_vox - (center_vox + offset)) @ rot / semi).astype(np.float32)
        if _crystal_inside(local, trunc, p).any():
            return True
    return False


def _draw_particle(rng, d_target_vox, aggregate, elong_yx, elong_zy):
    """Grains (centre offset, semi-axes, rotation, truncation, p) of one particle, plus its radius."""
    grains = []
    n_grains = int(rng.integers(2, 4)) if aggregate else 1
    for g in range(n_grains):
        d = d_target_vox * (1.0 if g == 0 else rng.uniform(0.5, 0.85))
        if aggregate:
            d *= n_grains ** (-1.0 / 3.0) * 1.15
        e_yx = float(np.clip(rng.normal(elong_yx, 0.10), 0.45, 1.0))
        e_zy = float(np.clip(rng.normal(elong_zy, 0.12), 0.35, 1.0))
        # habit parameters on a coarse grid so the cached volume factor is computed only a few times
        truncation = float(rng.choice([0.80, 0.85, 0.90, 0.95]))
        p = float(rng.choice([5.0, 6.0, 7.0, 8.0]))
        k = _habit_volume_factor(truncation, p)
        # a · (e_yx a) · (e_yx e_zy a) · k = π d³ / 6
        a = (np.pi * d**3 / 6.0 / (k * e_yx * e_yx * e_zy)) ** (1.0 / 3.0)
        semi = np.array([a, a * e_yx, a * e_yx * e_zy])
        rot = _random_rotation(rng)
        if g == 0:
            offset = np.zeros(3)
        else:
            # welded: the new grain's centre sits ~0.8 of the summed radii away from the main grain
            direction = rng.normal(size=3)
            direction /= np.linalg.norm(direction)
            offset = direction * 0.8 * (grains[0][1][0] * 0.8 + semi[0] * 0.6)
        grains.append((offset, semi, rot, truncation, p))
    radius = max(np.linalg.norm(o) + s[0] for o, s, *_ in grains)
    return grains, radius


def _carve_voids(rng, filled, voxel_size_um, void_diam_um, target_fraction, max_tries=400):
    """Clustered spherical voids inside ``filled`` (bbox crop); returns the void mask or None."""
    import edt

    dist = edt.edt(np.pad(filled, 1), parallel=1)[1:-1, 1:-1, 1:-1]
    n_filled = int(filled.sum())
    r_min = void_diam_um[0] / 2.0 / voxel_size_um
    r_max = min(void_diam_um[1] / 2.0 / voxel_size_um, 0.35 * dist.max())
    if r_max < r_min or dist.max() < r_min + 2.0:
        return None
    deep = np.argwhere(dist >= 0.6 * dist.max())
    cluster_center = deep[rng.integers(len(deep))].astype(float)
    spread = 0.45 * dist.max()
    voids = np.zeros_like(filled)
    grid = np.indices(filled.shape, sparse=True)
    for _ in range(max_tries):
        r = float(np.exp(rng.uniform(np.log(r_min), np.log(r_max))))
        c = np.round(cluster_center + rng.normal(scale=spread, size=3)).astype(int)
        if np.any(c < 0) or np.any(c >= filled.shape) or dist[tuple(c)] < r + 1.5:
            continue
        if voids[tuple(c)]:
            continue  # voids may touch or merge (clusters), but not be drawn inside one another
        r2 = sum((g - ci) ** 2 for g, ci in zip(grid, c, strict=True))
        voids |= r2 <= r * r
        if voids.sum() >= target_fraction * n_filled:
            return voids
    return None


def make_powder_phantom(
    shape_vox: tuple[int, int, int] = (128, 128, 128),
    voxel_size_um: float = 0.025,
    rng: np.random.Generator | int | None = 0,
    n_particles: int | None = None,
    d50_volume_um: float | None = None,
    size_sigma_ln: float = 0.5,
    nmc_fraction: float = 0.40,
    aggregate_fraction: float = 0.08,
    defective_fraction: float = 0.17,
    void_fraction_range: tuple[float, float] = (0.10, 0.25),
    void_diameter_um: tuple[float, float] = (0.05, 0.30),
    elongation_yx: float = 0.80,
    elongation_zy: float = 0.70,
    glue_fraction: float = 0.55,
    energy_kev: float = 29.6,
    max_attempts_per_particle: int = 40,
) -> PowderPhantom:
    """Make a labelled NMC powder in glue and air, with exact truth.

    Parameters
    ----------
    shape_vox : volume shape (z, y, x) in voxels; z is the tomographic rotation axis.
    voxel_size_um : voxel edge (µm); the paper's 25 nm by default.
    rng : numpy Generator or seed (the phantom is a deterministic function of it).
    n_particles : number of particles to draw; ``None`` draws until ``nmc_fraction`` of the volume.
    d50_volume_um : volume-weighted median equivalent diameter (µm) of the drawn sizes; ``None`` gives
        ``min(1.9, box_min_um / 5)`` (the paper's 1.9 µm at full size, scaled down in small boxes).
    size_sigma_ln : σ of ln(d) of the log-normal size law.
    nmc_fraction : target NMC volume fraction when ``n_particles`` is None (placement is rejection
        sampling, non-overlapping, fully inside the box; the reached fraction is in ``params``).
    aggregate_fraction : share of particles that are 2–3 welded grains (``is_aggregate``).
    defective_fraction : share of particles with a cluster of internal voids (``has_voids``); only
        particles large enough to hold ≥ ``void_fraction_range[0]`` of 50–300 nm voids are chosen.
    void_fraction_range : target void fraction range of defective particles (V_void / V_filled).
    void_diameter_um : void diameter range (µm), the paper's 50–300 nm.
    elongation_yx, elongation_zy : medians of the drawn axis ratios b/a and c/b (paper: 0.80, 0.70).
    glue_fraction : share of the non-NMC volume filled by glue (the rest is air pores).
    energy_kev : photon energy for the refractive indices.

    Returns
    -------
    PowderPhantom
        ``truth`` columns: ``label``, ``volume_um3`` (solid NMC), ``filled_volume_um3`` (voids filled),
        ``d_eq_um`` (equivalent diameter of the filled particle, (6V/π)^(1/3)), ``n_grains``,
        ``is_aggregate``, ``has_voids``, ``void_fraction`` (V_void/V_filled), ``n_voids`` (connected
        void components, 26-connectivity), ``void_volume_um3``, ``centroid_z/y/x_vox``, ``e_yx``,
        ``e_zx``, ``e_zy`` (from the inertia of the filled voxel mask), ``design_a_vox``,
        ``design_b_vox``, ``design_c_vox`` (the main grain's drawn semi-axes), ``touches_border``
        (always False: particles are placed fully inside).
    """
    import cc3d
    import edt
    from scipy import ndimage

    rng = np.random.default_rng(rng)
    shape = tuple(int(s) for s in shape_vox)
    if len(shape) != 3 or min(shape) < 16:
        raise ValueError(f"shape_vox must be three sizes ≥ 16 voxels, got {shape_vox}")
    if voxel_size_um <= 0:
        raise ValueError(f"voxel_size_um must be positive, got {voxel_size_um}")
    box_min_um = min(shape) * voxel_size_um
    if d50_volume_um is None:
        d50_volume_um = min(PAPER_D50_VOLUME_UM, box_min_um / 5.0)
    d50_vox = d50_volume_um / voxel_size_um
    # volume-weighted median of a log-normal = number median · exp(3σ²)
    d_number_median_vox = d50_vox * np.exp(-3.0 * size_sigma_ln**2)
    d_min_vox, d_max_vox = 6.0, 0.6 * min(shape)

    # sizes: draw until the NMC target (or n_particles), largest first for the placement
    sizes = []
    target_volume = nmc_fraction * np.prod(shape)
    total = 0.0

    def need_more() -> bool:
        return total < target_volume if n_particles is None else len(sizes) < n_particles

    while need_more():
        d = float(np.exp(rng.normal(np.log(d_number_median_vox), size_sigma_ln)))
        if not d_min_vox <= d <= d_max_vox:
            continue
        sizes.append(d)
        total += np.pi / 6.0 * d**3
        if len(sizes) > 100000:
            break
    sizes = np.sort(np.array(sizes))[::-1]

    labels = np.zeros(shape, dtype=np.int32)
    void_owner = np.zeros(shape, dtype=np.int32)
    rows = []
    shape_arr = np.array(shape)
    next_label = 1
    for d in sizes:
        aggregate = bool(rng.random() < aggregate_fraction)
        grains, radius = _draw_particle(rng, d, aggregate, elongation_yx, elongation_zy)
        half = int(np.ceil(radius)) + 1
        if 2 * half + 2 >= min(shape):
            continue
        for _ in range(max_attempts_per_particle):
            center = rng.uniform(half + 1, shape_arr - half - 1)
            core = max(1, int(0.35 * grains[0][1][2]))
            ci = np.round(center).astype(int)
            if labels[tuple(slice(c - core, c + core + 1) for c in ci)].any():
                continue
            lo = np.floor(center).astype(int) - half
            hi = lo + 2 * half + 1
            crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
            box_shape = tuple(int(b - a) for a, b in zip(lo, hi, strict=True))
            existing = labels[crop]
            occupied = np.argwhere((existing != 0) | (void_owner[crop] != 0)) + lo
            if _grains_hit_points(grains, center, occupied.astype(np.float64)):
                continue
            mask = np.zeros(box_shape, dtype=bool)
            for offset, semi, rot, trunc, p in grains:
                mask |= _grain_mask(center + offset, semi, rot, trunc, p, lo, box_shape)
            if not mask.any():
                break
            if np.any(existing[mask] != 0) or np.any(void_owner[crop][mask] != 0):
                continue
            # keep only the largest 6-connected component (welded grains are connected by design)
            comp = cc3d.connected_components(mask, connectivity=6)
            if comp.max() > 1:
                mask = comp == np.argmax(np.bincount(comp.ravel())[1:]) + 1
            existing[mask] = next_label
            rows.append(
                {
                    "label": next_label,
                    "n_grains": len(grains),
                    "is_aggregate": aggregate,
                    "bbox_lo": lo,
                    "design_semi_axes_vox": grains[0][1],
                }
            )
            next_label += 1
            break

    # defective particles: clustered internal voids
    n_total = len(rows)
    n_defective = int(round(defective_fraction * n_total))
    # candidates: particles of d ≥ 12 voxels (smaller ones cannot hold ≥ 10 % of 50-300 nm voids)
    objects = ndimage.find_objects(labels)
    n_vox = np.bincount(labels.ravel(), minlength=n_total + 1)[1:]
    candidates = np.flatnonzero(n_vox >= np.pi / 6.0 * 12.0**3)
    order = rng.permutation(candidates)
    defective = set()
    for idx in order:
        if len(defective) >= n_defective:
            break
        lab = rows[idx]["label"]
        sl = objects[lab - 1]
        if sl is None:
            continue
        filled = labels[sl] == lab
        target = float(rng.uniform(*void_fraction_range))
        voids = _carve_voids(rng, filled, voxel_size_um, void_diameter_um, target)
        if voids is None:
            continue
        labels[sl][voids] = 0
        void_owner[sl][voids] = lab
        defective.add(lab)

    void_mask = void_owner > 0

    # glue: a smooth random field, biased towards the particle surfaces (binder wets the crystals)
    solid_or_void = (labels > 0) | void_mask
    dist_out = edt.edt(~solid_or_void, parallel=1).astype(np.float32)
    field_ = ndimage.gaussian_filter(rng.standard_normal(shape).astype(np.float32), sigma=3.0)
    field_ /= field_.std() + 1e-12
    score = field_ - dist_out / max(2.0, 0.15 * d50_vox)
    free = ~solid_or_void
    phase = np.zeros(shape, dtype=np.uint8)
    if free.any() and glue_fraction > 0:
        thr = np.quantile(score[free], 1.0 - glue_fraction)
        phase[free & (score > thr)] = GLUE
    phase[labels > 0] = NMC

    # per-particle truth from the voxels
    vox_um3 = voxel_size_um**3
    filled_labels = np.where(void_mask, void_owner, labels)
    objects = ndimage.find_objects(filled_labels)
    table = []
    for row in rows:
        lab = row["label"]
        sl = objects[lab - 1]
        filled = filled_labels[sl] == lab
        voids = void_mask[sl] & filled
        n_filled, n_void = int(filled.sum()), int(voids.sum())
        n_voids = int(cc3d.connected_components(voids, connectivity=26).max()) if n_void else 0
        coords = np.argwhere(filled).astype(np.float64)
        centroid = coords.mean(axis=0)
        cov = np.cov((coords - centroid).T) if len(coords) > 3 else np.eye(3)
        lam = np.sort(np.clip(np.linalg.eigvalsh(cov), 1e-12, None))[::-1]
        a, b, c = np.sqrt(5.0 * lam)
        centroid = centroid + np.array([s.start for s in sl])
        touches = any(s.start == 0 or s.stop == n for s, n in zip(sl, shape, strict=True))
        table.append(
            {
                "label": lab,
                "volume_um3": (n_filled - n_void) * vox_um3,
                "filled_volume_um3": n_filled * vox_um3,
                "d_eq_um": (6.0 * n_filled * vox_um3 / np.pi) ** (1.0 / 3.0),
                "n_grains": row["n_grains"],
                "is_aggregate": row["is_aggregate"],
                "has_voids": lab in defective,
                "void_fraction": n_void / n_filled,
                "n_voids": n_voids,
                "void_volume_um3": n_void * vox_um3,
                "centroid_z_vox": centroid[0],
                "centroid_y_vox": centroid[1],
                "centroid_x_vox": centroid[2],
                "e_yx": b / a,
                "e_zx": c / a,
                "e_zy": c / b,
                # the main grain's drawn semi-axes (shape parameters, voxels): truth that owes nothing
                # to a voxel estimator (e_yx = b/a, e_zy = c/b of the habit as drawn)
                "design_a_vox": row["design_semi_axes_vox"][0],
                "design_b_vox": row["design_semi_axes_vox"][1],
                "design_c_vox": row["design_semi_axes_vox"][2],
                "touches_border": touches,
            }
        )
    truth = pd.DataFrame(table)
    params = {
        "shape_vox": shape,
        "voxel_size_um": voxel_size_um,
        "d50_volume_um_target": d50_volume_um,
        "size_sigma_ln": size_sigma_ln,
        "nmc_fraction_target": nmc_fraction,
        "nmc_fraction_reached": float((phase == NMC).mean()),
        "aggregate_fraction": aggregate_fraction,
        "defective_fraction": defective_fraction,
        "void_fraction_range": void_fraction_range,
        "void_diameter_um": void_diameter_um,
        "glue_fraction": glue_fraction,
        "energy_kev": energy_kev,
    }
    return PowderPhantom(
        labels=labels,
        phase=phase,
        void_mask=void_mask,
        void_owner=void_owner.astype(np.int32),
        truth=truth,
        voxel_size_um=voxel_size_um,
        refractive=refractive_indices(energy_kev),
        params=params,
    )


def volume_weighted_median_um(d_eq_um: np.ndarray) -> float:
    """Volume-weighted median of equivalent diameters: half the volume lies in smaller particles."""
    d = np.sort(np.asarray(d_eq_um, dtype=float))
    if d.size == 0:
        raise ValueError("no particle diameters given")
    cum = np.cumsum(d**3)
    return float(d[np.searchsorted(cum, 0.5 * cum[-1])])


@dataclass
class SyntheticGrey:
    """A reconstructed-looking grey volume made directly from a phantom.

    ``volume_8bit`` (uint8) maps back to the 32-bit grey scale with
    ``grey32 = window[0] + volume_8bit / 255 · (window[1] − window[0])``; ``phase_means_32``,
    ``noise_sigma_32`` are in those 32-bit units (the paper's scale: air 4255, NMC 5737).
    """

    volume_8bit: np.ndarray
    window: tuple[float, float]
    phase_means_32: dict[str, float]
    noise_sigma_32: float
    cnr: float
    blur_sigma_vox: float

    def to_grey32(self) -> np.ndarray:
        lo, hi = self.window
        return (lo + self.volume_8bit.astype(np.float32) / 255.0 * (hi - lo)).astype(np.float32)


def phantom_to_grey_8bit(
    phantom: PowderPhantom,
    rng: np.random.Generator | int | None = 0,
    cnr: float = 2.3,
    blur_sigma_vox: float = 1.0,
    noise_correlation_vox: float = 0.7,
    mean_air: float = 4255.0,
    mean_nmc: float = 5737.0,
    window_sigmas: float = 4.0,
) -> SyntheticGrey:
    """A phase-contrast-looking 8-bit volume of the phantom: three grey phases, blur, noise.

    Grey is linear in δ (a Paganin-retrieved reconstruction is), scaled to the paper's 32-bit levels
    (air 4255, NMC 5737; glue falls in between by its δ), blurred by a Gaussian point-spread function
    (``blur_sigma_vox``), plus Gaussian noise smoothed over ``noise_correlation_vox`` (reconstruction
    noise is correlated between neighbouring voxels) and scaled so that
    CNR = (m_NMC − m_air)/σ_air equals ``cnr`` (the paper's 2.3 by default). The 32 → 8-bit window is
    [m_air − k σ, m_NMC + k σ] with k = ``window_sigmas`` and is returned, so grey values map back.
    """
    from scipy import ndimage

    rng = np.random.default_rng(rng)
    if cnr <= 0:
        raise ValueError(f"cnr must be positive, got {cnr}")
    delta = phantom.delta_volume()
    d_nmc = float(phantom.refractive.loc["NMC", "delta"])
    grey = mean_air + (mean_nmc - mean_air) * delta / d_nmc
    if blur_sigma_vox > 0:
        grey = ndimage.gaussian_filter(grey, blur_sigma_vox)
    sigma = (mean_nmc - mean_air) / cnr
    noise = rng.standard_normal(grey.shape).astype(np.float32)
    if noise_correlation_vox > 0:
        noise = ndimage.gaussian_filter(noise, noise_correlation_vox)
    noise *= sigma / noise.std()
    grey = grey + noise
    lo, hi = mean_air - window_sigmas * sigma, mean_nmc + window_sigmas * sigma
    v8 = np.clip(np.round((grey - lo) / (hi - lo) * 255.0), 0, 255).astype(np.uint8)
    d_glue = float(phantom.refractive.loc["glue", "delta"])
    means = {"air": mean_air, "glue": mean_air + (mean_nmc - mean_air) * d_glue / d_nmc, "NMC": mean_nmc}
    return SyntheticGrey(v8, (float(lo), float(hi)), means, float(sigma), float(cnr), float(blur_sigma_vox))
