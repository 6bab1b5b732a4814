"""The 3-D Bragg peak of each scan point from pixel q vectors: moments, Poisson Gaussian fit, flags.

Inputs are plain arrays, independent of any file format:

- ``frames``: raw detector counts ``(n_points, n_eta, ny, nx)`` (float32 is fine);
- ``q_frame``: the q of every pixel at every eta, *in peak-frame coordinates relative to a reference
  q0*, ``(n_eta, ny, nx, 3)`` float64: ``(q_sample - q0) @ frame.T`` with ``frame`` the rows X
  (rocking), Y (ring), Z (along Q) of :func:`helpers.sxdm.geometry.peak_frame_axes` (centring keeps
  every sum exact in float64 whatever |Q|);
- ``monitor_gain``: ``(n_points, n_eta)`` factor m_ref/m (monitor normalisation; 1 = none);
- ``pixel_ok``: ``(ny, nx)`` bool, False for masked (gap, dead, hot) pixels;
- ``background``: counts per pixel per frame after normalisation (a constant, subtracted exactly:
  its sums over all good pixels are analytic, so zero pixels are skipped and the kernel only visits
  pixels with counts, which is what makes it fast on sparse photon-counting frames).

**Centre of mass (no binning).** With weights w_i = g_e c_i − b, the 3-D centre
μ = Σ w_i q_i / Σ w_i and covariance C = Σ w_i (q_i − μ)(q_i − μ)ᵀ / Σ w_i over every good pixel
of every frame. Counts already integrate the intensity over each pixel's q-volume, so no Jacobian is
needed. *Counting error:* c_i is Poisson, var(w_i) = g_e² c_i, so
var(μ_k) = Σ g_e² c_i (q_ik − μ_k)² / (Σ w_i)²  → σ_k/√N for a background-free Gaussian of N counts.

**Gaussian fit.** A 3-D Gaussian with axes along the peak frame (X, Y, Z), amplitude A per pixel and
flat background B per pixel, fitted by **Poisson maximum likelihood** (Fisher scoring with
Levenberg damping), started from the moments. Poisson likelihood rather than least squares because
most pixels hold 0–10 counts, where Neyman-weighted χ² is biased low and unweighted LSQ is not
efficient; the Poisson MLE is unbiased to O(1/N) and reaches the Cramér–Rao bound, whose inverse
Fisher matrix gives the centre's error. To keep each fit to a few thousand terms, the fit window
(moments ± 3.5σ, in pixel indices) is summed in blocks of up to ``b × b`` detector pixels, ``b`` ≈
σ/2 pixels (never along eta, so each block keeps one monitor value and stays Poisson); a block's q
is the mean of its pixels' q, which adds b²/12 pixel² to σ² (< 2 % of σ²) and leaves the centre
unbiased by symmetry.

**Flags** (bits of :data:`helpers.sxdm.maps.FLAG_BITS`):
``low_counts`` (net counts < ``min_counts``); ``truncated_detector`` / ``truncated_rocking`` (the
background-subtracted row/column/eta profile at the first or last index exceeds ``edge_fraction``
of its maximum by 3 counting σ: for a Gaussian, edge_fraction = 0.02 means the edge is within 2.8σ
of the centre, where the truncation bias of the centre of mass, σ φ(a)/Φ(a), exceeds 0.008σ);
``split_peak`` (two local maxima in one of the 2-D projections (row, col), (eta, row), (eta, col),
the weaker ≥ ``split_fraction`` of the stronger, ≥ 3 px apart, with a dip between them deeper than
25 % of the weaker and 3 counting σ); ``saturated``; ``fit_failed``; ``no_data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from helpers.sxdm.maps import FLAG_BITS

_LOW = FLAG_BITS["low_counts"]
_TRUNC_DET = FLAG_BITS["truncated_detector"]
_TRUNC_ROCK = FLAG_BITS["truncated_rocking"]
_SPLIT = FLAG_BITS["split_peak"]
_FIT_FAILED = FLAG_BITS["fit_failed"]
_SATURATED = FLAG_BITS["saturated"]
_NO_DATA = FLAG_BITS["no_data"]


@dataclass
class PeakResult:
    """Per-point peak parameters of one chunk, in peak-frame coordinates relative to q0 (Å⁻¹).

    ``intensity`` net monitor-normalised counts; ``raw_counts`` gross counts; ``centre`` (n, 3);
    ``covariance`` (n, 3, 3) second central moments; ``centre_error`` (n, 3) 1-σ counting error;
    ``sigma`` (n, 3) Gaussian σ along X, Y, Z (from the fit, or √diag(covariance) for ``com``);
    ``amplitude``/``fit_background`` (counts per pixel, NaN for ``com``); ``flags`` (n,) uint16.
    """

    intensity: np.ndarray
    raw_counts: np.ndarray
    centre: np.ndarray
    covariance: np.ndarray
    centre_error: np.ndarray
    sigma: np.ndarray
    amplitude: np.ndarray
    fit_background: np.ndarray
    flags: np.ndarray


# --------------------------------------------------------------------------------------------------
# moments kernel


@numba.njit(parallel=True, cache=True, nogil=True)
def _moment_kernel(frames, q_frame, gain, pixel_ok, saturation, windows, background, with_projections):
    n_pts, n_eta, ny, nx = frames.shape
    # sums: W, Σwq (3), Σwqq (xx, yy, zz, xy, xz, yz), Σc, Σg²c, Σg²c q (3)
    sums = np.zeros((n_pts, 15))
    var2 = np.zeros((n_pts, 3))  # Σ g² c q_k²  (for the error of the COM)
    if with_projections:
        proj_rc = np.zeros((n_pts, ny, nx))
        proj_er = np.zeros((n_pts, n_eta, ny))
        proj_ec = np.zeros((n_pts, n_eta, nx))
    else:
        proj_rc = np.zeros((n_pts, 1, 1))
        proj_er = np.zeros((n_pts, 1, 1))
        proj_ec = np.zeros((n_pts, 1, 1))
    n_sat = np.zeros(n_pts, np.int64)
    for p in numba.prange(n_pts):
        e0, e1 = windows[p, 0], windows[p, 1]
        r0, r1 = windows[p, 2], windows[p, 3]
        c0, c1 = windows[p, 4], windows[p, 5]
        for e in range(e0, e1):
            g = gain[p, e]
            for r in range(r0, r1):
                for c in range(c0, c1):
                    if not pixel_ok[r, c]:
                        continue
                    val = frames[p, e, r, c]
                    if val >= saturation:
                        n_sat[p] += 1
                        continue
                    if val == 0 and background == 0:
                        continue
                    w = g * val - background
                    qx = q_frame[e, r, c, 0]
                    qy = q_frame[e, r, c, 1]
                    qz = q_frame[e, r, c, 2]
                    sums[p, 0] += w
                    sums[p, 1] += w * qx
                    sums[p, 2] += w * qy
                    sums[p, 3] += w * qz
                    sums[p, 4] += w * qx * qx
                    sums[p, 5] += w * qy * qy
                    sums[p, 6] += w * qz * qz
                    sums[p, 7] += w * qx * qy
                    sums[p, 8] += w * qx * qz
                    sums[p, 9] += w * qy * qz
                    if with_projections:
                        proj_rc[p, r, c] += w
                        proj_er[p, e, r] += w
                        proj_ec[p, e, c] += w
                    if val == 0:
                        continue
                    sums[p, 10] += val
                    gw = g * g * val
                    sums[p, 11] += gw
                    sums[p, 12] += gw * qx
                    sums[p, 13] += gw * qy
                    sums[p, 14] += gw * qz
                    var2[p, 0] += gw * qx * qx
                    var2[p, 1] += gw * qy * qy
                    var2[p, 2] += gw * qz * qz
    return sums, var2, proj_rc, proj_er, proj_ec, n_sat


def _full_windows(n_pts, n_eta, ny, nx):
    win = np.zeros((n_pts, 6), np.int64)
    win[:, 1], win[:, 3], win[:, 5] = n_eta, ny, nx
    return win


def centre_of_mass(
    frames,
    q_frame,
    monitor_gain=None,
    pixel_ok=None,
    background: float = 0.0,
    saturation: float = np.inf,
    windows=None,
):
    """3-D centre of mass, covariance and counting error of each point (see the module docstring).

    ``windows`` (n, 6) ``(e0, e1, r0, r1, c0, c1)`` restricts each point's sums to an index box
    (default: everything; then the 2-D projections are returned too).
    Returns ``(intensity, raw_counts, centre, covariance, centre_error, projections, n_saturated)``
    with ``projections = (rc, er, ec)`` the background-subtracted sums over eta, columns, rows
    (``None`` when ``windows`` is given). Points without net counts get a NaN centre.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4:
        raise ValueError(f"frames must be (n_points, n_eta, ny, nx), got shape {frames.shape}")
    n_pts, n_eta, ny, nx = frames.shape
    q_frame = np.ascontiguousarray(q_frame, dtype=np.float64)
    if q_frame.shape != (n_eta, ny, nx, 3):
        raise ValueError(f"pixel q array has shape {q_frame.shape}, frames need {(n_eta, ny, nx, 3)}")
    gain = np.ones((n_pts, n_eta)) if monitor_gain is None else np.asarray(monitor_gain, np.float64)
    if gain.shape != (n_pts, n_eta):
        raise ValueError(f"monitor gain has shape {gain.shape}, expected {(n_pts, n_eta)}")
    ok = np.ones((ny, nx), bool) if pixel_ok is None else np.asarray(pixel_ok, bool)
    if ok.shape != (ny, nx):
        raise ValueError(f"pixel mask has shape {ok.shape} but frames have {(ny, nx)} pixels")
    if frames.dtype != np.float32:  # one compiled kernel; float32 holds counts < 2**24 exactly
        frames = frames.astype(np.float32)
    with_proj = windows is None
    win = _full_windows(n_pts, n_eta, ny, nx) if with_proj else np.ascontiguousarray(windows[:, :6], np.int64)
    # whole data: the background's sums over every good pixel are analytic, so the kernel visits only
    # pixels with counts; in a box it is subtracted pixel by pixel
    kernel_bg = 0.0 if with_proj else float(background)
    sums, var2, proj_rc, proj_er, proj_ec, n_sat = _moment_kernel(
        frames, q_frame, np.nan_to_num(gain), ok, float(saturation), win, kernel_bg, with_proj
    )
    if with_proj and background:
        good = np.broadcast_to(ok, q_frame.shape[:3])
        qg = q_frame[good]
        sums[:, 0] -= background * qg.shape[0]
        sums[:, 1:4] -= background * qg.sum(axis=0)
        pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
        sums[:, 4:10] -= background * np.array([qg[:, i] @ qg[:, j] for i, j in pairs])
        proj_rc -= background * n_eta * ok
        proj_er -= background * ok.sum(axis=1)[None, None, :]
        proj_ec -= background * ok.sum(axis=0)[None, None, :]
    weight = sums[:, 0]
    valid = weight > 0
    safe = np.where(valid, weight, 1.0)
    centre = sums[:, 1:4] / safe[:, None]
    cov = np.empty((n_pts, 3, 3))
    second = sums[:, 4:10] / safe[:, None]
    for k, (i, j) in enumerate([(0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)]):
        cov[:, i, j] = cov[:, j, i] = second[:, k] - centre[:, i] * centre[:, j]
    # var(μ_k) = Σ g² c (q_k − μ_k)² / W² = (Σ g²c q² − 2 μ Σ g²c q + μ² Σ g²c) / W²
    t0, t1 = sums[:, 11], sums[:, 12:15]
    var_centre = (var2 - 2 * centre * t1 + centre**2 * t0[:, None]) / safe[:, None] ** 2
    centre_error = np.sqrt(np.clip(var_centre, 0, None))
    centre[~valid] = np.nan
    cov[~valid] = np.nan
    centre_error[~valid] = np.nan
    projections = (proj_rc, proj_er, proj_ec) if with_proj else None
    return weight, sums[:, 10], centre, cov, centre_error, projections, n_sat


