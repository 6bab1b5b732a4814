"""SXDM scan simulator: beam footprint, detector frames across the rocking curve, detector effects, truth.

Physics of one frame
--------------------
A scan point at piezo position p sees the crystal through a 2-D Gaussian footprint w(r − p) (FWHM
``beam_fwhm_um``). Each fine-grid cell c of a :class:`~helpers.synthetic.sxdm_model.ParticleModel`
scatters ``w · thickness · strength`` photons (scaled by ``counts_per_um`` and the monitor) into a
Gaussian spot centred where its local Q_c satisfies the Bragg condition: the rocking angle e_c and the
detector pixel (r_c, c_c) with ``q_at_detector_coordinates(e_c, r_c, c_c) = Q_c`` (found exactly by
Newton iteration on the ID01 geometry of :mod:`helpers.sxdm.geometry`). The spot has the instrument
widths ``sigma_eta_deg`` (rocking), ``sigma_row_px``/``sigma_col_px`` (detector), widened in eta and
along the Debye ring (columns) by the cell's mosaic spread. With ``convergence_sigma_rad`` = σ_α > 0 the
focused beam's incident directions (σ_α in and out of the scattering plane; the coherent limit of a
Gaussian focus of FWHM w is λ/(4π w/2.3548), 1.7·10⁻⁴ rad for 140 nm at 1.24 Å) are added: a ray
tilted by δ is recorded where Q_c + k·δ·(tilt direction, sample frame) lands, since the reconstruction
assumes the nominal incident direction, so each spot becomes a 3-D Gaussian in (eta, row, col) with
covariance diag(σ_eta², σ_row², σ_col²) + σ_α² (v_in v_inᵀ + v_out v_outᵀ), v = ∂(eta, row, col)/∂δ;
it is drawn as the eta profile times the detector spot given eta (its centre moving with eta; the
row–column correlation given eta is dropped). Pixel-integrated in rows/columns (erf),
point-sampled in eta (step scan). Split and asymmetric peaks arise by themselves where the footprint
covers grains or strong gradients.

Detector and beamline effects: Maxipix 2×2 chips (516 × 516 with the real gap: the chip-edge pixels
255 and 260 of each axis are triple-size and collect the counts of virtual pixels 255–257 and
258–260; 256–259 read zero and are masked), Poisson counting noise, flat background, hot and dead
pixels (masked), ion-chamber monitor with fluctuations and a slow decay (the counts follow it), sample
drift between eta maps (random walk; the piezo positions do not see it), piezo encoder jitter, and
any rocking range (a short one cuts the peak).

Truth (exact, on the nominal scan grid, no drift, footprint-weighted with weight
w·thickness·strength): integrated intensity, mean d, mean Q vector, mean tilt, d spread.

API
---
``ScanSettings`` (dataclass of all knobs), ``simulate_scan(particle, settings, rng) -> SxdmSimulation``
(frames generated line by line: ``SxdmSimulation.iter_lines()`` yields (slow index, frames uint32
(n_fast, n_eta, ny, nx)); ``frames()`` materialises all for small cases), ``ScanTruth``,
``write_simulation(sim, path, ...)`` (BLISS layout via :mod:`helpers.synthetic.bliss_writer`),
``maxipix_gap_mask(shape)``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

import numpy as np
from scipy.special import erf

from helpers.sxdm import geometry as geo
from helpers.synthetic.sxdm_model import D003_A, ParticleModel

FWHM_TO_SIGMA = 1.0 / (2.0 * np.sqrt(2.0 * np.log(2.0)))
MAXIPIX_SHAPE = (516, 516)
#: chip-edge pixels that are 3 pixels wide in the 516-px Maxipix 2x2 image, and the gap pixels
MAXIPIX_WIDE = (255, 260)
MAXIPIX_GAP = (256, 257, 258, 259)


def _single_threaded_blas():
    """Context limiting BLAS to one thread: the many tiny matrix products of a frame are 2-12x slower
    with a multi-threaded BLAS on a loaded machine (measured: sample 6 s vs 14-77 s on 2 shared cores)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional (comes with scikit-learn); without it only speed changes
        return contextlib.nullcontext()
    return threadpool_limits(1, user_api="blas")


