"""Streaming reduction (helpers.sxdm.reduce) and the sxdm-maps command on forward-model BLISS files.

The forward model (helpers.synthetic.sxdm_scan) keeps the exact footprint-weighted mean Q of every scan
point, which is what a 3-D centre of mass measures; the reduction must recover it to within its own
counting-statistics error (reported per point in ``q_uncertainty``).
"""

import dataclasses

import h5py
import numpy as np
import pytest

from helpers.cli import main as cli_main
from helpers.sxdm import frames as F
from helpers.sxdm import io as sxio
from helpers.sxdm import maps as M
from helpers.sxdm import reduce as R
from helpers.synthetic import sxdm_model as SM
from helpers.synthetic import sxdm_scan as SS


def _write(tmp_path_factory, name, **settings):
    particle = SM.compact_striped_particle(np.random.default_rng(1))
    base = dict(n_fast=8, n_slow=8, start_um=(0.4, 0.4), step_um=(0.45, 0.45), drift_um_per_eta=0.0,
                position_jitter_um=0.0)
    base.update(settings)
    sim = SS.simulate_scan(particle, SS.ScanSettings(**base), np.random.default_rng(2))
    path = SS.write_simulation(sim, tmp_path_factory.mktemp(name) / "scan.h5", external_frames=False)
    return path, sim


@pytest.fixture(scope="module")
def scan(tmp_path_factory):
    return _write(tmp_path_factory, "scan")


def _z_scores(maps, truth):
    """Error of Q along each sample axis divided by the reported counting error, over the mask."""
    m = maps.mask & ((maps.flags & ~np.uint16(M.FLAG_BITS["split_peak"])) == 0)
    return ((maps.q - truth.mean_q) / maps.q_uncertainty)[m]


@pytest.mark.parametrize("method", ["com", "gauss"])
def test_recovers_truth_within_counting_error(scan, method):
    """Q per point within its reported counting σ: RMS z-score ≤ 2 on every axis.

    The truth is the footprint-weighted mean Q; a peak made of many cells is not exactly Gaussian
    (the fit measures its mode-like centre) and the detector integrates over pixels, so we allow up to
    twice the pure counting error (measured: 1.0–1.3 on a 20 × 20 scan). Also checks the strain RMSE
    is below 3e-5 (10 × smaller than the particle's strain range, 4e-4).
    """
    path, sim = scan
    maps = R.reduce(path, method=method, progress=False)
    z = _z_scores(maps, sim.truth)
    assert len(z) >= 15
    assert np.all(np.sqrt(np.mean(z**2, axis=0)) < 2.0)
    d_true = 2 * np.pi / np.linalg.norm(sim.truth.mean_q, axis=-1)
    strain_err = (maps.strain - (d_true / maps.reference_d - 1))[maps.mask]
    assert np.sqrt(np.mean(strain_err**2)) < 3e-5


def test_results_file_and_cli(scan, tmp_path, capsys):
    """The CLI writes a complete /maps file whose contents equal reduce(); provenance is stored."""
    path, _ = scan
    out = tmp_path / "maps.h5"
    assert cli_main(["sxdm-maps", str(path), "--out", str(out), "--method", "com", "--quiet"]) == 0
    assert "points" in capsys.readouterr().out
    back = M.read_maps(out)
    direct = R.reduce(path, method="com", progress=False)
    np.testing.assert_array_equal(back.q, direct.q)
    prov = M.read_provenance(out)
    assert prov["complete"] and prov["input_sha256"] == M.file_sha256(path)
    with h5py.File(out) as h5:
        assert h5["maps/q"].attrs["units"] == "1/angstrom" and h5["maps"].attrs["method"] == "com"


def test_chunking_does_not_change_results(scan):
    """Chunks of 5 points give exactly the one-chunk result (each point is analysed independently)."""
    path, _ = scan
    a = R.reduce(path, method="com", points_per_chunk=5, progress=False, background=1e-4)
    b = R.reduce(path, method="com", points_per_chunk=64, progress=False, background=1e-4)
    np.testing.assert_array_equal(a.q, b.q)
    assert F.chunk_size_for(64, 30, 64, 64) >= 1
    with pytest.raises(ValueError, match="memory limit"):
        F.chunk_size_for(1, 40, 516, 516)


