"""BLISS writer/reader round trip, XSOCS acceptance, file-layout variants and every bad-input case."""

import shutil

import h5py
import numpy as np
import pytest

from helpers.sxdm import io
from helpers.synthetic import sxdm_model, sxdm_scan
from helpers.synthetic.bliss_writer import write_bliss_sxdm


@pytest.fixture(scope="module")
def small_sim():
    particle = sxdm_model.compact_striped_particle(np.random.default_rng(1), step_um=0.04)
    settings = sxdm_scan.ScanSettings(
        n_fast=6, n_slow=5, start_um=(1.5, 1.5), eta_deg=np.linspace(7.3, 7.7, 5), n_hot=3, n_dead=4
    )
    sim = sxdm_scan.simulate_scan(particle, settings, np.random.default_rng(2))
    return sim, sim.frames()


@pytest.fixture(scope="module")
def written(small_sim, tmp_path_factory):
    """One written file shared by the tests; tests that damage it work on a copy."""
    sim, _ = small_sim
    return sxdm_scan.write_simulation(sim, tmp_path_factory.mktemp("sample") / "sample_0001.h5")


@pytest.mark.parametrize("external", [True, False])
def test_round_trip_gives_back_every_field_and_frame(small_sim, tmp_path, external, monkeypatch):
    """Everything written comes back identical (exact equality: integers and float64 stored as such)."""
    sim, frames = small_sim
    s = sim.settings
    path = sxdm_scan.write_simulation(sim, tmp_path / "d" / "ds.h5", external_frames=external)
    monkeypatch.chdir(tmp_path)  # relative VDS paths resolve from the file, not the working directory
    series = io.open_sxdm_series(path)
    assert series.kind == "bliss" and series.detector == "mpx1x4"
    assert series.scans == [f"{k + 1}.1" for k in range(5)]
    np.testing.assert_array_equal(series.eta_deg, s.eta_deg)
    np.testing.assert_array_equal(series.delta_deg, np.full(5, s.delta_deg))
    np.testing.assert_array_equal(series.phi_deg, 0.0)
    np.testing.assert_array_equal(series.nu_deg, 0.0)
    assert series.wavelength_m == s.wavelength_m and series.distance_m == s.distance_m
    assert series.pixel_size_m == s.pixel_size_m
    assert series.beam_center_px == pytest.approx(s.beam_center_px, abs=1e-12)
    assert series.roi == s.roi and series.detector_shape == (516, 516)
    r0, r1, c0, c1 = s.roi
    np.testing.assert_array_equal(series.pixel_mask, sim.pixel_mask[r0:r1, c0:c1])
    assert series.pixel_mask.sum() == 7  # 3 hot + 4 dead drawn inside the ROI
    assert series.scan_shape == (5, 6)
    np.testing.assert_array_equal(series.positions_um[..., 0], sim.x_um)
    np.testing.assert_array_equal(series.positions_um[..., 1], sim.y_um)
    np.testing.assert_array_equal(series.monitor, sim.monitor)
    assert series.monitor_name == "mon1"
    flat = frames.reshape(-1, *frames.shape[2:])
    for sl, chunk in series.iter_chunks(7):
        assert chunk.dtype == np.float32
        np.testing.assert_array_equal(chunk, flat[sl])
    # the same frames under a user ROI (full-detector pixels)
    sub = io.open_sxdm_series(path, roi=(r0 + 10, r0 + 30, c0 + 5, c0 + 45))
    np.testing.assert_array_equal(sub.read_points(slice(3, 9)), flat[3:9, :, 10:30, 5:45])
    np.testing.assert_array_equal(sub.q_vectors(), series.q_vectors()[:, 10:30, 5:45])
    with h5py.File(path) as h5:
        assert h5["1.1/title"][()].decode().startswith("asxdm( pix, 1.5, ")
        assert h5["1.1/instrument/monochromator/WaveLength"].attrs["units"] == "m"
        assert h5["1.1/instrument/mpx1x4/image"].is_virtual == external