def maxipix_gap_mask(shape=MAXIPIX_SHAPE) -> np.ndarray:
    """Boolean mask (True = no signal) of the Maxipix 2x2 gap rows and columns 256–259."""
    if tuple(shape) != MAXIPIX_SHAPE:
        raise ValueError(f"the Maxipix 2x2 gap layout needs a {MAXIPIX_SHAPE} detector, got {shape}")
    mask = np.zeros(shape, dtype=bool)
    mask[list(MAXIPIX_GAP), :] = True
    mask[:, list(MAXIPIX_GAP)] = True
    return mask


@dataclass
class ScanSettings:
    """Every knob of a simulated SXDM scan (units in the names)."""

    n_fast: int = 40
    n_slow: int = 40
    start_um: tuple[float, float] = (0.05, 0.05)
    step_um: tuple[float, float] = (0.1, 0.1)
    eta_deg: np.ndarray | None = None  # default: 30 steps around the Bragg angle, 0.025° apart
    beam_fwhm_um: tuple[float, float] = (0.14, 0.14)
    wavelength_m: float = 1.24e-10
    distance_m: float = 1.6
    pixel_size_m: float = 55e-6
    detector_shape: tuple[int, int] = MAXIPIX_SHAPE
    beam_center_px: tuple[float, float] = (310.4, 196.7)
    roi: tuple[int, int, int, int] | None = (278, 342, 164, 228)
    phi_deg: float = 0.0
    nu_deg: float = 0.0
    delta_deg: float | None = None  # default: 2θ of d_ref_A
    d_ref_A: float = D003_A
    sigma_eta_deg: float = 0.015
    sigma_row_px: float = 1.5
    sigma_col_px: float = 1.2
    convergence_sigma_rad: float = 0.0  # σ of the incident directions (in and out of plane); 0 = off
    counts_per_um: float = 3000.0  # integrated counts per µm thickness under the footprint centre
    background_per_px: float = 2e-4
    monitor_mean: float = 1.0e5
    monitor_rel_noise: float = 0.01
    monitor_decay_rel: float = 0.02  # relative beam decay from first to last eta map
    drift_um_per_eta: float = 0.004  # rms step of the random-walk drift between eta maps
    position_jitter_um: float = 0.002
    n_hot: int = 6
    n_dead: int = 12
    hot_rate: float = 50.0
    maxipix_gaps: bool = True
    footprint_cut_sigma: float = 3.5
    exposure_s: float = 0.01
    detector_name: str = "mpx1x4"

    def resolved(self) -> ScanSettings:
        """Copy with the defaults that depend on others filled in (eta range, delta)."""
        out = ScanSettings(**{f.name: getattr(self, f.name) for f in fields(self)})
        theta, two_theta = geo.detector_angles_for_d(self.d_ref_A, self.wavelength_m)
        if out.delta_deg is None:
            out.delta_deg = two_theta
        if out.eta_deg is None:
            out.eta_deg = theta + 0.025 * (np.arange(30) - 14.5)
        out.eta_deg = np.asarray(out.eta_deg, dtype=np.float64)
        if out.roi is None:
            out.roi = (0, self.detector_shape[0], 0, self.detector_shape[1])
        out.roi = tuple(int(v) for v in out.roi)
        geo.check_roi(out.roi, out.detector_shape)
        if out.n_fast < 1 or out.n_slow < 1 or out.eta_deg.size < 1:
            raise ValueError("n_fast, n_slow and the number of eta angles must be >= 1")
        return out

    @property
    def frame_shape(self) -> tuple[int, int]:
        r0, r1, c0, c1 = self.roi
        return r1 - r0, c1 - c0


