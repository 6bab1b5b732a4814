"""Orientation/d domains (helpers.sxdm.domains) on a map-level synthetic aggregate with exact truth."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from helpers.sxdm import domains as dm

STEP_UM = 0.08
FOOTPRINT_FWHM_UM = 0.08
TILT_NOISE_DEG = 0.005
D_NOISE_A = 2e-4


def aggregate(seed=0, radius_um=269.0):
    """Two bent halves of one particle (slightly different tilt and d), a touching crystallite and a
    separate one; features blurred by the beam footprint (intensity-weighted) plus noise.

    Returns tilt (deg), d (Å), intensity, mask, truth labels, noise-free truth tilt and d, axes.
    """
    rng = np.random.default_rng(seed)
    n = 64
    x_um = (np.arange(n) - n / 2) * STEP_UM
    y_um = x_um.copy()
    xx, yy = np.meshgrid(x_um, y_um)
    truth = np.zeros((n, n), int)
    body = (xx / 1.5) ** 2 + (yy / 1.0) ** 2 <= 1
    truth[body & (xx < 0.1 + 0.2 * yy)] = 1
    truth[body & (xx >= 0.1 + 0.2 * yy)] = 2
    truth[(xx - 0.3) ** 2 + (yy - 1.3) ** 2 <= 0.35**2] = 3  # touches the top of the body
    truth[(xx + 1.6) ** 2 + (yy + 1.7) ** 2 <= 0.3**2] = 4  # separate
    offsets = {
        1: (0.0, 0.0, 4.7380),
        2: (0.15, 0.06, 4.7400),
        3: (-0.30, 0.20, 4.7350),
        4: (0.1, -0.3, 4.7420),
    }
    bend = np.degrees(xx / radius_um)  # smooth bending of every grain along x
    tilt = np.zeros((n, n, 2))
    d = np.zeros((n, n))
    for lab, (tx, ty, d0) in offsets.items():
        sel = truth == lab
        tilt[sel, 0] = tx + bend[sel]
        tilt[sel, 1] = ty
        d[sel] = d0
    inten = (truth > 0).astype(float)
    sigma_px = FOOTPRINT_FWHM_UM / 2.3548 / STEP_UM
    blur_i = ndimage.gaussian_filter(inten, sigma_px)
    with np.errstate(invalid="ignore", divide="ignore"):
        b_tilt = np.stack([ndimage.gaussian_filter(inten * tilt[..., k], sigma_px) for k in range(2)], -1)
        b_tilt /= blur_i[..., None]
        b_d = ndimage.gaussian_filter(inten * d, sigma_px) / blur_i
    mask = blur_i >= 0.2 * blur_i.max()
    b_tilt = b_tilt + rng.normal(0, TILT_NOISE_DEG, b_tilt.shape)
    b_d = b_d + rng.normal(0, D_NOISE_A, b_d.shape)
    return b_tilt, b_d, blur_i, mask, truth, tilt, d, x_um, y_um


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_domains_recovered_with_iou_and_mean_values(seed):
    """Every true domain is recovered with IoU ≥ 0.8; its mean d and tilt agree with the truth within
    3 standard errors of the mean (σ/√n from the noise) plus the boundary-mixing bias, bounded by the
    fraction of boundary points × the jump (points within one footprint of a boundary carry mixed
    values; at most ~2 × perimeter points, each off by at most the jump)."""
    tilt, d, inten, mask, truth, true_tilt, true_d, x_um, y_um = aggregate(seed)
    labels = dm.segment_domains(tilt, d, mask, tilt_jump_deg=0.05, d_jump_angstrom=1e-3)
    matches = dm.match_domains(labels, truth)
    stats = {s.label: s for s in dm.domain_stats(labels, tilt, d, inten, x_um, y_um)}
    assert len(stats) == 4
    for t, (lab, iou) in matches.items():
        assert iou >= 0.8, (t, iou)
        st = stats[lab]
        tsel = truth == t
        boundary = tsel & ~ndimage.binary_erosion(tsel)
        mix = boundary.sum() / tsel.sum()
        d_true = true_d[tsel].mean()
        assert abs(st.mean_d_angstrom - d_true) <= 3 * D_NOISE_A / np.sqrt(st.n_points) + mix * 5e-3
        for k in range(2):
            t_true = true_tilt[tsel, k].mean()
            assert abs(st.mean_tilt_deg[k] - t_true) <= 3 * TILT_NOISE_DEG / np.sqrt(st.n_points) + mix * 0.45
        # and the reported standard error is the noise one for the noise-dominated d of a grain
        assert st.sem_d_angstrom < 5 * D_NOISE_A / np.sqrt(st.n_points) + mix * 5e-3


def test_bent_single_crystal_stays_one_domain():
    """A strongly bent single crystal (R = 150 µm: 1.1° across 3 µm, 20 × the jump threshold, but
    0.03° per 0.08 µm step) stays one domain: the neighbour-jump criterion does not slice a bend."""
    rng = np.random.default_rng(3)
    n = 64
    x_um = (np.arange(n) - n / 2) * STEP_UM
    xx, yy = np.meshgrid(x_um, x_um)
    mask = (xx / 1.5) ** 2 + (yy / 1.0) ** 2 <= 1
    tilt = np.stack([np.degrees(xx / 150.0), np.zeros_like(xx)], -1)
    tilt += rng.normal(0, TILT_NOISE_DEG, (n, n, 2))
    d = 4.738 + rng.normal(0, D_NOISE_A, (n, n))
    for remove_bend in (False, True):
        labels = dm.segment_domains(
            tilt, d, mask, tilt_jump_deg=0.05, d_jump_angstrom=1e-3, remove_bend=remove_bend
        )
        assert labels.max() == 1
    assert np.ptp(tilt[mask, 0]) > 20 * 0.05


def test_coarse_step_bend_needs_the_bend_removed():
    """R = 50 µm at a 0.08 µm step turns 0.09° per step, above the 0.05° jump: without removing the
    bend the crystal is cut into slices, with it (median neighbour change) it is one domain, and a real
    0.15° boundary on top of the same bend is still found."""
    rng = np.random.default_rng(4)
    n = 64
    x_um = (np.arange(n) - n / 2) * STEP_UM
    xx, yy = np.meshgrid(x_um, x_um)
    mask = (xx / 1.5) ** 2 + (yy / 1.0) ** 2 <= 1
    tilt = np.stack([np.degrees(xx / 50.0), np.zeros_like(xx)], -1)
    tilt += rng.normal(0, TILT_NOISE_DEG, (n, n, 2))
    assert dm.segment_domains(tilt, None, mask, tilt_jump_deg=0.05, remove_bend=False).max() > 1
    assert dm.segment_domains(tilt, None, mask, tilt_jump_deg=0.05).max() == 1
    tilt[..., 1] += np.where(xx > 0.2, 0.15, 0.0)
    labels = dm.segment_domains(tilt, None, mask, tilt_jump_deg=0.05)
    assert labels.max() == 2
    truth = np.where(mask, 1 + (xx > 0.2), 0)
    assert min(iou for _, iou in dm.match_domains(labels, truth).values()) > 0.95


def test_same_partition_as_sklearn_single_linkage():
    """Connected components of sub-threshold neighbour edges = sklearn single-linkage agglomerative
    clustering with the grid connectivity and distance_threshold 1 (on one spatial component)."""
    from sklearn.cluster import AgglomerativeClustering

    tilt, d, inten, mask, truth, *_ = aggregate(1)
    body = ndimage.label(mask)[0]
    one = body == body[32, 32]
    labels = dm.segment_domains(
        tilt, d, one, tilt_jump_deg=0.05, d_jump_angstrom=1e-3, min_points=1, remove_bend=False
    )
    feats = dm.domain_features(tilt, d, one, 0.05, 1e-3)
    ref = AgglomerativeClustering(
        n_clusters=None, distance_threshold=1.0, linkage="single", connectivity=dm.neighbour_graph(one)
    ).fit_predict(feats)
    ours = labels[one]
    # same partition up to relabelling
    pairs = set(zip(ours.tolist(), ref.tolist(), strict=True))
    assert len(pairs) == len(set(ours.tolist())) == len(set(ref.tolist()))


def test_domain_map_and_bad_inputs():
    tilt, d, inten, mask, truth, *_ = aggregate(0)
    labels = dm.segment_domains(tilt, d, mask)
    m = dm.domain_map(labels, d, 1)
    assert np.isnan(m[labels != 1]).all() and np.isfinite(m[labels == 1]).all()
    with pytest.raises(ValueError, match="expected \\(n_slow, n_fast, 2\\)"):
        dm.segment_domains(tilt[..., 0], d, mask)
    with pytest.raises(ValueError, match="boolean map"):
        dm.segment_domains(tilt, d, mask.astype(int))
    with pytest.raises(ValueError, match="d_spacing has shape"):
        dm.segment_domains(tilt, d[1:], mask)
    with pytest.raises(ValueError, match="must be positive"):
        dm.segment_domains(tilt, d, mask, tilt_jump_deg=0)
    with pytest.raises(ValueError, match="no masked scan point"):
        dm.segment_domains(tilt, d, np.zeros_like(mask))
    with pytest.raises(ValueError, match="differ in shape"):
        dm.match_domains(labels, truth[1:])
