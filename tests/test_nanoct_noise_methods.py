"""Correlated-noise measures, mask methods beyond one threshold, separability prediction, border message."""

import numpy as np
import pytest
from scipy import ndimage as ndi

from helpers.nanoct import border, noise, separability
from helpers.nanoct import mask_methods as mm


def test_correlation_length_of_gaussian_filtered_noise():
    # white noise filtered by a Gaussian of σ_f has a Gaussian autocorrelation of σ √2·σ_f:
    # HWHM = 2·√(ln 2)·σ_f (analytic). 10 % covers the finite-volume spread (5 seeds: ≤ 4 %).
    sigma_f = 3.0
    for seed in range(2):
        w = np.random.default_rng(seed).standard_normal((64, 64, 64))
        hw = noise.correlation_length(ndi.gaussian_filter(w, sigma_f, mode="wrap"))
        for axis in "zyx":
            assert hw[axis] == pytest.approx(2 * np.sqrt(np.log(2)) * sigma_f, rel=0.10)
    white = noise.correlation_length(np.random.default_rng(3).standard_normal((32, 32, 32)))
    assert max(white.values()) < 0.6  # a delta autocorrelation: HWHM 0.5 voxel


def test_white_noise_power_is_flat_and_boxes_see_correlated_noise_smaller():
    rng = np.random.default_rng(4)
    w = rng.standard_normal((48, 48, 48)) * 2.0
    _, p = noise.radial_power(w, n_bins=16)
    assert np.all(np.abs(p[1:12] / 4.0 - 1) < 0.15)  # σ² = 4 in every shell (shells of ≥ 100 modes)
    region = np.ones(w.shape, bool)
    assert noise.sigma_in_boxes(w, region, 8) == pytest.approx(w.std(), rel=0.05)
    smooth = ndi.gaussian_filter(rng.standard_normal((48, 48, 48)), 6, mode="wrap")
    assert noise.sigma_in_boxes(smooth, region, 8) < 0.5 * smooth.std()
    with pytest.raises(ValueError, match="no 8³ cube"):
        noise.sigma_in_boxes(w, np.zeros(w.shape, bool), 8)


def test_wiener_filter_lowers_the_error_of_a_noisy_ball():
    zz, yy, xx = np.mgrid[:48, :48, :48]
    ball = (((zz - 24) ** 2 + (yy - 24) ** 2 + (xx - 24) ** 2) < 12**2).astype(float)
    rng = np.random.default_rng(5)
    noisy = ball + 0.8 * rng.standard_normal(ball.shape)
    _, npow = noise.radial_power(0.8 * rng.standard_normal(ball.shape))  # an independent noise sample
    filtered = noise.wiener_filter(noisy, npow)
    assert np.mean((filtered - ball) ** 2) < 0.3 * np.mean((noisy - ball) ** 2)


def _noisy_ball(seed, sigma=0.6):
    # noise correlated over ≈ 1 voxel (Gaussian-filtered white noise rescaled to σ), as after FBP
    zz, yy, xx = np.mgrid[:40, :40, :40]
    ball = ((zz - 20) ** 2 + (yy - 20) ** 2 + (xx - 20) ** 2) < 11**2
    n = ndi.gaussian_filter(np.random.default_rng(seed).standard_normal(ball.shape), 1.0)
    return ball, ball + sigma * n / n.std()


@pytest.mark.parametrize("method", ["open_close", "random_walker"])
def test_mask_methods_recover_a_ball_better_than_the_threshold(method):
    # CNR 1/0.6: a plain threshold at 0.5 misclassifies Φ(−0.83) = 20 % of voxels either side; each
    # method must do better on three seeds by ≥ 0.1 in IoU.
    for seed in range(3):
        ball, v = _noisy_ball(seed)
        plain = v > 0.5
        if method == "open_close":
            m = mm.open_close_mask(v, 0.5, 2)
        else:
            m = mm.random_walker_mask(v, 0.5, 0.6)

        def iou(a, ref=ball):
            return (a & ref).sum() / (a | ref).sum()

        assert iou(m) > iou(plain) + 0.1
    assert mm.mask_as_grey(ball).dtype == np.uint8 and set(np.unique(mm.mask_as_grey(ball))) == {0, 255}


def test_hysteresis_keeps_only_regions_that_reach_the_high_threshold():
    v = np.zeros((20, 20, 20))
    v[2:6, 2:6, 2:6] = 0.7  # above low (0.5 − 0.5·0.4) and t, below high (0.5 + 0.4): dropped
    v[10:16, 10:16, 10:16] = 0.7
    v[12, 12, 12] = 1.0  # this region reaches the high threshold: kept whole
    m = mm.hysteresis_mask(v, 0.5, 0.4)
    assert not m[2:6, 2:6, 2:6].any() and m[10:16, 10:16, 10:16].all() and m.sum() == 216
    assert np.array_equal(mm.hysteresis_mask(v, 0.5, 0.4, 0.0, 0.0), v > 0.5)


