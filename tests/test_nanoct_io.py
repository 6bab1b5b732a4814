"""Readers of NXtomo, Data Exchange, TIFF and EDF scans: round trips and clear errors on bad files."""

import h5py
import numpy as np
import pytest
from regenerated import assert_regenerated_equal

from helpers.nanoct import io
from helpers.synthetic import ct_projections as cp


@pytest.fixture(scope="module")
def small_scan():
    """A 2-distance scan of a small δ/β volume (three disks), with noise, as written by the simulator."""
    vol = np.zeros((6, 32, 32), np.float32)
    yy, xx = np.mgrid[0:32, 0:32]
    vol[:, (yy - 12) ** 2 + (xx - 16) ** 2 < 36] = 1.0
    angles = np.linspace(0, 2 * np.pi, 12, endpoint=False)
    return cp.simulate_scan(vol * 1e-6, vol * 1e-6 / 87, angles, distances_m=(1e-4, 2e-4), rng=0, n_flats=4)


def test_nxtomo_round_trip_keeps_every_frame_angle_and_unit(small_scan, tmp_path):
    path = cp.write_nxtomo(tmp_path / "scan.nx", small_scan)
    assert io.list_nxtomo_entries(path) == ["entry0000", "entry0001"]
    for j, entry in enumerate(["entry0000", "entry0001"]):
        scan = io.read_nxtomo(path, entry)
        assert scan.shape == small_scan.projections[j].shape
        np.testing.assert_array_equal(scan.read_projections(), small_scan.projections[j])
        np.testing.assert_array_equal(scan.read_projections(slice(2, 4)), small_scan.projections[j][:, 2:4])
        np.testing.assert_array_equal(scan.read_frames(3, 5), small_scan.projections[j][3:5])
        np.testing.assert_array_equal(scan.flats, small_scan.flats[j])
        np.testing.assert_array_equal(scan.darks, small_scan.darks[j])
        np.testing.assert_allclose(scan.angles_rad, small_scan.angles_rad, atol=1e-12)
        assert scan.distance_m == small_scan.distances_m[j]
        assert scan.pixel_size_m == pytest.approx(25e-9) and scan.energy_kev == pytest.approx(29.6)


def test_data_exchange_round_trip(small_scan, tmp_path):
    path = io.write_dataexchange(
        tmp_path / "dx.h5",
        small_scan.projections[0],
        small_scan.flats[0],
        small_scan.darks[0],
        small_scan.angles_rad,
        25e-9,
    )
    scan = io.open_scan(path)
    assert scan.format == "DataExchange"
    np.testing.assert_array_equal(scan.read_projections(slice(1, 3)), small_scan.projections[0][:, 1:3])
    np.testing.assert_allclose(scan.angles_rad, small_scan.angles_rad, atol=1e-12)
    assert scan.pixel_size_m == pytest.approx(25e-9)


@pytest.mark.parametrize("suffix", [".tif", ".edf"])
def test_tiff_and_edf_stacks_round_trip(small_scan, tmp_path, suffix):
    import fabio
    import tifffile

    def write(name, image):
        path = tmp_path / f"{name}{suffix}"
        if suffix == ".tif":
            tifffile.imwrite(path, image)
        else:
            fabio.edfimage.EdfImage(data=image).write(str(path))
        return path

    proj = [write(f"proj_{i:04d}", p) for i, p in enumerate(small_scan.projections[0])]
    flats = [write(f"ref_{i:04d}", p) for i, p in enumerate(small_scan.flats[0])]
    darks = [write(f"dark_{i:04d}", p) for i, p in enumerate(small_scan.darks[0])]
    scan = io.read_image_stack(proj, flats, darks, np.degrees(small_scan.angles_rad))
    np.testing.assert_array_equal(scan.read_projections(slice(0, 5)), small_scan.projections[0][:, 0:5])
    np.testing.assert_array_equal(scan.read_frames(2, 4), small_scan.projections[0][2:4])
    np.testing.assert_array_equal(scan.flats, small_scan.flats[0])


def test_flat_dark_correction_is_exact():
    dark = np.full((2, 3), 10.0)
    flat = np.full((2, 3), 110.0)
    proj = np.full((4, 2, 3), 60.0)
    np.testing.assert_allclose(io.flat_dark_correct(proj, flat, dark), 0.5)