def test_xsocs_accepts_the_file_and_converts_q_like_the_reader(written, tmp_path):
    """make_xsocs_links builds its master/entry files; XSOCS then sees the same frames, positions and
    geometry, and its own q conversion (xrayutilities, channels per degree) agrees with ours to 1e-6.

    XSOCS turns tan(1°)·L/p channels per degree back into a pixel width 2·tan(0.5°)/chpdeg: a 7.6e-5
    relative change of the pixel angle, i.e. < 2e-7 relative in Q at ±32 px from the direct beam.
    """
    pytest.importorskip("xsocs")  # in the `test` extra CI installs; skip only on a bare core install
    from xsocs.io.bliss import make_xsocs_links
    from xsocs.io.XsocsH5 import XsocsH5
    from xsocs.process.qspace.QSpaceConverter import qspace_conversion

    master = make_xsocs_links(str(written), str(tmp_path / "xsocs"))
    series = io.open_sxdm_series(written)
    xs = XsocsH5(master)
    entries = xs.entries()
    assert len(entries) == 5
    entry = entries[2]
    assert xs.n_images(entry) == 30 and tuple(xs.image_size(entry)) == series.frame_shape
    positions = xs.scan_positions(entry)
    np.testing.assert_array_equal(positions.pos_0, series.positions_um[2, :, 0])
    assert tuple(positions.shape) == (6, 5)
    with h5py.File(master) as h5:
        frames = h5[f"{entry}/measurement/image/data"][:4]
    np.testing.assert_array_equal(frames, series.read_points(slice(0, 4))[:, 2])
    q_xsocs = qspace_conversion(
        series.frame_shape,
        xs.direct_beam(entry),
        xs.chan_per_deg(entry),
        xs.beam_energy(entry),
        series.phi_deg,
        series.eta_deg,
        series.nu_deg,
        series.delta_deg,
    )
    q_ours = series.q_vectors()
    rel = np.abs(q_xsocs - q_ours).max() / np.linalg.norm(q_ours, axis=-1).min()
    assert rel < 1e-6
    # and our reader opens the XSOCS master file: same frames, positions and q (distance set to 1 m)
    from_xsocs = io.open_sxdm_series(master)
    assert from_xsocs.kind == "xsocs"
    np.testing.assert_array_equal(from_xsocs.eta_deg, series.eta_deg)
    np.testing.assert_array_equal(from_xsocs.read_points(slice(0, 30)), series.read_points(slice(0, 30)))
    np.testing.assert_array_equal(from_xsocs.positions_um, series.positions_um)
    np.testing.assert_allclose(from_xsocs.q_vectors(), q_ours, rtol=1e-12, atol=1e-12)


def test_layout_variants_adc_names_energy_only_and_detector_alias(small_sim, tmp_path):
    """adcX/adcY positions, energy instead of wavelength, another detector alias: same series."""
    sim, frames = small_sim
    path = sxdm_scan.write_simulation(
        sim, tmp_path / "v" / "v.h5", position_names=("adcY", "adcX"), detector="mpxgaas"
    )
    with h5py.File(path, "a") as h5:
        for scan in h5:
            del h5[f"{scan}/instrument/monochromator/WaveLength"]
    series = io.open_sxdm_series(path)
    assert series.detector == "mpxgaas"
    assert series.wavelength_m == pytest.approx(sim.settings.wavelength_m, rel=1e-12)
    np.testing.assert_array_equal(series.positions_um[..., 0], sim.x_um)
    np.testing.assert_array_equal(series.read_points(slice(0, 30)), frames.reshape(30, *frames.shape[2:]))


def _copy(written, tmp_path):
    dest = tmp_path / "copy"
    shutil.copytree(written.parent, dest)
    return dest / written.name