# --------------------------------------------------------------------------------------------------
# flags from the projections


def edge_flags(proj_rc, proj_er, gain_mean, edge_fraction: float = 0.02, background: float = 0.0,
               pixel_ok=None) -> np.ndarray:
    """``truncated_detector`` / ``truncated_rocking`` bits from the 1-D profiles (see module docstring).

    The 3-σ noise margin uses the gross counts of the edge (net + background of its good pixels).
    """
    n_eta = proj_er.shape[1]
    ok = np.ones(proj_rc.shape[1:], bool) if pixel_ok is None else np.asarray(pixel_ok, bool)
    row, col, eta = proj_rc.sum(axis=2), proj_rc.sum(axis=1), proj_er.sum(axis=2)
    bg = (background * n_eta * ok.sum(axis=1), background * n_eta * ok.sum(axis=0),
          np.full(n_eta, background * ok.sum()))
    flags = np.zeros(row.shape[0], np.uint16)
    for profile, bg_profile, bit in ((row, bg[0], _TRUNC_DET), (col, bg[1], _TRUNC_DET),
                                     (eta, bg[2], _TRUNC_ROCK)):
        top = profile.max(axis=1)
        for edge, bg_edge in ((profile[:, 0], bg_profile[0]), (profile[:, -1], bg_profile[-1])):
            noise = 3.0 * np.sqrt(np.clip(edge + bg_edge, 0, None) * gain_mean)
            hit = (edge - noise > edge_fraction * top) & (top > 0)
            flags[hit] |= bit
    return flags


