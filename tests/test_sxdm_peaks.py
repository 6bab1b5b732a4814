"""Per-point 3-D peak analysis (helpers.sxdm.peaks) on analytic Gaussian peaks.

The peaks are sampled on the real pixel-q grid of ID01 (helpers.sxdm.geometry: NMC 003 at 1.24 Å,
1.6 m, 55 µm pixels, 64² ROI, 30 eta steps of 0.01°) with Poisson noise, so every tolerance follows
from counting statistics: for N counts the centre error is σ/√N per axis, which the estimators must
both reach and report.
"""

import numpy as np
import pytest

from helpers.sxdm import geometry as G
from helpers.sxdm import peaks as P
from helpers.sxdm import qspace as Q
from helpers.sxdm.maps import FLAG_BITS

SIGMA = np.array([5e-4, 5e-4, 4e-4])  # Å⁻¹ along X (rocking), Y (ring), Z (2θ)
N_COUNTS = 2000.0
BACKGROUND = 0.01  # counts per pixel per frame


@pytest.fixture(scope="module")
def grid():
    """Pixel q of a 30-eta × 64 × 64 ROI around NMC 003, in the peak frame relative to the centre."""
    wavelength = 1.24e-10
    eta0, two_theta = G.detector_angles_for_d(4.738, wavelength)
    etas = eta0 + (np.arange(30) - 14.5) * 0.01
    q = G.pixel_q_vectors(etas, 0, 0, two_theta, wavelength, 1.6, 55e-6, (258, 258), (516, 516),
                          (226, 290, 226, 290))
    q0 = q[15, 32, 32]
    frame = G.peak_frame_axes(q0)
    return (q - q0) @ frame.T


def _peaks(q_frame, centres, sigma=SIGMA, counts=N_COUNTS, background=BACKGROUND, rng=None):
    """Expected counts of Gaussians of ``counts`` photons at ``centres`` (n, 3) + flat background.

    A pixel collects the intensity density times its q-volume (its Jacobian), as on a real detector.
    """
    volumes = P.pixel_volumes(q_frame)
    amp = counts / ((2 * np.pi) ** 1.5 * np.prod(sigma))
    arg = (((q_frame[None] - centres[:, None, None, None, :]) / sigma) ** 2).sum(-1)
    lam = amp * volumes * np.exp(-0.5 * arg) + background
    return lam if rng is None else rng.poisson(lam).astype(np.float32)


@pytest.fixture(scope="module")
def sample(grid):
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 3e-4, (48, 3))
    return centres, _peaks(grid, centres, rng=rng)


def test_noise_free_centre_is_exact(grid):
    """Without noise the whole-data 3-D moments return the centre to 1e-9 Å⁻¹ (float64 rounding);
    the 4σ-box moments and the fit to 1e-3 σ (the box is centred on the maximum to ±0.5 px, so it
    cuts the tails asymmetrically by at most that much: a strain error < 3e-7)."""
    centres = np.array([[1e-4, -2e-4, 5e-5], [0.0, 0.0, 0.0]])
    lam = _peaks(grid, centres)
    res = P.analyse_peaks(lam, grid, background=BACKGROUND, method="com", window_sigma=None)
    np.testing.assert_allclose(res.centre, centres, atol=1e-9)
    for method in ("com", "gauss"):
        res = P.analyse_peaks(lam, grid, background=BACKGROUND, method=method)
        np.testing.assert_allclose(res.centre, centres, atol=1e-3 * SIGMA.min())
        assert not res.flags.any()


@pytest.mark.parametrize("method", ["com", "gauss"])
def test_centre_error_matches_counting_statistics(grid, sample, method):
    """Errors are unbiased and equal to the reported counting σ (≈ σ_peak/√N = 1.1e-5 Å⁻¹).

    With 48 points × 3 axes, the RMS of (error / reported σ) is 1 ± 0.05 for correct σ's; we allow
    0.75–1.3 (≥ 5 standard errors). The mean error on each axis must be within 4 σ/√48.
    The reported σ itself must be close to the ideal σ_peak/√N (within 40 %: the box background
    adds to it).
    """
    centres, frames = sample
    res = P.analyse_peaks(frames, grid, background=BACKGROUND, method=method)
    assert not (res.flags & ~np.uint16(0)).any()
    err = res.centre - centres
    z = err / res.centre_error
    assert 0.75 < np.sqrt(np.mean(z**2)) < 1.3
    assert np.all(np.abs(err.mean(axis=0)) < 4 * res.centre_error.mean(axis=0) / np.sqrt(len(err)))
    ideal = SIGMA / np.sqrt(N_COUNTS)
    np.testing.assert_allclose(res.centre_error.mean(axis=0), ideal, rtol=0.4)


def test_widths_recovered(grid, sample):
    """Gaussian σ along X, Y, Z within 1.5 % + 4 standard errors of the truth.

    The 1.5 % covers the detector-block averaging of the fit (≤ b²/12 px² with b ≤ σ/3 px: < 0.5 %
    in σ) and the O(1/N) bias of the MLE. The box moments (4σ box) must be within 3 %.
    """
    _, frames = sample
    gauss = P.analyse_peaks(frames, grid, background=BACKGROUND, method="gauss")
    com = P.analyse_peaks(frames, grid, background=BACKGROUND, method="com")
    for res, rel in ((gauss, 0.015), (com, 0.03)):
        mean = res.sigma.mean(axis=0)
        sem = res.sigma.std(axis=0) / np.sqrt(len(res.sigma))
        assert np.all(np.abs(mean - SIGMA) < rel * SIGMA + 4 * sem), (mean, SIGMA)


