"""The paper's 8-particle SXDM ensemble (Fig. 3, S3–S6), built from the forward model's primitives.

Design targets (paper, Fig. 3 and SI): sizes and bendings whose straight-line fit gives R ≈ 269 µm
with realistic scatter; particle 3 ≈ 4.3 µm across with 0.51° total tilt (→ 483 µm on its own);
#3 and #8 fused aggregates of grains with similar orientation; #8 two domains (slightly different tilt
and d) plus small neighbouring crystallites in the same scan; #4's peak runs off the detector (its
bending turns Q along the Debye ring, out of the detector ROI); #1 the only striped one; #2 and #7
nearly featureless; #6 complex (shell + stronger mosaicity).

Particle 1 is the crystal of Fig. 1–2, built by :func:`helpers.synthetic.sxdm_model.fig1_particle`
(one model for notebooks 01–03: 0.8° total curvature across 3.2 µm, R = 229 µm) and scanned, as in the
paper, with the 140 nm beam. The other radii were chosen so that the through-origin fit of Δφ = L/R
over particles 1–3, 5–8 at their design sizes gives R = 270 ± 48 µm (slope standard error) — the
paper's 269 ± 52 µm.

Every bending axis lies within 10° of the sample y axis (the tilt then turns mostly along the rocking
direction, which the eta scan follows, as on ID01: east–west in the pole figure) except #1 and #4,
bent about x. #1 is the SI's one exception to east–west (the SI names no direction; north–south is the
model's reading); its detector ROI
is widened along the Debye ring to hold the peak. #4's Q sweeps along the Debye ring out of its ROI.

Two ways to reduced maps (:func:`ensemble_maps`):

- ``method="truth"``: the forward model's exact footprint-weighted mean Q per scan point plus
  Gaussian counting noise on Q scaled from the instrument peak width and the integrated counts, and
  Poisson noise on the intensity; the reducer's ``truncated_detector``/``truncated_rocking`` flags are
  set where the true peak centre lies within 3 spot σ of the ROI/eta-range edge. Fast (a few s for all
  eight): what notebooks 03–04 use by default.
- ``method="frames"``: simulated detector frames, reduced by :func:`helpers.sxdm.reduce.reduce`
  (slower; available when the reduction module is installed).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from helpers.synthetic import sxdm_model as sm

ENSEMBLE_VERSION = "3"


@dataclass(frozen=True)
class ParticleSpec:
    """Design of one ensemble particle (truth for size and radius of curvature)."""

    number: int
    kind: str  # plain | striped | aggregate | off_detector | complex | domains
    size_um: float  # extent along the bending gradient (⟂ the bending axis)
    width_um: float  # extent along the bending axis
    radius_um: float  # bending radius of curvature
    axis_angle_deg: float  # bending axis in the sample plane, from +x
    thickness_um: float
    description: str

    @property
    def total_curvature_deg(self) -> float:
        """Design total tilt Δφ = L/R across the particle (deg)."""
        return float(np.degrees(self.size_um / self.radius_um))


SPECS: tuple[ParticleSpec, ...] = (
    ParticleSpec(
        1,
        "striped",
        sm.FIG1_DESIGN["size_um"],
        sm.FIG1_DESIGN["width_um"],
        round(sm.FIG1_DESIGN["bending_radius_um"], 1),
        sm.FIG1_DESIGN["bending_axis_angle_deg"],
        sm.FIG1_DESIGN["thickness_um"],
        "the Fig. 1-2 crystal: striped, bent 0.8 deg about x (tilt north-south), 140 nm beam",
    ),
    ParticleSpec(2, "plain", 2.0, 1.6, 410.0, 85.0, 0.8, "nearly featureless"),
    ParticleSpec(3, "aggregate", 4.3, 2.6, 483.0, 95.0, 1.1, "fused aggregate of two similar grains"),
    ParticleSpec(4, "off_detector", 2.6, 2.0, 260.0, 0.0, 1.0, "bent about x: peak runs off the detector"),
    ParticleSpec(5, "plain", 2.8, 2.2, 140.0, 88.0, 0.9, "strongly bent"),
    ParticleSpec(6, "complex", 3.4, 2.4, 210.0, 97.0, 1.0, "shell with shorter c, mosaic"),
    ParticleSpec(7, "plain", 1.6, 1.3, 470.0, 90.0, 0.7, "nearly featureless, small"),
    ParticleSpec(8, "domains", 3.6, 2.4, 310.0, 83.0, 1.0, "two domains + small neighbouring crystallites"),
)

#: tilt (ω_x, ω_y) in deg and relative d offset of the second domain of #8 (first: 0, 0, 0)
DOMAIN8_OFFSET = (0.03, 0.18, 6e-4)


def spec(number: int) -> ParticleSpec:
    """The spec of particle ``number`` (1–8)."""
    for s in SPECS:
        if s.number == number:
            return s
    raise KeyError(f"no ensemble particle {number}; the ensemble has particles 1–{len(SPECS)}")


def build_particle(s: ParticleSpec, rng: np.random.Generator, fine_step_um: float = 0.04) -> sm.ParticleModel:
    """The fine-grid :class:`~helpers.synthetic.sxdm_model.ParticleModel` of one spec.

    The particle is centred in a field of view with a 0.5 µm margin (1.2 µm for #8's neighbours); its
    first semi-axis lies along the bending gradient so that its extent there is ``s.size_um``.
    """
    if s.kind == "striped":
        model = sm.fig1_particle(rng, step_um=fine_step_um)
        model.name = f"ensemble_particle_{s.number}"
        model.design = {**asdict(s), "total_curvature_deg": s.total_curvature_deg}
        return model
    margin = 1.2 if s.kind == "domains" else 0.5
    grad = s.axis_angle_deg - 90.0
    g = np.radians(grad)
    ext_x = abs(s.size_um * np.cos(g)) + abs(s.width_um * np.sin(g)) + 2 * margin
    ext_y = abs(s.size_um * np.sin(g)) + abs(s.width_um * np.cos(g)) + 2 * margin
    model = sm.blank_particle((ext_x, ext_y), step_um=fine_step_um, name=f"ensemble_particle_{s.number}")
    cx, cy = ext_x / 2, ext_y / 2
    along = np.array([np.cos(g), np.sin(g)])
    half_l, half_w = s.size_um / 2, s.width_um / 2
    if s.kind in ("aggregate", "domains"):
        # grain 1 spans [-0.5 L, 0.1 L], grain 2 [-0.05 L, 0.5 L] along the gradient: total extent L
        c1 = np.array([cx, cy]) - 0.2 * s.size_um * along
        c2 = np.array([cx, cy]) + 0.225 * s.size_um * along
        sm.add_grain(
            model, c1, (0.6 * half_l, half_w), s.thickness_um, angle_deg=grad, exponent=2.5, grain_id=1
        )
        if s.kind == "aggregate":
            tilt2, d2 = (0.02, 0.0), sm.D003_A * (1 + 2e-4)
        else:
            tilt2, d2 = DOMAIN8_OFFSET[:2], sm.D003_A * (1 + DOMAIN8_OFFSET[2])
        sm.add_grain(
            model,
            c2,
            (0.55 * half_l, 0.85 * half_w),
            s.thickness_um,
            d_spacing_A=d2,
            tilt_deg=tilt2,
            angle_deg=grad,
            exponent=2.5,
            grain_id=2,
        )
    else:
        sm.add_grain(
            model, (cx, cy), (half_l, half_w), s.thickness_um, angle_deg=grad, exponent=3.0, grain_id=1
        )
    if s.kind == "striped":
        sm.add_stripes(model, 0.44, 5.4e-4, intensity_amplitude=0.15, normal_angle_deg=s.axis_angle_deg)
    if s.kind == "complex":
        sm.add_shell(model, 0.15, -4e-4)
    sm.add_bending(model, s.radius_um, axis_angle_deg=s.axis_angle_deg, center_um=(cx, cy), grain_ids=[1, 2])
    rms = 0.01 if s.kind == "complex" else 0.003
    sm.add_mosaicity(model, rng, rms_tilt_deg=rms, correlation_um=0.4, local_spread_deg=0.01)
    if s.kind == "domains":
        sm.add_crystallites(
            model,
            rng,
            4,
            radius_um=(0.3, 0.45),
            tilt_rms_deg=0.3,
            d_rel_rms=8e-4,
            thickness_um=0.8,
            region_um=(0.4, ext_x - 0.4, 0.4, ext_y - 0.4),
        )
    model.design = {**asdict(s), "total_curvature_deg": s.total_curvature_deg}
    return model


def scan_settings(
    s: ParticleSpec, model: sm.ParticleModel, scan_step_um: float = 0.1, n_eta: int | None = None
):
    """Scan settings covering the field of view at ``scan_step_um``; eta spans the particle's tilts.

    Beam FWHM 80 nm (paper, particles other than Fig. 1's) and a 64 × 64 px detector ROI; particle 1
    (Fig. 1's crystal) has the 140 nm beam and the bundled sample's ROI, widened along the Debye ring.
    """
    from helpers.synthetic.sxdm_samples import FIG1_ROI
    from helpers.synthetic.sxdm_scan import ScanSettings

    height, width = model.shape
    n_fast = int(np.floor(width * model.step_um / scan_step_um))
    n_slow = int(np.floor(height * model.step_um / scan_step_um))
    tilt_y = model.tilt_deg[1][model.support]
    half_range = float(np.max(np.abs(tilt_y))) + 0.12
    n_eta = n_eta or int(np.ceil(2 * half_range / 0.04)) + 1
    settings = ScanSettings(
        n_fast=n_fast,
        n_slow=n_slow,
        start_um=(model.origin_um[0] + scan_step_um / 2, model.origin_um[1] + scan_step_um / 2),
        step_um=(scan_step_um, scan_step_um),
        beam_fwhm_um=(sm.FIG1_DESIGN["beam_fwhm_um"],) * 2 if s.kind == "striped" else (0.08, 0.08),
        roi=FIG1_ROI if s.kind == "striped" else ScanSettings.roi,
        sigma_eta_deg=0.02,
    ).resolved()
    theta = settings.eta_deg.mean()
    settings.eta_deg = theta + np.linspace(-half_range, half_range, n_eta)
    return settings


def domain_truth(model: sm.ParticleModel, x_um: np.ndarray, y_um: np.ndarray, beam_fwhm_um: float = 0.08):
    """Truth domain label per scan point: the grain with the largest footprint-weighted share (0 = none)."""
    sigma_px = beam_fwhm_um / 2.3548 / model.step_um
    w = model.weight()
    ids = np.unique(model.grain_id[model.support])
    shares = np.stack([ndimage.gaussian_filter(w * (model.grain_id == g), sigma_px) for g in ids])
    xx, yy = np.meshgrid(x_um, y_um)
    rows = (yy - model.origin_um[1]) / model.step_um
    cols = (xx - model.origin_um[0]) / model.step_um
    sampled = np.stack([ndimage.map_coordinates(sh, [rows, cols], order=1) for sh in shares])
    labels = ids[np.argmax(sampled, axis=0)]
    total = sampled.sum(axis=0)
    labels[total < 0.05 * total.max()] = 0
    return labels


def maps_from_truth(sim, rng: np.random.Generator, mask_threshold: float = 0.2):
    """Reduced maps as a perfect centre-of-mass reducer would give them, from the forward-model truth.

    Q = exact footprint-weighted mean Q + N(0, σ²) per component with σ = σ_peak/√counts, σ_peak the
    instrument peak width in Q (rocking: |Q|·σ_eta; detector: one pixel's Δq × σ_px); intensity
    Poisson. Flags: ``truncated_detector`` where the true peak centre is within 3 spot σ of the ROI
    edge (or outside), ``truncated_rocking`` within 3 σ_eta of the eta range ends.
    """
    from helpers.sxdm.geometry import peak_frame_axes
    from helpers.sxdm.maps import FLAG_BITS, derive_maps

    s, t = sim.settings, sim.truth
    counts = rng.poisson(np.nan_to_num(t.intensity)).astype(float)
    q_len = 2 * np.pi / s.d_ref_A
    dq_px = q_len * s.pixel_size_m / s.distance_m / (2 * np.tan(np.radians(s.delta_deg / 2)))
    sigma_peak = np.array(
        [q_len * np.radians(s.sigma_eta_deg), dq_px * s.sigma_col_px, dq_px * s.sigma_row_px]
    )
    with np.errstate(divide="ignore"):
        scale = 1.0 / np.sqrt(np.maximum(counts, 1.0))
    frame_ref = peak_frame_axes(np.nanmean(t.mean_q.reshape(-1, 3), axis=0), s.phi_deg)
    sigma_q_sample = np.abs(frame_ref.T) @ sigma_peak  # per sample-frame component, conservative
    q_unc = scale[..., None] * sigma_q_sample
    q = t.mean_q + rng.standard_normal(t.mean_q.shape) * q_unc
    flags = np.zeros(counts.shape, np.uint16)
    r0, r1, c0, c1 = s.roi
    edge_r, edge_c = 3 * s.sigma_row_px, 3 * s.sigma_col_px
    off_det = (
        (t.peak_row_px < r0 + edge_r)
        | (t.peak_row_px > r1 - 1 - edge_r)
        | (t.peak_col_px < c0 + edge_c)
        | (t.peak_col_px > c1 - 1 - edge_c)
    )
    off_eta = (t.peak_eta_deg < s.eta_deg.min() + 3 * s.sigma_eta_deg) | (
        t.peak_eta_deg > s.eta_deg.max() - 3 * s.sigma_eta_deg
    )
    flags[off_det] |= FLAG_BITS["truncated_detector"]
    flags[off_eta] |= FLAG_BITS["truncated_rocking"]
    no_peak = ~np.isfinite(q[..., 0]) | (counts <= 0)
    flags[no_peak] |= FLAG_BITS["no_data"]
    q[no_peak] = np.nan
    sigma_q = np.broadcast_to(sigma_peak, q.shape).copy()
    x_um = t.x_um[0]
    y_um = t.y_um[:, 0]
    return derive_maps(
        counts,
        q,
        sigma_q,
        flags,
        q_unc,
        x_um,
        y_um,
        frame_ref[0],
        mask_threshold=mask_threshold,
        params={"method": "forward-model truth + counting noise", "ensemble_version": ENSEMBLE_VERSION},
    )


#: modules whose code shapes the cached frames and maps: editing one invalidates the cache
_CACHED_BY = (
    "helpers.synthetic.sxdm_model",
    "helpers.synthetic.sxdm_scan",
    "helpers.synthetic.sxdm_ensemble",
    "helpers.synthetic.sxdm_samples",
    "helpers.sxdm.geometry",
    "helpers.sxdm.io",
    "helpers.sxdm.peaks",
    "helpers.sxdm.reduce",
    "helpers.sxdm.frames",
    "helpers.sxdm.drift",
    "helpers.sxdm.maps",
)


def _code_digest() -> str:
    """sha256 of the source of :data:`_CACHED_BY`, so a changed model or reducer never reads stale maps."""
    import importlib.util

    digest = hashlib.sha256()
    for name in _CACHED_BY:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            digest.update(Path(spec.origin).read_bytes())
    return digest.hexdigest()


def _cache_root(cache: Path | None) -> Path:
    """The user's cache folder (``helpers.paths.cache_dir()``: ``NMC_CACHE_DIR`` or the checkout's
    ``.cache/``, never a shared temporary folder), or ``cache`` when given."""
    from helpers.paths import cache_dir

    root = Path(cache) if cache is not None else cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    return root


def _simulated_particle(number: int, method: str, scan_step_um: float, seed: int, code_digest: str,
                        work: Path):
    """(maps, provenance, truth) of one particle, simulated in ``work`` (cached by :func:`ensemble_maps`
    with ``joblib.Memory``; ``code_digest`` keys the cache to the model's and the reducer's code)."""
    import tempfile

    from helpers.sxdm.maps import read_maps, read_provenance

    with tempfile.TemporaryDirectory(dir=work, prefix="particle_") as folder:
        maps_path, truth_path = generate_particle(number, Path(folder), method, scan_step_um, seed)
        provenance = {k: v for k, v in read_provenance(maps_path).items()
                      if k not in ("format", "software", "created_utc", "complete", "input_sha256")}
        # the simulated scan is not kept: name the simulation, not a deleted file
        provenance["input_file"] = f"forward model, ensemble particle {number} ({method})"
        with np.load(truth_path) as data:
            truth = {k: data[k] for k in data.files}
        return read_maps(maps_path), provenance, truth


def generate_particle(
    number: int, folder: Path, method: str = "truth", scan_step_um: float = 0.1, seed: int = 2026
) -> tuple[Path, Path]:
    """Simulate particle ``number`` and write its reduced maps (``*_maps.h5``) and truth (``*_truth.npz``)."""
    from helpers.sxdm.maps import write_maps
    from helpers.synthetic.sxdm_scan import simulate_scan

    s = spec(number)
    rng = np.random.default_rng([seed, number])
    model = build_particle(s, rng)
    settings = scan_settings(s, model, scan_step_um)
    sim = simulate_scan(model, settings, rng)
    maps_path = folder / f"particle_{number}_maps.h5"
    if method == "truth":
        maps = maps_from_truth(sim, rng)
        write_maps(
            maps_path,
            maps,
            provenance={
                "input_file": f"forward model, ensemble particle {number}",
                "ensemble_version": ENSEMBLE_VERSION,
            },
        )
    elif method == "frames":
        from helpers.sxdm.reduce import reduce
        from helpers.synthetic.sxdm_scan import write_simulation

        raw = write_simulation(sim, folder / f"particle_{number}_scan.h5", external_frames=False)
        reduce(raw, out=maps_path, method="com", progress=False)
    else:
        raise ValueError(f"method must be 'truth' or 'frames', got {method!r}")
    truth_path = folder / f"particle_{number}_truth.npz"
    np.savez_compressed(
        truth_path,
        radius_um=s.radius_um,
        size_um=s.size_um,
        total_curvature_deg=s.total_curvature_deg,
        axis_angle_deg=s.axis_angle_deg,
        tilt_deg=sim.truth.tilt_deg,
        mean_d_A=sim.truth.mean_d_A,
        mean_q=sim.truth.mean_q,
        intensity=sim.truth.intensity,
        domains=domain_truth(model, sim.truth.x_um[0], sim.truth.y_um[:, 0]),
    )
    return maps_path, truth_path


def ensemble_maps(
    numbers=None,
    *,
    method: str = "truth",
    cache: Path | None = None,
    scan_step_um: float = 0.1,
    seed: int = 2026,
) -> dict:
    """Reduced maps and truth of the ensemble particles, simulated once (``joblib.Memory`` in the cache
    folder, keyed by the arguments and the code of :data:`_CACHED_BY`), each maps file rewritten into
    ``<cache>/sxdm_ensemble_<method>/`` for the command line.

    Returns ``{number: {"maps": SxdmMaps, "truth": dict, "spec": ParticleSpec, "path": Path}}``.
    """
    from joblib import Memory

    from helpers.sxdm.maps import write_maps

    numbers = [s.number for s in SPECS] if numbers is None else list(numbers)
    if method not in ("truth", "frames"):
        raise ValueError(f"method must be 'truth' or 'frames', got {method!r}")
    root = _cache_root(cache)
    simulate = Memory(root / "joblib", verbose=0).cache(_simulated_particle, ignore=["work"])
    files = root / f"sxdm_ensemble_{method}"  # the maps as files, for the command line
    files.mkdir(exist_ok=True)
    code = _code_digest()
    out = {}
    for n in numbers:
        maps, provenance, truth = simulate(n, method, float(scan_step_um), int(seed), code, work=root)
        path = write_maps(files / f"particle_{n}_step{scan_step_um:g}um_seed{seed}_maps.h5", maps, provenance)
        out[n] = {"maps": maps, "truth": truth, "spec": spec(n), "path": path}
    return out