@numba.njit(cache=True)
def _smooth3(img):
    ny, nx = img.shape
    out = np.zeros_like(img)
    for r in range(ny):
        for c in range(nx):
            acc = 0.0
            n = 0
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < ny and 0 <= cc < nx:
                        acc += img[rr, cc]
                        n += 1
            out[r, c] = acc / n
    return out


@numba.njit(cache=True)
def _is_split(img, split_fraction, dip_fraction, noise_scale):
    sm = _smooth3(img)
    ny, nx = sm.shape
    top = sm.max()
    if top <= 0:
        return False
    # local maxima above split_fraction · top, strongest first
    cand_v = np.zeros(64)
    cand_r = np.zeros(64, np.int64)
    cand_c = np.zeros(64, np.int64)
    n = 0
    for r in range(ny):
        for c in range(nx):
            v = sm[r, c]
            if v < split_fraction * top:
                continue
            is_max = True
            for dr in range(-1, 2):
                for dc in range(-1, 2):
                    rr, cc = r + dr, c + dc
                    if (dr or dc) and 0 <= rr < ny and 0 <= cc < nx and sm[rr, cc] > v:
                        is_max = False
            if is_max and n < 64:
                cand_v[n] = v
                cand_r[n] = r
                cand_c[n] = c
                n += 1
    if n < 2:
        return False
    order = np.argsort(-cand_v[:n])
    r0, c0 = cand_r[order[0]], cand_c[order[0]]
    for k in range(1, n):
        j = order[k]
        r1, c1 = cand_r[j], cand_c[j]
        if max(abs(r1 - r0), abs(c1 - c0)) < 3:
            continue
        weaker = cand_v[j]
        steps = 2 * max(abs(r1 - r0), abs(c1 - c0))
        dip = weaker
        for s in range(1, steps):
            t = s / steps
            rr = int(round(r0 + t * (r1 - r0)))
            cc = int(round(c0 + t * (c1 - c0)))
            dip = min(dip, sm[rr, cc])
        depth = weaker - dip
        if depth > dip_fraction * weaker and depth > 3.0 * np.sqrt(max(weaker, 0.0) * noise_scale / 9.0):
            return True
    return False