def test_threshold_quality_predicts_the_sampled_mask():
    # truth: the class of each sampled value (not the formula); 2σ apart, weights 0.7 / 0.3
    rng = np.random.default_rng(6)
    n_bg, n_nmc = 70000, 30000
    bg = rng.normal(100, 10, n_bg)
    nmc = rng.normal(120, 10, n_nmc)
    values = np.concatenate([bg, nmc])
    is_nmc = np.r_[np.zeros(n_bg, bool), np.ones(n_nmc, bool)]
    counts = np.bincount(np.clip(np.round(values), 0, 255).astype(int), minlength=256)
    q = separability.threshold_quality(counts, [100, 120], [10, 10], [0.7, 0.3], 110.0)
    m = values > 110
    measured_iou = (m & is_nmc).sum() / (m | is_nmc).sum()
    assert q.iou == pytest.approx(measured_iou, abs=0.01)  # binomial spread of 10⁵ samples: ≈ 0.002
    assert q.volume_error == pytest.approx(m.sum() / n_nmc - 1, abs=0.02)
    assert q.misfit < 0.02  # sampling noise only
    # one Gaussian fitted as two: a misfit the measure must see
    flat = np.bincount(rng.integers(60, 200, 100000), minlength=256)
    assert separability.histogram_misfit(flat, [100, 120], [10, 10], [0.7, 0.3]) > 0.3


def test_border_message_names_the_cut_particles():
    assert border.border_message(np.zeros(4, bool)) is None
    msg = border.border_message(np.array([False, True, False, True]), labels=np.array([3, 5, 8, 9]))
    assert "2 of 4 particles touch the volume border (labels 5, 9)" in msg
    assert "touches_border" in msg
    with pytest.raises(ValueError, match="differ in length"):
        border.border_message(np.zeros(3, bool), labels=np.arange(2))


def test_overlapping_phases_with_ashman_d_above_2_are_refused():
    # D = √2·30/√(12² + 14²) = 2.30 passes Ashman's test, but at the mid-grey 135 the mixture loses
    # 0.3·Φ(−15/14) of NMC and adds 0.7·Φ(−15/12) of background: IoU 0.69 (analytic) < 0.75
    counts = np.bincount(np.clip(np.rint(np.concatenate([
        np.random.default_rng(7).normal(120, 12, 700000), np.random.default_rng(8).normal(150, 14, 300000)
    ])), 0, 255).astype(int), minlength=256)
    with pytest.raises(ValueError, match=r"not separable .* mask IoU of 0\.69 < 0\.75.*manual"):
        separability.require_separable(counts, [120, 150], [12, 14], [0.7, 0.3], 135.0)
    q = separability.require_separable(counts, [60, 190], [12, 12], [0.7, 0.3], 125.0)
    assert q.iou > 0.99


def test_closeup_is_centred_on_the_largest_cross_section():
    from helpers.nanoct import closeups

    labels = np.zeros((30, 40, 40), np.int32)
    zz, yy, xx = np.mgrid[:30, :40, :40]
    labels[((zz - 12) ** 2 + (yy - 20) ** 2 + (xx - 15) ** 2) <= 36] = 4
    z, ys, xs = closeups.closeup_slices(labels, 4, pad=2)
    assert z == 12 and (ys.start, ys.stop) == (12, 29) and (xs.start, xs.stop) == (7, 24)
    with pytest.raises(ValueError, match="label 5 is not"):
        closeups.closeup_slices(labels, 5)


def test_chan_vese_mask_recovers_a_sphere_from_a_rough_start():
    # a sphere (r = 10 vox, grey 1) in 0, white noise σ = 0.3 (CNR 3.3): the two-region model's
    # boundary is the mid-grey; started from a cube inside the sphere it must grow to the sphere.
    # Voxelised-sphere boundary and one-voxel curvature smoothing cost ≤ ~1 voxel shell (≈ 0.27 of the
    # volume at r = 10): IoU ≥ 0.8.
    rng = np.random.default_rng(3)
    zz, yy, xx = np.indices((32, 32, 32)) - 15.5
    sphere = zz**2 + yy**2 + xx**2 <= 100
    vol = sphere + rng.normal(0, 0.3, sphere.shape)
    init = np.zeros_like(sphere)
    init[12:20, 12:20, 12:20] = True
    mask = mm.chan_vese_mask(vol, init, iterations=20, smoothing=1)
    assert (mask & sphere).sum() / (mask | sphere).sum() >= 0.8
    with pytest.raises(ValueError, match="same shape"):
        mm.chan_vese_mask(vol, init[:-1])