def test_missing_dataset_is_named_and_a_geometry_override_supplies_it(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        del h5["3.1/instrument/mpx1x4/distance"]
    with pytest.raises(KeyError, match=r"3\.1/instrument/mpx1x4/distance"):
        io.open_sxdm_series(path)
    series = io.open_sxdm_series(path, geometry={"distance_m": 1.5, "beam_center_px": (300.0, 200.0)})
    assert series.distance_m == 1.5 and series.beam_center_px == (300.0, 200.0)
    with pytest.raises(KeyError, match="unknown geometry"):
        io.open_sxdm_series(path, geometry={"distance": 1.5})


def test_missing_monochromator_is_named(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        del h5["2.1/instrument/monochromator"]
    with pytest.raises(KeyError, match="monochromator"):
        io.open_sxdm_series(path)


def test_mask_shape_disagreeing_with_frames(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        del h5["1.1/instrument/mpx1x4/pixel_mask"]
        h5["1.1/instrument/mpx1x4/pixel_mask"] = np.zeros((512, 512), np.uint8)
    with pytest.raises(ValueError, match="pixel_mask has shape"):
        io.open_sxdm_series(path)


def test_roi_outside_the_stored_frames(written):
    with pytest.raises(ValueError, match="must lie inside"):
        io.open_sxdm_series(written, roi=(0, 64, 0, 64))


def test_inconsistent_grids_in_one_series(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        del h5["4.1/title"]
        h5["4.1/title"] = "asxdm( pix, 1.5, 2.5, 6, piy, 1.5, 1.9, 5, 0.01 )"
    with pytest.raises(ValueError, match="one scan grid"):
        io.open_sxdm_series(path)
    assert io.group_sxdm_series(path) == [["1.1", "2.1", "3.1"], ["4.1"], ["5.1"]]
    assert io.open_sxdm_series(path, scans=["1.1", "2.1", "3.1"]).n_eta == 3


def test_non_sxdm_scan_is_refused(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        h5.copy("1.1", "9.1")
        del h5["9.1/title"]
        h5["9.1/title"] = "ascan eta 7 8 10 0.1"
    assert [row["is_sxdm"] for row in io.list_sxdm_scans(path)][-1] is False
    with pytest.raises(ValueError, match="9.1 is not an SXDM scan"):
        io.open_sxdm_series(path, scans=["1.1", "9.1"])
    assert io.open_sxdm_series(path).n_eta == 5  # the default series skips it


def test_truncated_detector_file(written, tmp_path):
    path = _copy(written, tmp_path)
    det = path.parent / "scan0002" / "mpx1x4_0000.h5"
    data = det.read_bytes()
    det.write_bytes(data[: len(data) // 3])
    with pytest.raises(OSError, match="scan0002"):
        io.open_sxdm_series(path)


def test_missing_detector_file(written, tmp_path):
    path = _copy(written, tmp_path)
    (path.parent / "scan0005" / "mpx1x4_0000.h5").unlink()
    with pytest.raises(OSError, match="does not exist"):
        io.open_sxdm_series(path)


def test_nan_positions(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        h5["2.1/instrument/piy_position/value"][7] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        io.open_sxdm_series(path)


def test_frame_count_disagreeing_with_title(written, tmp_path):
    path = _copy(written, tmp_path)
    with h5py.File(path, "a") as h5:
        for scan in h5:
            del h5[f"{scan}/title"]
            h5[f"{scan}/title"] = "asxdm( pix, 1.5, 2, 7, piy, 1.5, 1.9, 5, 0.01 )"
    with pytest.raises(ValueError, match="30 frames"):
        io.open_sxdm_series(path)


def test_unreadable_file_and_wrong_detector(tmp_path, written):
    bad = tmp_path / "not.h5"
    bad.write_bytes(b"not hdf5")
    with pytest.raises(OSError, match="cannot read"):
        io.open_sxdm_series(bad)
    with pytest.raises(FileNotFoundError):
        io.open_sxdm_series(tmp_path / "absent.h5")
    with pytest.raises(KeyError, match="eiger2M"):
        io.open_sxdm_series(written, detector="eiger2M")


def test_title_parser_reads_bliss_and_spec_forms():
    bliss = io.parse_sxdm_title("asxdm( pix, 0.05, 3.95, 40, piy, 0.1, 2.0, 20, 0.01 )")
    spec = io.parse_sxdm_title("kmap pix 0.05 3.95 40 piy 0.1 2.0 20 0.01")
    for grid in (bliss, spec):
        assert (grid["fast_motor"], grid["n_fast"], grid["slow_motor"], grid["n_slow"]) == (
            "pix",
            40,
            "piy",
            20,
        )
        assert grid["slow_end"] == 2.0
    with pytest.raises(ValueError, match="not an SXDM command"):
        io.parse_sxdm_title("ct 0.1")


def test_rsm_binning_keeps_every_count_and_the_centre_of_mass(written):
    """Over all good pixels the grid sums keep the total intensity exactly, and the grid's centre of
    mass matches the pixel centre of mass to within half a voxel along each axis."""
    from helpers.sxdm import rsm_view

    series = io.open_sxdm_series(written)
    q = series.q_vectors()
    frames = rsm_view.point_frames(series, 14)
    com = rsm_view.centre_of_mass_q(frames, q, series.pixel_mask)
    rsm = rsm_view.bin_rsm(frames, q, series.pixel_mask, com, shape=(20, 40, 40), peak_fraction=None)
    assert rsm.summed.sum() == pytest.approx(frames[:, ~series.pixel_mask].sum(), rel=1e-12)
    grids = np.meshgrid(*rsm.centres, indexing="ij")
    grid_com = np.array([np.sum(g * rsm.summed) for g in grids]) / rsm.summed.sum()
    half_voxel = np.array([np.diff(e)[0] / 2 for e in rsm.edges])
    assert np.all(np.abs(grid_com) <= half_voxel)
    with pytest.raises(ValueError, match="no counts"):
        rsm_view.centre_of_mass_q(np.zeros_like(frames), q, series.pixel_mask)


def test_writer_rejects_frames_and_metadata_of_the_wrong_shape(small_sim, tmp_path):
    sim, _ = small_sim
    bad_lines = ((j, np.zeros((6, 5, 10, 10), np.uint32)) for j in range(5))
    with pytest.raises(ValueError, match="scan line 0: frames have shape"):
        sxdm_scan.write_simulation(sim, tmp_path / "a" / "a.h5", frame_lines=bad_lines)
    with pytest.raises(ValueError, match="monitor has shape"):
        write_bliss_sxdm(
            tmp_path / "b.h5",
            eta_deg=[7.0],
            frame_lines=[],
            scan_shape=(1, 1),
            scan_start_um=(0, 0),
            scan_end_um=(0, 0),
            positions_um=np.zeros((1, 1, 2)),
            monitor=np.zeros((2, 1)),
            wavelength_m=1.24e-10,
            distance_m=1.6,
            pixel_size_m=55e-6,
            beam_center_px=(5, 5),
            pixel_mask=np.zeros((10, 10), bool),
        )