@numba.njit(parallel=True, cache=True, nogil=True)
def _split_kernel(proj_rc, proj_er, proj_ec, split_fraction, dip_fraction, noise_scale):
    n = proj_rc.shape[0]
    out = np.zeros(n, np.bool_)
    for p in numba.prange(n):
        out[p] = (
            _is_split(proj_rc[p], split_fraction, dip_fraction, noise_scale[p])
            or _is_split(proj_er[p], split_fraction, dip_fraction, noise_scale[p])
            or _is_split(proj_ec[p], split_fraction, dip_fraction, noise_scale[p])
        )
    return out


def split_flags(projections, gain_mean, split_fraction: float = 0.2, dip_fraction: float = 0.25):
    """``split_peak`` bit for each point from its three 2-D projections (see module docstring)."""
    rc, er, ec = projections
    hit = _split_kernel(rc, er, ec, float(split_fraction), float(dip_fraction), np.asarray(gain_mean, float))
    return np.where(hit, np.uint16(_SPLIT), np.uint16(0))


# --------------------------------------------------------------------------------------------------
# Poisson maximum-likelihood Gaussian fit


@numba.njit(cache=True)
def _gauss_model(par, q):
    a, b = par[0], par[1]
    arg = 0.0
    for k in range(3):
        d = (q[k] - par[2 + k]) / par[5 + k]
        arg += d * d
    return a * np.exp(-0.5 * arg), b