def test_crash_leaves_no_complete_file(scan, tmp_path, monkeypatch):
    """If the reduction fails after reading, neither the output nor a temporary file remains."""
    path, _ = scan
    out = tmp_path / "maps.h5"

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(h5py.Group, "create_dataset", boom)
    with pytest.raises(RuntimeError):
        R.reduce(path, out, method="com", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_nan_monitor_is_flagged(scan):
    """A NaN monitor value makes that point 'no_data' (NaN Q with a flag), never a silent NaN."""
    path, _ = scan
    series = sxio.open_sxdm_series(path)
    monitor = series.monitor.copy()
    point = 27
    monitor[5, point] = np.nan
    series = dataclasses.replace(series, monitor=monitor)
    maps = R.reduce(series, method="com", progress=False)
    j, i = divmod(point, series.scan_shape[1])
    assert maps.flags[j, i] & M.FLAG_BITS["no_data"] and np.isnan(maps.q[j, i]).all()
    assert not maps.mask[j, i]


def test_truncated_rocking_range_flagged(tmp_path_factory):
    """Only the first 12 of 30 eta steps: the particle's peaks run past the last eta and are flagged."""
    theta = 7.52
    path, _ = _write(tmp_path_factory, "cut", n_fast=4, n_slow=4, start_um=(1.2, 1.2),
                     eta_deg=theta + 0.025 * (np.arange(12) - 14.5))
    maps = R.reduce(path, method="com", progress=False, min_counts=5)
    assert maps.flagged("truncated_rocking")[maps.mask].mean() > 0.5


def test_bad_inputs(scan, tmp_path):
    """Missing file, reference d ≤ 0, an even median kernel, bad --roi: clear errors."""
    path, _ = scan
    with pytest.raises(OSError, match="does not exist"):
        R.reduce(tmp_path / "nope.h5", progress=False)
    with pytest.raises(ValueError, match="reference d"):
        R.reduce(path, reference_d=0.0, progress=False)
    with pytest.raises(ValueError, match="odd size"):
        R.reduce(path, median_size=2, progress=False)
    with pytest.raises(ValueError, match="method"):
        R.reduce(path, method="fit", progress=False)
    assert cli_main(["sxdm-maps", str(path), "--out", str(tmp_path / "m.h5"), "--roi", "1,2,3"]) == 2
    assert cli_main(["sxdm-maps", str(path), "--out", str(path)]) == 2


def test_options_are_checked_before_any_file_is_read(tmp_path):
    """ReduceOptions refuses bad values on creation (the input path here does not even exist), is
    frozen, and a known drift array is stored as (dx, dy) pairs."""
    for bad, match in (({"method": "fit"}, "method"), ({"reference_d": -1.0}, "reference d"),
                       ({"median_size": 4}, "odd size"), ({"background": -0.5}, "background"),
                       ({"drift": "fix"}, "drift"), ({"points_per_chunk": 0}, "points_per_chunk")):
        with pytest.raises(ValueError, match=match):
            R.ReduceOptions(**bad)
        with pytest.raises(ValueError, match=match):  # before the missing file is noticed
            R.reduce(tmp_path / "missing.h5", progress=False, **bad)
    opts = R.ReduceOptions(drift=np.full((3, 2), 0.01))
    assert opts.drift_mode == "given" and opts.given_drift_um.shape == (3, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        opts.method = "com"


def test_options_object_is_written_into_the_parameters(scan):
    """reduce(path, options) uses the options given (here: COM, no hot-pixel search, a fixed
    background) and writes them into the maps' parameters."""
    path, _ = scan
    opts = R.ReduceOptions(method="com", background=1e-4, hot_pixels=False, window_sigma=None, drift="off")
    maps = R.reduce(path, options=opts, progress=False)
    assert {k: maps.params[k] for k in opts.as_params()} == opts.as_params()
    assert maps.params["background_counts_per_px"] == 1e-4 and maps.params["hot_pixels_detected"] == 0
    assert maps.params["window_sigma"] == "none" and maps.params["drift_mode"] == "off"


def test_all_zero_frames_raise(tmp_path_factory):
    """A scan whose every frame is zero (no particle, no background, no hot pixels) raises ValueError."""
    path, _ = _write(tmp_path_factory, "zero", n_fast=3, n_slow=3, counts_per_um=0.0,
                     background_per_px=0.0, n_hot=0)
    with pytest.raises(ValueError, match="no scan point has usable counts"):
        R.reduce(path, progress=False)


def test_median_filter_really_filters():
    """A 3 × 3 median removes an isolated hot pixel; silx's 2 × 2 medfilt2d (XSOCS) changes nothing."""
    frame = np.zeros((1, 1, 9, 9), np.float32)
    frame[0, 0, 4, 4] = 1000.0
    assert F.median_filter_frames(frame, 3).max() == 0.0
    from silx.image import medianfilter as silx_medfilt  # silx comes with nabu (core)

    img = np.random.default_rng(0).poisson(5.0, (16, 16)).astype(np.float32)
    np.testing.assert_array_equal(silx_medfilt.medfilt2d(img, (2, 2)), img)


def test_peak_cut_by_the_detector_roi_is_flagged(scan):
    """A ROI whose first row is the Bragg peak's row (the peak runs off the detector, as for the paper's
    particle 4): the particle's points are flagged truncated_detector, not silently biased."""
    path, sim = scan
    row0 = int(round(np.nanmedian(sim.truth.peak_row_px)))
    maps = R.reduce(path, roi=(row0, 342, 164, 228), method="com", progress=False)
    assert maps.flagged("truncated_detector")[maps.mask].mean() > 0.8


def test_single_eta_warns_and_flags(scan):
    """A series with one rocking angle cannot resolve Q along the rocking direction: a warning, and
    every point carries truncated_rocking."""
    path, _ = scan
    full = sxio.open_sxdm_series(path)
    one = sxio.open_sxdm_series(path, scans=[full.scans[15]])
    with pytest.warns(UserWarning, match="single eta"):
        maps = R.reduce(one, method="com", progress=False, min_counts=1)
    usable = (maps.flags & M.FLAG_BITS["no_data"]) == 0
    assert np.all(maps.flagged("truncated_rocking")[usable])


def test_xsocs_master_file_gives_the_same_maps(scan, tmp_path):
    """INPUT may be an XSOCS master file (make_xsocs_links of the same BLISS file): same frames and
    geometry, but no pixel mask: the hot pixels are found from the data, and with no background
    subtraction (dead pixels are then irrelevant) the Q maps agree to 1e-12 Å⁻¹."""
    pytest.importorskip("xsocs")  # in the `test` extra CI installs; skip only on a bare core install
    from xsocs.io.bliss import make_xsocs_links

    path, _ = scan
    master = make_xsocs_links(str(path), str(tmp_path / "xsocs"))
    a = R.reduce(master, method="com", progress=False, background=0.0)
    b = R.reduce(path, method="com", progress=False, background=0.0)
    assert a.params["hot_pixels_detected"] > 0 and b.params["hot_pixels_detected"] == 0
    np.testing.assert_allclose(a.q, b.q, rtol=1e-12, atol=1e-12)  # Å⁻¹: XSOCS stores q to ~1e-15
    np.testing.assert_array_equal(a.flags, b.flags)