def test_gauss_not_worse_than_com(grid, sample):
    """The Poisson fit reaches the Cramér–Rao bound, so its RMS error is ≤ the box COM's (+10 %)."""
    centres, frames = sample
    rms = {m: np.sqrt(np.mean((P.analyse_peaks(frames, grid, background=BACKGROUND, method=m).centre
                               - centres) ** 2)) for m in ("com", "gauss")}
    assert rms["gauss"] <= 1.1 * rms["com"]


def test_flags_for_hard_cases(grid):
    """Truncated rocking curve, peak at the detector edge, split peak, low counts, all-zero point."""
    rng = np.random.default_rng(1)
    q_eta_last = grid[-1, 32, 32]
    q_edge = grid[15, 32, 0]  # first column of the ROI (peak centred on the detector edge)
    centres = np.array([q_eta_last, q_edge, [0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    frames = _peaks(grid, centres, rng=rng)
    # point 2: two equal peaks 6σ apart along Y
    frames[2] = rng.poisson(
        0.5 * _peaks(grid, np.array([[0, -1.5e-3, 0], [0, 1.5e-3, 0]]), background=0).sum(0) + BACKGROUND
    )
    frames[3] = rng.poisson(_peaks(grid, centres[3:4], counts=20.0))[0]  # 20 photons
    frames[4] = 0.0
    res = P.analyse_peaks(frames, grid, background=BACKGROUND, method="gauss")
    bit = FLAG_BITS
    assert res.flags[0] & bit["truncated_rocking"] and not res.flags[0] & bit["truncated_detector"]
    assert res.flags[1] & bit["truncated_detector"]
    assert res.flags[2] & bit["split_peak"]
    assert res.flags[3] & bit["low_counts"]
    assert res.flags[4] & bit["no_data"] and np.isnan(res.centre[4]).all()


def test_no_false_split_or_truncation(grid, sample):
    """Single Gaussians 4σ or more inside the data are never flagged (48 noisy peaks)."""
    _, frames = sample
    res = P.analyse_peaks(frames, grid, background=BACKGROUND, method="com")
    assert not res.flags.any()


def test_saturated_pixels_excluded_and_flagged(grid):
    """Pixels at the saturation level are left out of the sums and the point is flagged."""
    frames = _peaks(grid, np.zeros((1, 3)), counts=2e5, background=0)
    top = frames.max()
    res = P.analyse_peaks(frames, grid, method="com", saturation=0.9 * top)
    assert res.flags[0] & FLAG_BITS["saturated"]
    assert res.raw_counts[0] < frames.sum()


def test_monitor_normalisation_and_nan_monitor(grid):
    """Halving one frame's monitor (gain 2) while halving its counts leaves the centre unchanged;
    a NaN monitor gives a 'no_data' point, never a silent NaN."""
    lam = _peaks(grid, np.zeros((2, 3)), background=0)
    gain = np.ones((2, 30))
    lam[0, 10] *= 0.5
    gain[0, 10] = 2.0
    gain[1, 3] = np.nan
    res = P.analyse_peaks(lam, grid, monitor_gain=gain, method="com", window_sigma=None)
    np.testing.assert_allclose(res.centre[0], 0.0, atol=1e-9)
    assert res.flags[1] & FLAG_BITS["no_data"]


def test_bad_shapes(grid):
    """Frames, q grid, mask and monitor shapes that disagree raise ValueError naming both shapes."""
    frames = np.zeros((1, 30, 64, 64), np.float32)
    with pytest.raises(ValueError, match="n_points, n_eta"):
        P.analyse_peaks(frames[0], grid)
    with pytest.raises(ValueError, match="pixel q array"):
        P.analyse_peaks(frames, grid[:, :32])
    with pytest.raises(ValueError, match="pixel mask"):
        P.analyse_peaks(frames, grid, pixel_ok=np.ones((32, 32), bool))
    with pytest.raises(ValueError, match="monitor gain"):
        P.analyse_peaks(frames, grid, monitor_gain=np.ones((1, 3)))
    with pytest.raises(ValueError, match="method"):
        P.analyse_peaks(frames, grid, method="fit")


def test_grid_matches_unbinned_com_within_bin_size(grid):
    """XSOCS-style gridding (50 × 100 × 100 over the ROI) keeps every count and its projection COM
    agrees with the unbinned 3-D COM within half a bin (the largest shift binning can cause)."""
    centre = np.array([[1e-4, -2e-4, 5e-5]])
    lam = _peaks(grid, centre, background=0.0)[0]
    qg = Q.make_grid(grid)
    assert qg.shape == (50, 100, 100) and qg.hits.sum() == lam.size
    vol = Q.grid_frames(qg, lam)
    assert np.nansum(vol * qg.hits) == pytest.approx(lam.sum())
    bin_size = np.array([e[1] - e[0] for e in qg.edges])
    assert np.all(np.abs(Q.projection_com(qg, vol) - centre[0]) < 0.5 * bin_size)
    with pytest.raises(ValueError, match="grid shape"):
        Q.make_grid(grid, (50, 0, 100))
    with pytest.raises(ValueError, match="frames have shape"):
        Q.grid_frames(qg, lam[:3])