@dataclass
class ScanTruth:
    """Exact footprint-weighted truth on the nominal scan grid (arrays (n_slow, n_fast) unless noted)."""

    x_um: np.ndarray
    y_um: np.ndarray
    intensity: np.ndarray  # expected integrated counts at nominal monitor
    mean_d_A: np.ndarray
    mean_q: np.ndarray  # (n_slow, n_fast, 3) 1/Å, sample frame
    tilt_deg: np.ndarray  # (2, n_slow, n_fast) footprint-weighted mean rotation vector (ω_x, ω_y)
    d_spread_A: np.ndarray
    drift_um: np.ndarray  # (n_eta, 2) sample drift (x, y) of each eta map
    peak_eta_deg: np.ndarray  # rocking angle where the mean Q is in Bragg condition
    peak_row_px: np.ndarray  # full-detector row of the mean Q
    peak_col_px: np.ndarray  # full-detector column of the mean Q

    @property
    def d_from_mean_q_A(self) -> np.ndarray:
        """2π/|mean Q| (Å), what a 3-D centre of mass of the peak measures."""
        return geo.d_from_q(self.mean_q)


@dataclass
class SxdmSimulation:
    """A simulated scan: settings, the particle, detector mask, monitor, positions, truth; frames lazily."""

    settings: ScanSettings
    particle: ParticleModel
    pixel_mask: np.ndarray  # (516, 516) full detector, True = bad
    monitor: np.ndarray  # (n_eta, n_points)
    x_um: np.ndarray  # (n_eta, n_points) measured piezo positions
    y_um: np.ndarray
    truth: ScanTruth
    seed_frames: int
    hot_pixels: tuple = field(default=(), repr=False)  # (rows, cols) in frame (ROI) coordinates: truth
    dead_pixels: tuple = field(default=(), repr=False)  # of the simulated bad pixels, as hot_pixels
    _cells: dict = field(default_factory=dict, repr=False)

    @property
    def n_points(self) -> int:
        return self.settings.n_fast * self.settings.n_slow

    def iter_lines(self, n_lines: int | None = None) -> Iterator[tuple[int, np.ndarray]]:
        """Yield (slow index, frames uint32 (n_fast, n_eta, ny, nx)) for each scan line (the first
        ``n_lines`` only, if given: they are identical to those of a full run).

        Memory: one line of uint32 frames (n_fast·n_eta·ny·nx·4 bytes) plus one point's float64 frames.
        """
        rng = np.random.default_rng(self.seed_frames)
        for j in range(self.settings.n_slow if n_lines is None else min(n_lines, self.settings.n_slow)):
            with _single_threaded_blas():
                line = self._line(j, rng)
            yield j, line

    def expected_frames(self, i_fast: int, j_slow: int, drift: bool = True) -> np.ndarray:
        """Noise-free expected counts (n_eta, ny, nx) at scan point (j_slow, i_fast), nominal monitor,
        no background or bad pixels; ``drift=False`` puts every eta map at the nominal position."""
        s = self.settings
        px, py = s.start_um[0] + i_fast * s.step_um[0], s.start_um[1] + j_slow * s.step_um[1]
        return self.expected_at(px, py, drift)

    def expected_at(self, px_um: float, py_um: float, drift: bool = True) -> np.ndarray:
        """Noise-free expected counts (n_eta, ny, nx) with the beam at piezo position (px_um, py_um)
        (µm, any position, not only scan points), nominal monitor, no background or bad pixels."""
        return self._expected_point(px_um, py_um, self._cells, drift)

    def frames(self) -> np.ndarray:
        """All frames, uint32 (n_slow, n_fast, n_eta, ny, nx); only for small cases."""
        return np.stack([lines for _, lines in self.iter_lines()])

    def _line(self, j: int, rng: np.random.Generator) -> np.ndarray:
        s = self.settings
        ny, nx = s.frame_shape
        n_eta = s.eta_deg.size
        cells = self._cells
        counts = np.empty((s.n_fast, n_eta, ny, nx), dtype=np.uint32)
        hot_r, hot_c = self.hot_pixels
        dead_r, dead_c = self.dead_pixels
        gap = self._gap_local
        for i in range(s.n_fast):
            point = j * s.n_fast + i
            px, py = s.start_um[0] + i * s.step_um[0], s.start_um[1] + j * s.step_um[1]
            scale = (self.monitor[:, point] / s.monitor_mean)[:, None, None]
            # background falls on every virtual pixel, so the wide chip-edge pixels collect 3x of it
            ext = self._expected_point(px, py, cells, merge=False) * scale + s.background_per_px
            expected = self._merge_gaps(ext)
            expected[:, hot_r, hot_c] += s.hot_rate
            # one point at a time (same draws, in the same order, as one call on the whole line)
            counts[i] = rng.poisson(expected)
        counts[..., dead_r, dead_c] = 0
        counts[..., gap] = 0
        return counts

    def _expected_point(
        self, px: float, py: float, cells: dict, drift: bool = True, merge: bool = True
    ) -> np.ndarray:
        """Expected counts (n_eta, ny, nx) at nominal monitor for piezo position (px, py)."""
        s = self.settings
        n_eta = s.eta_deg.size
        ny_ext, nx_ext = cells["g_row"].shape[1], cells["g_col"].shape[1]
        cx, cy = cells["x"], cells["y"]
        reach = cells["reach"]
        near = np.flatnonzero((np.abs(cx - px) < reach[0]) & (np.abs(cy - py) < reach[1]))
        out = np.zeros((n_eta, ny_ext, nx_ext))
        if near.size:
            sx, sy = cells["sigma_beam"]
            shift = self.truth.drift_um if drift else np.zeros_like(self.truth.drift_um)
            dx = cx[near][None, :] - px - shift[:, :1]
            dy = cy[near][None, :] - py - shift[:, 1:]
            foot = np.exp(-0.5 * ((dx / sx) ** 2 + (dy / sy) ** 2))  # (n_eta, n_near)
            amp = foot * cells["weight"][near][None, :] * cells["g_eta"][:, near]  # (n_eta, n_near)
            g_row, g_col = cells["g_row"][near], cells["g_col"][near]
            # a cell lights up only the few eta maps near its Bragg angle: skip the others (< 1e-12 of
            # the strongest contribution, far below one count)
            threshold = 1e-12 * amp.max()
            moving = "slope_row" in cells
            er0, ec0 = cells["ext_origin"]
            for e in range(n_eta):
                idx = np.flatnonzero(amp[e] > threshold)
                if not idx.size:
                    continue
                if moving:  # convergent beam: the spot's detector centre depends on the eta offset
                    cell = near[idx]
                    offset = s.eta_deg[e] - cells["eta_c"][cell]
                    rows = _pixel_gauss(cells["row_c"][cell] + cells["slope_row"][cell] * offset,
                                        cells["sigma_row"][cell], er0, ny_ext)
                    cols = _pixel_gauss(cells["col_c"][cell] + cells["slope_col"][cell] * offset,
                                        cells["sigma_col"][cell], ec0, nx_ext)
                    out[e] = (rows.T * amp[e, idx]) @ cols
                else:
                    out[e] = (g_row[idx].T * amp[e, idx]) @ g_col[idx]
        return self._merge_gaps(out) if merge else out

    def _merge_gaps(self, ext: np.ndarray) -> np.ndarray:
        """Extended virtual-pixel frames -> Maxipix pixels (wide chip-edge pixels), cropped to the ROI."""
        s = self.settings
        r0, r1, c0, c1 = s.roi
        er0, ec0 = self._cells["ext_origin"]
        if s.maxipix_gaps:
            for axis, start in ((1, er0), (2, ec0)):
                for wide, virtual in ((255, (256, 257)), (260, (258, 259))):
                    idx_w = wide - start
                    if 0 <= idx_w < ext.shape[axis]:
                        for v in virtual:
                            idx_v = v - start
                            if 0 <= idx_v < ext.shape[axis]:
                                sl_w = [slice(None)] * 3
                                sl_v = [slice(None)] * 3
                                sl_w[axis], sl_v[axis] = idx_w, idx_v
                                ext[tuple(sl_w)] += ext[tuple(sl_v)]
                                ext[tuple(sl_v)] = 0.0
        return ext[:, r0 - er0 : r1 - er0, c0 - ec0 : c1 - ec0]


