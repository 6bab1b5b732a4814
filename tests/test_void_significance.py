"""Void significance test against analytic cases: white noise of known σ, a sphere with known voids."""

import numpy as np
import pytest

from helpers.nanoct import void_significance as vs


def test_ball_mean_sigma_of_white_noise_is_sigma_over_root_n():
    # white Gaussian noise, σ = 10: the mean over n independent voxels has σ/√n (analytic). The relative
    # sampling error of a std from N ≫ 1 correlated positions is ≈ 1/√(2·N/n) ≤ 2 % here; bound 6 % (3×).
    rng = np.random.default_rng(1)
    vol = rng.normal(100.0, 10.0, (64, 64, 64))
    region = np.ones(vol.shape, bool)
    sig = vs.ball_mean_sigma(vol, region, radii=(1, 2, 3))
    for r, s in sig.items():
        n = vs.ball(r).sum()
        assert s == pytest.approx(10.0 / np.sqrt(n), rel=0.06)


def test_ball_mean_sigma_refuses_a_region_too_small():
    vol = np.zeros((20, 20, 20))
    region = np.zeros(vol.shape, bool)
    region[5:8, 5:8, 5:8] = True
    with pytest.raises(ValueError, match="larger region"):
        vs.ball_mean_sigma(vol, region, radii=(2,))


def _sphere(shape, centre, radius):
    zz, yy, xx = np.indices(shape)
    return (zz - centre[0]) ** 2 + (yy - centre[1]) ** 2 + (xx - centre[2]) ** 2 <= radius**2


def test_voids_by_significance_finds_a_resolved_void_and_no_false_void():
    # two particles (r = 14 vox, grey 200) in air (grey 100), white noise σ = 40 (CNR 2.5 per voxel);
    # particle 1 holds a void of radius 4 vox (268 voxels): its ball-4 mean deficit is 100 against
    # σ₄ = 40/√257 ≈ 2.5 → 40 σ; particle 2 has none. The false-alarm rate at k = 3.7 is 1e-4 per
    # ball: over the ≈ 10⁴ centres of a particle fewer than ~1 voxel of false centres is expected, each
    # dilated by its ball (≤ 250 voxels): a void-free fraction < 0.02 bounds it loosely (11 500 voxels).
    rng = np.random.default_rng(7)
    shape = (40, 40, 80)
    p1, p2 = _sphere(shape, (20, 20, 20), 14), _sphere(shape, (20, 20, 60), 14)
    void = _sphere(shape, (20, 20, 20), 4)
    truth = np.where(p1 | p2, 200.0, 100.0)
    truth[void] = 100.0
    vol = truth + rng.normal(0, 40.0, shape)
    labels = np.zeros(shape, np.int32)
    labels[p1 & ~void] = 1
    labels[p2] = 2
    air = ~(_sphere(shape, (20, 20, 20), 16) | _sphere(shape, (20, 20, 60), 16))
    table, mask, sigma = vs.voids_by_significance(vol, labels, air)
    assert sigma[4] == pytest.approx(40.0 / np.sqrt(vs.ball(4).sum()), rel=0.15)  # 2 000 air positions only
    found = mask & void
    # the dilated centres cover the void's core; recovered share ≥ 0.7 of its 268 voxels, its false
    # part ≤ the shell of one voxel around it
    assert found.sum() / void.sum() >= 0.7
    assert (mask & p1 & ~void).sum() <= (_sphere(shape, (20, 20, 20), 5) & ~void).sum()
    vf = dict(zip(table.label, table.void_fraction, strict=True))
    true_vf = void.sum() / p1.sum()
    assert vf[1] == pytest.approx(true_vf, abs=0.5 * true_vf)
    assert vf[2] < 0.02