def test_the_bundled_sample_opens_with_four_distances():
    from helpers.paths import data_sample

    path = data_sample("ct_powder_holotomo.h5")
    entries = io.list_nxtomo_entries(path)
    assert len(entries) == 4
    scans = [io.read_nxtomo(path, e) for e in entries]
    assert {s.shape for s in scans} == {(180, 24, 128)}
    assert [s.distance_m for s in scans] == pytest.approx([1e-4, 1.5e-4, 2.5e-4, 4e-4])


def _write_nx(path, key, data, angles):
    with h5py.File(path, "w") as f:
        det = f.create_group("entry/instrument/detector")
        det["data"] = data
        det["image_key"] = key
        f["entry/sample/rotation_angle"] = angles


def test_bad_files_get_clear_errors(tmp_path):
    frames = np.full((6, 4, 5), 100, np.uint16)
    frames[0] = 10  # dark
    # no flats
    _write_nx(tmp_path / "noflat.h5", np.array([2, 0, 0, 0, 0, 0]), frames, np.arange(6.0))
    with pytest.raises(ValueError, match="no flat"):
        io.read_nxtomo(tmp_path / "noflat.h5")
    # no darks
    _write_nx(tmp_path / "nodark.h5", np.array([1, 0, 0, 0, 0, 0]), frames, np.arange(6.0))
    with pytest.raises(ValueError, match="no dark"):
        io.read_nxtomo(tmp_path / "nodark.h5")
    # flat equal to dark somewhere
    bad = frames.copy()
    bad[1, 2, 3] = 10
    _write_nx(tmp_path / "zeroflat.h5", np.array([2, 1, 0, 0, 0, 0]), bad, np.arange(6.0))
    with pytest.raises(ValueError, match="flat ≤ dark.*row 2, column 3"):
        io.read_nxtomo(tmp_path / "zeroflat.h5")
    # angles ≠ projections (Data Exchange)
    io.write_dataexchange(tmp_path / "dx.h5", frames[2:], frames[1:2], frames[:1], np.zeros(3))
    with pytest.raises(ValueError, match="3 rotation angles for 4 projections"):
        io.open_scan(tmp_path / "dx.h5")
    # image_key length ≠ frames
    _write_nx(tmp_path / "key.h5", np.array([2, 1, 0]), frames, np.arange(6.0))
    with pytest.raises(ValueError, match="image_key has 3 values for 6 frames"):
        io.read_nxtomo(tmp_path / "key.h5")
    # neither format; missing file; missing entry; unsupported image
    with h5py.File(tmp_path / "other.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(KeyError, match="neither NXtomo"):
        io.open_scan(tmp_path / "other.h5")
    with pytest.raises(OSError, match="not found"):
        io.open_scan(tmp_path / "missing.h5")
    with pytest.raises(KeyError, match="entry 'entry9' not found"):
        io.read_nxtomo(tmp_path / "nodark.h5", "entry9")
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported image type"):
        io.read_image_stack([tmp_path / "a.png"], [], [], [0.0])
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(OSError, match="not an HDF5 file"):
        io.open_scan(tmp_path / "text.h5")


def _dataset_names(h5file) -> list[str]:
    names: list[str] = []
    h5file.visititems(lambda name, obj: names.append(name) if isinstance(obj, h5py.Dataset) else None)
    return names


@pytest.mark.slow
@pytest.mark.parametrize("writer", ["write_ct_sample", "write_ct3d_sample"])
def test_the_bundled_sample_is_regenerated_identically(tmp_path, writer):
    """`make data` rebuilds the committed NXtomo samples and their truth from their seeds, array for array
    (integers exactly, floats to float precision: numpy/BLAS builds differ in the last bits)."""
    from helpers.paths import data_sample
    from helpers.synthetic import ct_samples

    paths = getattr(ct_samples, writer)(tmp_path)
    for new in paths:
        with h5py.File(new) as a, h5py.File(data_sample(new.name)) as b:
            names = _dataset_names(a)
            assert names
            for name in names:
                assert_regenerated_equal(a[name][()], b[name][()], f"{new.name}:{name}")