def _bragg_coordinates(q: np.ndarray, s: ScanSettings, iterations: int = 4):
    """(eta_deg, row_px, col_px) where each Q (…, 3) is in Bragg condition on the detector (Newton)."""
    r0, r1, c0, c1 = s.roi
    args = (s.phi_deg, s.nu_deg, s.delta_deg, s.wavelength_m, s.distance_m, s.pixel_size_m, s.beam_center_px)
    x = np.array([s.eta_deg.mean(), 0.5 * (r0 + r1 - 1), 0.5 * (c0 + c1 - 1)])
    steps = np.array([1e-3, 0.5, 0.5])
    q0 = geo.q_at_detector_coordinates(*x, *args)
    jac = np.empty((3, 3))
    for k in range(3):
        xp = x.copy()
        xp[k] += steps[k]
        jac[:, k] = (geo.q_at_detector_coordinates(*xp, *args) - q0) / steps[k]
    coords = x + (q.reshape(-1, 3) - q0) @ np.linalg.inv(jac).T
    for _ in range(iterations):
        qc = geo.q_at_detector_coordinates(coords[:, 0], coords[:, 1], coords[:, 2], *args)
        coords += (q.reshape(-1, 3) - qc) @ np.linalg.inv(jac).T
    residual = np.abs(
        geo.q_at_detector_coordinates(coords[:, 0], coords[:, 1], coords[:, 2], *args) - q.reshape(-1, 3)
    )
    return coords.reshape(q.shape), float(residual.max()), jac