@numba.njit(cache=True)
def _fit_one(counts, qb, nok, jsum, gainb, par0, max_iter):
    """Fisher scoring with Levenberg damping; returns (par, cov, ok)."""
    nb = counts.shape[0]
    par = par0.copy()
    lam = 1e-3

    def loglike(p):
        total = 0.0
        for i in range(nb):
            g, b = _gauss_model(p, qb[i])
            mu = (g * jsum[i] + b * nok[i]) / gainb[i]
            if mu <= 0:
                return -np.inf
            total += counts[i] * np.log(mu) - mu
        return total

    ll = loglike(par)
    fisher = np.zeros((8, 8))
    converged = False
    for _ in range(max_iter):
        score = np.zeros(8)
        fisher[:, :] = 0.0
        der = np.zeros(8)
        for i in range(nb):
            g, b = _gauss_model(par, qb[i])
            scale = jsum[i] / gainb[i]
            mu = g * scale + b * nok[i] / gainb[i]
            if mu <= 0:
                continue
            der[0] = g / par[0] * scale if par[0] != 0 else 0.0
            der[1] = nok[i] / gainb[i]
            for k in range(3):
                d = qb[i, k] - par[2 + k]
                s = par[5 + k]
                der[2 + k] = g * d / (s * s) * scale
                der[5 + k] = g * d * d / (s * s * s) * scale
            resid = counts[i] / mu - 1.0
            for j in range(8):
                score[j] += resid * der[j]
                for m in range(j, 8):
                    fisher[j, m] += der[j] * der[m] / mu
        for j in range(8):
            for m in range(j):
                fisher[j, m] = fisher[m, j]
        improved = False
        for _try in range(12):
            damped = fisher.copy()
            for j in range(8):
                damped[j, j] *= 1.0 + lam
                damped[j, j] += 1e-300
            try:
                step = np.linalg.solve(damped, score)
            except Exception:  # noqa: BLE001 - numba: singular matrix
                lam *= 10.0
                continue
            trial = par + step
            if trial[0] <= 0 or trial[5] <= 0 or trial[6] <= 0 or trial[7] <= 0:
                lam *= 10.0
                continue
            if trial[1] < 0:
                trial[1] = 0.0
            ll_new = loglike(trial)
            if ll_new >= ll:
                small = True
                for k in range(3):
                    if abs(step[2 + k]) > 1e-4 * par[5 + k] or abs(step[5 + k]) > 1e-4 * par[5 + k]:
                        small = False
                par = trial
                ll = ll_new
                lam = max(lam / 10.0, 1e-7)
                improved = True
                if small:
                    converged = True
                break
            lam *= 10.0
        if converged or not improved:
            converged = converged or (not improved and lam > 1e6)
            break
    cov = np.full((8, 8), np.nan)
    try:
        cov = np.linalg.inv(fisher)
    except Exception:  # noqa: BLE001 - numba: singular matrix
        converged = False
    return par, cov, converged