def _convergent_spot(s: ScanSettings, jac: np.ndarray, sigma_eta, sigma_row, sigma_col):
    """Spot widths with the incident-direction spread σ_α (see the module docstring).

    Returns the eta σ (deg), the row and column σ given eta (px) and the slopes (2, n_cells) of the
    row and column centres per degree of eta offset.
    """
    k = 2.0 * np.pi / (s.wavelength_m * 1e10)
    to_sample = geo.sample_rotation(float(np.mean(s.eta_deg)), s.phi_deg).T  # lab -> sample frame
    inv_jac = np.linalg.inv(jac)  # ∂(eta_deg, row, col)/∂Q
    # incident beam along +x (lab); tilts in the vertical scattering plane (z) and out of it (y)
    v_in = inv_jac @ (k * to_sample @ np.array([0.0, 0.0, 1.0]))
    v_out = inv_jac @ (k * to_sample @ np.array([0.0, 1.0, 0.0]))
    var_a = s.convergence_sigma_rad**2
    cov_ee = sigma_eta**2 + var_a * (v_in[0] ** 2 + v_out[0] ** 2)
    cov_re = var_a * (v_in[0] * v_in[1] + v_out[0] * v_out[1])
    cov_ce = var_a * (v_in[0] * v_in[2] + v_out[0] * v_out[2])
    cov_rr = sigma_row**2 + var_a * (v_in[1] ** 2 + v_out[1] ** 2)
    cov_cc = sigma_col**2 + var_a * (v_in[2] ** 2 + v_out[2] ** 2)
    slopes = np.array([cov_re / cov_ee, cov_ce / cov_ee])
    return (np.sqrt(cov_ee), np.sqrt(cov_rr - cov_re**2 / cov_ee), np.sqrt(cov_cc - cov_ce**2 / cov_ee),
            slopes)


def _pixel_gauss(centres: np.ndarray, sigmas: np.ndarray, edges_start: int, n: int) -> np.ndarray:
    """Pixel-integrated Gaussians: (n_cells, n) fraction of each spot falling in pixels start..start+n−1."""
    edges = edges_start - 0.5 + np.arange(n + 1)
    cdf = 0.5 * (1 + erf((edges[None, :] - centres[:, None]) / (np.sqrt(2) * sigmas[:, None])))
    return np.diff(cdf, axis=1)


def simulate_scan(
    particle: ParticleModel, settings: ScanSettings, rng: np.random.Generator
) -> SxdmSimulation:
    """Set up a simulated SXDM scan of ``particle``; frames are generated lazily (``iter_lines``).

    Random draws (in this order, so a seed fixes everything): drift, monitor, positions jitter, hot and
    dead pixels, then the seed of the frame noise.
    """
    s = settings.resolved()
    n_eta = s.eta_deg.size
    n_points = s.n_fast * s.n_slow
    sup = particle.support
    gx, gy = particle.coordinates()
    q_cells = particle.q_vectors()[sup]
    coords, residual, jac = _bragg_coordinates(q_cells, s)
    if residual > 1e-9:
        raise ValueError(f"geometry inversion did not converge (residual {residual:.2e} 1/Å)")
    # mosaic spread widens the spot along the rocking direction (eta) and the Debye ring (columns)
    q_norm = np.linalg.norm(q_cells, axis=1)
    mosaic_rad = np.radians(particle.mosaic_deg[sup])
    col_q_per_px = np.linalg.norm(jac[:, 2])
    sigma_eta = np.hypot(s.sigma_eta_deg, particle.mosaic_deg[sup])
    sigma_col = np.hypot(s.sigma_col_px, mosaic_rad * q_norm / col_q_per_px)
    sigma_row = np.full(q_cells.shape[0], float(s.sigma_row_px))
    slopes = None
    if s.convergence_sigma_rad > 0:
        sigma_eta, sigma_row, sigma_col, slopes = _convergent_spot(s, jac, sigma_eta, sigma_row, sigma_col)
    r0, r1, c0, c1 = s.roi
    er0, er1 = max(r0 - 3, 0), min(r1 + 3, s.detector_shape[0])
    ec0, ec1 = max(c0 - 3, 0), min(c1 + 3, s.detector_shape[1])
    deta = np.gradient(s.eta_deg) if n_eta > 1 else np.array([1.0])
    g_eta = (
        np.exp(-0.5 * ((s.eta_deg[:, None] - coords[None, :, 0]) / sigma_eta[None, :]) ** 2)
        / (np.sqrt(2 * np.pi) * sigma_eta[None, :])
        * np.abs(deta)[:, None]
    )
    sig_beam = np.asarray(s.beam_fwhm_um, dtype=float) * FWHM_TO_SIGMA
    cell_area = particle.step_um**2
    weight = particle.weight()[sup] * s.counts_per_um * cell_area / (2 * np.pi * sig_beam[0] * sig_beam[1])
    # drift: random walk between eta maps, centred on the middle map
    steps = rng.normal(0.0, s.drift_um_per_eta, size=(n_eta, 2))
    steps[0] = 0.0
    drift = np.cumsum(steps, axis=0)
    drift -= drift[n_eta // 2]
    max_drift = float(np.abs(drift).max()) if n_eta else 0.0
    cells = {
        "x": gx[sup],
        "y": gy[sup],
        "weight": weight,
        "g_eta": g_eta,
        "g_row": _pixel_gauss(coords[:, 1], sigma_row, er0, er1 - er0),
        "g_col": _pixel_gauss(coords[:, 2], sigma_col, ec0, ec1 - ec0),
        "sigma_beam": sig_beam,
        "reach": s.footprint_cut_sigma * sig_beam + max_drift + particle.step_um,
        "ext_origin": (er0, ec0),
    }
    if slopes is not None:  # the detector spot moves with eta: drawn per eta map in _expected_point
        cells.update(eta_c=coords[:, 0], row_c=coords[:, 1], col_c=coords[:, 2], slope_row=slopes[0],
                     slope_col=slopes[1], sigma_row=sigma_row, sigma_col=sigma_col)
    # monitor: slow decay over the eta maps, fluctuations per point
    decay = 1.0 - s.monitor_decay_rel * np.linspace(0.0, 1.0, n_eta)
    monitor = (
        s.monitor_mean * decay[:, None] * (1.0 + s.monitor_rel_noise * rng.standard_normal((n_eta, n_points)))
    )
    ix = np.tile(np.arange(s.n_fast), s.n_slow)
    iy = np.repeat(np.arange(s.n_slow), s.n_fast)
    x_nom = s.start_um[0] + ix * s.step_um[0]
    y_nom = s.start_um[1] + iy * s.step_um[1]
    x_meas = x_nom[None, :] + s.position_jitter_um * rng.standard_normal((n_eta, n_points))
    y_meas = y_nom[None, :] + s.position_jitter_um * rng.standard_normal((n_eta, n_points))
    # hot and dead pixels: drawn inside the ROI (outside the gaps) so that the stored frames carry them
    mask = maxipix_gap_mask(s.detector_shape) if s.maxipix_gaps else np.zeros(s.detector_shape, bool)
    in_roi = np.zeros(s.detector_shape, bool)
    in_roi[s.roi[0] : s.roi[1], s.roi[2] : s.roi[3]] = True
    free = np.flatnonzero(~mask.ravel() & in_roi.ravel())
    bad = rng.choice(free, size=s.n_hot + s.n_dead, replace=False)
    mask.ravel()[bad] = True
    hot_full = np.unravel_index(bad[: s.n_hot], s.detector_shape)
    dead_full = np.unravel_index(bad[s.n_hot :], s.detector_shape)
    seed_frames = int(rng.integers(2**63 - 1))

    truth = _truth(particle, s, cells, q_cells, sig_beam, drift, jac)
    sim = SxdmSimulation(s, particle, mask, monitor, x_meas, y_meas, truth, seed_frames, _cells=cells)
    sim.hot_pixels = _to_local(hot_full, s.roi)
    sim.dead_pixels = _to_local(dead_full, s.roi)
    gap = maxipix_gap_mask(s.detector_shape) if s.maxipix_gaps else np.zeros(s.detector_shape, bool)
    sim._gap_local = gap[r0:r1, c0:c1]
    return sim


def _to_local(rc, roi):
    r0, r1, c0, c1 = roi
    rows, cols = rc
    keep = (rows >= r0) & (rows < r1) & (cols >= c0) & (cols < c1)
    return rows[keep] - r0, cols[keep] - c0


def _truth(particle, s, cells, q_cells, sig_beam, drift, jac) -> ScanTruth:
    sup = particle.support
    d = particle.d_spacing_A[sup]
    tilt = particle.tilt_deg[:, sup]
    shape = (s.n_slow, s.n_fast)
    xs = s.start_um[0] + s.step_um[0] * np.arange(s.n_fast)
    ys = s.start_um[1] + s.step_um[1] * np.arange(s.n_slow)
    intensity = np.zeros(shape)
    mean_d = np.full(shape, np.nan)
    spread = np.full(shape, np.nan)
    mean_q = np.full(shape + (3,), np.nan)
    mean_tilt = np.full((2,) + shape, np.nan)
    cx, cy = cells["x"], cells["y"]
    reach = s.footprint_cut_sigma * sig_beam + particle.step_um
    for j, py in enumerate(ys):
        rows_near = np.abs(cy - py) < reach[1]
        for i, px in enumerate(xs):
            near = np.flatnonzero(rows_near & (np.abs(cx - px) < reach[0]))
            if not near.size:
                continue
            w = cells["weight"][near] * np.exp(
                -0.5 * (((cx[near] - px) / sig_beam[0]) ** 2 + ((cy[near] - py) / sig_beam[1]) ** 2)
            )
            total = w.sum()
            intensity[j, i] = total
            if total <= 0:
                continue
            md = np.dot(w, d[near]) / total
            mean_d[j, i] = md
            spread[j, i] = np.sqrt(max(np.dot(w, (d[near] - md) ** 2) / total, 0.0))
            mean_q[j, i] = w @ q_cells[near] / total
            mean_tilt[:, j, i] = tilt[:, near] @ w / total
    coords = np.full(shape + (3,), np.nan)
    ok = np.isfinite(mean_q[..., 0])
    if ok.any():
        coords[ok] = _bragg_coordinates(mean_q[ok], s)[0]
    return ScanTruth(
        x_um=np.broadcast_to(xs, shape).copy(),
        y_um=np.broadcast_to(ys[:, None], shape).copy(),
        intensity=intensity,
        mean_d_A=mean_d,
        mean_q=mean_q,
        tilt_deg=mean_tilt,
        d_spread_A=spread,
        drift_um=drift,
        peak_eta_deg=coords[..., 0],
        peak_row_px=coords[..., 1],
        peak_col_px=coords[..., 2],
    )


def write_simulation(sim: SxdmSimulation, path, external_frames: bool = True, frame_lines=None, **kwargs):
    """Write a simulated scan in the ID01 BLISS layout (:mod:`helpers.synthetic.bliss_writer`).

    ``frame_lines`` replaces the simulated frames (default ``sim.iter_lines()``). Extra keyword
    arguments go to the writer (``position_names``, ``detector``, ``compression``, ...).
    Returns the dataset-file path.
    """
    from helpers.synthetic.bliss_writer import write_bliss_sxdm

    s = sim.settings
    end = (s.start_um[0] + (s.n_fast - 1) * s.step_um[0], s.start_um[1] + (s.n_slow - 1) * s.step_um[1])
    kwargs.setdefault("detector", s.detector_name)
    return write_bliss_sxdm(
        path,
        eta_deg=s.eta_deg,
        frame_lines=sim.iter_lines() if frame_lines is None else frame_lines,
        scan_shape=(s.n_slow, s.n_fast),
        scan_start_um=s.start_um,
        scan_end_um=end,
        positions_um=np.stack([sim.x_um, sim.y_um], axis=-1),
        monitor=sim.monitor,
        wavelength_m=s.wavelength_m,
        distance_m=s.distance_m,
        pixel_size_m=s.pixel_size_m,
        beam_center_px=s.beam_center_px,
        pixel_mask=sim.pixel_mask,
        roi=s.roi,
        phi_deg=s.phi_deg,
        nu_deg=s.nu_deg,
        delta_deg=s.delta_deg,
        exposure_s=s.exposure_s,
        external_frames=external_frames,
        **kwargs,
    )


def settings_for_particle(
    particle: ParticleModel,
    scan_step_um: float = 0.1,
    margin_um: float = 0.2,
    eta_step_deg: float = 0.025,
    eta_margin_deg: float = 0.08,
    roi_size: int | None = 64,
    **overrides,
) -> ScanSettings:
    """ScanSettings covering the particle's support (+ margin) and its Bragg peaks.

    The raster covers the support's bounding box plus ``margin_um``; the rocking range spans the cells'
    Bragg angles ± ``eta_margin_deg``; the ROI (``roi_size``² pixels, None = full detector) is centred
    on the Bragg spot of the support's mean Q. Any ``ScanSettings`` field can be overridden (e.g.
    ``eta_deg`` for a truncated rocking range, ``roi`` to let a peak run off the detector).
    """
    sup = particle.support
    gx, gy = particle.coordinates()
    x0, x1 = gx[sup].min() - margin_um, gx[sup].max() + margin_um
    y0, y1 = gy[sup].min() - margin_um, gy[sup].max() + margin_um
    n_fast = int(np.ceil((x1 - x0) / scan_step_um)) + 1
    n_slow = int(np.ceil((y1 - y0) / scan_step_um)) + 1
    base = ScanSettings(n_fast=n_fast, n_slow=n_slow, start_um=(x0, y0), step_um=(scan_step_um, scan_step_um))
    for key, value in overrides.items():
        if not hasattr(base, key):
            raise ValueError(f"ScanSettings has no field {key!r}")
        setattr(base, key, value)
    probe = base.resolved()
    probe.roi = (0, probe.detector_shape[0], 0, probe.detector_shape[1])
    q = particle.q_vectors()[sup]
    coords = _bragg_coordinates(q, probe)[0]
    if "eta_deg" not in overrides:
        lo, hi = coords[:, 0].min() - eta_margin_deg, coords[:, 0].max() + eta_margin_deg
        n_eta = int(np.ceil((hi - lo) / eta_step_deg)) + 1
        base.eta_deg = lo + eta_step_deg * np.arange(n_eta)
    if "roi" not in overrides:
        if roi_size is None:
            base.roi = None
        else:
            w = particle.weight()[sup]
            centre = _bragg_coordinates((w @ q / w.sum())[None, :], probe)[0][0]
            n_rows, n_cols = base.detector_shape
            r0 = int(np.clip(round(centre[1] - roi_size / 2), 0, n_rows - roi_size))
            c0 = int(np.clip(round(centre[2] - roi_size / 2), 0, n_cols - roi_size))
            base.roi = (r0, r0 + roi_size, c0, c0 + roi_size)
    return base.resolved()