@numba.njit(parallel=True, cache=True, nogil=True)
def _fit_kernel(frames, q_frame, jrel, gain, pixel_ok, saturation, windows, par0, max_iter):
    n_pts = frames.shape[0]
    out_par = np.full((n_pts, 8), np.nan)
    out_err = np.full((n_pts, 3), np.nan)
    out_ok = np.zeros(n_pts, np.bool_)
    for p in numba.prange(n_pts):
        e0, e1, r0, r1, c0, c1, br, bc = windows[p]
        if e1 <= e0 or par0[p, 0] <= 0 or not np.isfinite(par0[p, 2]):
            continue
        nbr = (r1 - r0 + br - 1) // br
        nbc = (c1 - c0 + bc - 1) // bc
        nb = (e1 - e0) * nbr * nbc
        counts = np.zeros(nb)
        qb = np.zeros((nb, 3))
        nok = np.zeros(nb)
        jsum = np.zeros(nb)
        gainb = np.ones(nb)
        for e in range(e0, e1):
            for r in range(r0, r1):
                for c in range(c0, c1):
                    if not pixel_ok[r, c]:
                        continue
                    v = frames[p, e, r, c]
                    if v >= saturation:
                        continue
                    i = ((e - e0) * nbr + (r - r0) // br) * nbc + (c - c0) // bc
                    counts[i] += v
                    nok[i] += 1.0
                    jsum[i] += jrel[e, r, c]
                    gainb[i] = gain[p, e]
                    for k in range(3):
                        qb[i, k] += q_frame[e, r, c, k]
        m = 0
        for i in range(nb):
            if nok[i] > 0:
                counts[m] = counts[i]
                nok[m] = nok[i]
                jsum[m] = jsum[i]
                gainb[m] = gainb[i]
                for k in range(3):
                    qb[m, k] = qb[i, k] / nok[i]
                m += 1
        if m < 16:
            continue
        par, cov, ok = _fit_one(counts[:m], qb[:m], nok[:m], jsum[:m], gainb[:m], par0[p], max_iter)
        out_par[p] = par
        for k in range(3):
            out_err[p, k] = np.sqrt(cov[2 + k, 2 + k]) if cov[2 + k, 2 + k] > 0 else np.nan
        out_ok[p] = ok
    return out_par, out_err, out_ok


def peak_windows(projections, half_width_sigma: float = 4.0, max_bins: int = 12000):
    """Per-point index boxes around the peak, from its background-subtracted 1-D profiles.

    Along eta, rows and columns: the maximum of the 3-point smoothed profile, σ from its full width
    at half maximum (FWHM/2.355, at least 0.5 px), box = maximum ± ``half_width_sigma``·σ (+1 px),
    clipped to the data. Returns (n, 8) ints ``(e0, e1, r0, r1, c0, c1, block_r, block_c)`` with the
    detector block size of the Gaussian fit (≈ σ/2, grown until the box holds ≤ ``max_bins`` blocks).
    A 4σ box keeps 99.99 % of a Gaussian's counts in each direction (truncation changes σ² by −0.1 %
    and, the box being centred on the maximum to ±0.5 px, the centre by < 10⁻³ σ) while cutting the
    background's noise to the box volume.
    """
    rc, er, _ = projections
    profiles = (er.sum(axis=2), rc.sum(axis=2), rc.sum(axis=1))
    n = rc.shape[0]
    win = np.zeros((n, 8), np.int64)
    sig = np.zeros((n, 3))
    for k, prof in enumerate(profiles):
        length = prof.shape[1]
        smooth = prof.copy()
        if length >= 3:
            smooth[:, 1:-1] = (prof[:, :-2] + prof[:, 1:-1] + prof[:, 2:]) / 3.0
        peak = np.argmax(smooth, axis=1)
        top = smooth[np.arange(n), peak]
        above = smooth >= 0.5 * top[:, None]
        idx = np.arange(length)
        # contiguous half-maximum run around the peak
        below_left = np.where(~above & (idx[None, :] < peak[:, None]), idx[None, :], -1).max(axis=1)
        below_right = np.where(~above & (idx[None, :] > peak[:, None]), idx[None, :], length).min(axis=1)
        fwhm = (below_right - below_left - 1).astype(float)
        std = np.maximum(fwhm / 2.3548, 0.5)
        lo = np.clip(np.floor(peak - half_width_sigma * std) - 1, 0, length - 1)
        hi = np.clip(np.ceil(peak + half_width_sigma * std) + 2, 1, length)
        win[:, 2 * k] = lo
        win[:, 2 * k + 1] = np.maximum(hi, lo + 1)
        sig[:, k] = std
    block = np.clip(np.floor(sig[:, 1:] / 3.0), 1, None).astype(np.int64)
    for p in range(n):
        while True:
            n_e = win[p, 1] - win[p, 0]
            nr = -(-(win[p, 3] - win[p, 2]) // block[p, 0])
            nc = -(-(win[p, 5] - win[p, 4]) // block[p, 1])
            if n_e * nr * nc <= max_bins:
                break
            block[p] += 1
    win[:, 6:] = block
    return win


def gaussian_fit(
    frames,
    q_frame,
    centre,
    covariance,
    intensity,
    windows,
    monitor_gain=None,
    pixel_ok=None,
    background: float = 0.0,
    saturation: float = np.inf,
    max_iter: int = 40,
    volumes=None,
):
    """Poisson-likelihood 3-D Gaussian fit of each point in its box, started from its moments.

    ``windows`` from :func:`peak_windows`; ``intensity`` the net counts in the box; ``volumes`` the
    :func:`pixel_volumes` of ``q_frame`` when already known (a reduction computes them once per scan,
    not once per chunk).

    Returns ``(params (n, 8) = [A, B, cX, cY, cZ, σX, σY, σZ], centre_error (n, 3), converged (n,))``;
    A, B in monitor-normalised counts per pixel, centres/σ in Å⁻¹ (peak frame, relative to q0).
    """
    frames = np.asarray(frames)
    n_pts, n_eta, ny, nx = frames.shape
    gain = np.ones((n_pts, n_eta)) if monitor_gain is None else np.asarray(monitor_gain, np.float64)
    ok = np.ones((ny, nx), bool) if pixel_ok is None else np.asarray(pixel_ok, bool)
    windows = np.ascontiguousarray(windows, np.int64)
    sigma0 = np.sqrt(np.clip(np.diagonal(covariance, axis1=1, axis2=2), 1e-14, None))
    # amplitude per pixel: net intensity / Σ_pixels G; Σ G ≈ (2π)^{3/2} σX σY σZ / v_pixel
    volumes = pixel_volumes(q_frame) if volumes is None else np.asarray(volumes, float)
    v_pixel = float(volumes.mean())
    jrel = np.ascontiguousarray(volumes / v_pixel)
    amp0 = intensity * v_pixel / ((2 * np.pi) ** 1.5 * np.prod(sigma0, axis=1))
    par0 = np.concatenate(
        [amp0[:, None], np.full((n_pts, 1), max(background, 1e-6)), centre, sigma0], axis=1
    )
    par0[~np.isfinite(par0).all(axis=1)] = np.nan
    if frames.dtype != np.float32:  # one compiled kernel; float32 holds counts < 2**24 exactly
        frames = frames.astype(np.float32)
    return _fit_kernel(
        frames, np.ascontiguousarray(q_frame, np.float64), jrel, gain, ok, float(saturation), windows, par0,
        int(max_iter)
    )


def pixel_volumes(q_frame) -> np.ndarray:
    """q-space volume (Å⁻³) of every (eta, row, col) sample: |det| of the Jacobian ∂q/∂(eta, row, col).

    Counts are the intensity integrated over this volume, so the count-weighted moments are the
    moments of I(q) without any Jacobian; the Gaussian model multiplies by it (it varies by ~1 %
    across a 64² ROI because of the Ewald-sphere curvature). A single eta gets a unit rocking step.
    """
    q = np.asarray(q_frame, float)
    de = np.gradient(q, axis=0) if q.shape[0] > 1 else np.broadcast_to([1.0, 0.0, 0.0], q.shape)
    dr = np.gradient(q, axis=1)
    dc = np.gradient(q, axis=2)
    return np.abs(np.linalg.det(np.stack([de, dr, dc], axis=-2)))


# --------------------------------------------------------------------------------------------------
# all together


def analyse_peaks(
    frames,
    q_frame,
    monitor_gain=None,
    pixel_ok=None,
    background: float = 0.0,
    method: str = "gauss",
    min_counts: float = 50.0,
    saturation: float = np.inf,
    edge_fraction: float = 0.02,
    split_fraction: float = 0.2,
    window_sigma: float | None = 4.0,
    volumes=None,
) -> PeakResult:
    """Moments, optional Gaussian fit and quality flags of every point of one chunk.

    Pass 1 sums every pixel (net intensity, 2-D projections, flags); pass 2 takes the moments in the
    box of :func:`peak_windows` (``window_sigma`` σ around the maximum; ``None`` = the whole data,
    the plain "3-D centre of mass" whose error grows with the background in the whole ROI).
    ``method``: ``"com"`` (centre of mass and second moments) or ``"gauss"`` (Poisson fit started
    from the moments; where it fails the centre of mass is kept and ``fit_failed`` set).
    ``volumes``: :func:`pixel_volumes` of ``q_frame`` if already computed (``None``: computed here).
    """
    if method not in ("com", "gauss"):
        raise ValueError(f"method {method!r} is not one of 'com', 'gauss'")
    n_eta = np.shape(frames)[1]
    intensity, raw, centre, cov, err, proj, n_sat = centre_of_mass(
        frames, q_frame, monitor_gain, pixel_ok, background, saturation
    )
    n_pts = intensity.shape[0]
    gain = np.ones((n_pts, n_eta)) if monitor_gain is None else np.asarray(monitor_gain, float)
    with np.errstate(invalid="ignore"):
        gain_mean = np.where(np.isfinite(gain).all(axis=1), gain.mean(axis=1), np.nan)
    flags = np.zeros(n_pts, np.uint16)
    no_data = ~(intensity > 0) | ~np.isfinite(gain_mean)
    flags[no_data] |= _NO_DATA
    with np.errstate(invalid="ignore"):
        flags[(intensity < min_counts * gain_mean) & ~no_data] |= _LOW
    flags[n_sat > 0] |= _SATURATED
    gain_mean = np.nan_to_num(gain_mean, nan=1.0)
    flags |= edge_flags(proj[0], proj[1], gain_mean, edge_fraction, background, pixel_ok)
    if n_eta == 1:
        flags |= _TRUNC_ROCK  # a single eta cannot resolve the rocking direction
    flags |= split_flags(proj, gain_mean, split_fraction)
    windows = peak_windows(proj, window_sigma if window_sigma is not None else 4.0)
    if window_sigma is not None:
        box_intensity, _, centre, cov, err, _, _ = centre_of_mass(
            frames, q_frame, monitor_gain, pixel_ok, background, saturation, windows=windows
        )
        centre[~(box_intensity > 0)] = np.nan
    else:
        box_intensity = intensity
    sigma = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
    amplitude = np.full(n_pts, np.nan)
    fit_bg = np.full(n_pts, np.nan)
    if method == "gauss":
        fit_pts = ~no_data & ((flags & _LOW) == 0) & np.isfinite(centre).all(axis=1)
        par, gerr, ok = gaussian_fit(
            frames, q_frame, np.where(fit_pts[:, None], centre, np.nan), cov,
            np.where(fit_pts, box_intensity, 0.0), windows, gain, pixel_ok, background, saturation,
            volumes=volumes,
        )
        good = ok & fit_pts & np.isfinite(par).all(axis=1) & np.isfinite(gerr).all(axis=1)
        centre = np.where(good[:, None], par[:, 2:5], centre)
        err = np.where(good[:, None], gerr, err)
        sigma = np.where(good[:, None], par[:, 5:8], sigma)
        amplitude = np.where(good, par[:, 0], np.nan)
        fit_bg = np.where(good, par[:, 1], np.nan)
        flags[fit_pts & ~good] |= _FIT_FAILED
    centre[no_data] = np.nan
    return PeakResult(intensity, raw, centre, cov, err, sigma, amplitude, fit_bg, flags)
