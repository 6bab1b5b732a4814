"""Reading 8-bit volumes memory-mapped or slab-wise; validation of dtype and dimensionality."""

import hashlib

import h5py
import numpy as np
import pytest
import tifffile

from helpers.nanoct import volume_io as vio


@pytest.fixture
def volume():
    return np.random.default_rng(0).integers(0, 256, (12, 16, 20), dtype=np.uint8)


def test_contiguous_hdf5_is_memory_mapped(tmp_path, volume):
    path = tmp_path / "recon.h5"
    with h5py.File(path, "w") as f:
        f["entry/volume"] = volume
    opened = vio.open_volume(path)  # the only 3-D dataset is found
    assert isinstance(opened, np.memmap) and not opened.flags.writeable
    np.testing.assert_array_equal(opened, volume)


def test_compressed_hdf5_is_read_slabwise(tmp_path, volume):
    path = tmp_path / "recon.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("v", data=volume, chunks=(4, 16, 20), compression="gzip")
        f["other"] = volume[:, :, :2].copy()
    with pytest.raises(KeyError, match="give the dataset"):
        vio.open_volume(path)
    with pytest.raises(KeyError, match="no dataset"):
        vio.open_volume(path, "missing")
    opened = vio.open_volume(path, "v")
    assert isinstance(opened, vio.SlabReader) and opened.shape == volume.shape
    np.testing.assert_array_equal(opened[3:9, 2:5], volume[3:9, 2:5])
    np.testing.assert_array_equal(opened[5], volume[5])
    blocks = list(vio.iter_slabs(opened, slab=5))
    assert [z for z, _ in blocks] == [0, 5, 10]
    np.testing.assert_array_equal(np.concatenate([b for _, b in blocks]), volume)


def test_tiff_and_npy(tmp_path, volume):
    tif = tmp_path / "recon.tif"
    tifffile.imwrite(tif, volume)
    np.testing.assert_array_equal(vio.open_volume(tif), volume)
    tif_z = tmp_path / "recon_z.tif"
    tifffile.imwrite(tif_z, volume, compression="zlib")
    opened = vio.open_volume(tif_z)
    np.testing.assert_array_equal(np.asarray(opened[2:7]), volume[2:7])
    npy = tmp_path / "recon.npy"
    np.save(npy, volume)
    assert isinstance(vio.open_volume(npy), np.memmap)


@pytest.mark.parametrize("bad, match", [(np.zeros((4, 5, 6), np.float32), "8-bit"),
                                         (np.zeros((4, 5, 6), np.uint16), "8-bit"),
                                         (np.zeros((5, 6), np.uint8), "3-D"),
                                         (np.zeros((2, 4, 5, 6), np.uint8), "3-D")])
def test_bad_volumes_raise_clear_errors(tmp_path, bad, match):
    with pytest.raises(ValueError, match=match):
        vio.validate_volume(bad)
    path = tmp_path / "bad.h5"
    with h5py.File(path, "w") as f:
        f["v"] = bad
    with pytest.raises(ValueError, match=match):
        vio.open_volume(path, "v")
    np.save(tmp_path / "bad.npy", bad)
    with pytest.raises(ValueError, match=match):
        vio.open_volume(tmp_path / "bad.npy")


def test_missing_file_unknown_format_and_checksum(tmp_path, volume):
    with pytest.raises(OSError, match="not found"):
        vio.open_volume(tmp_path / "nothing.h5")
    raw = tmp_path / "v.raw"
    raw.write_bytes(volume.tobytes())
    with pytest.raises(OSError, match="unknown volume format"):
        vio.open_volume(raw)
    assert vio.file_sha256(raw) == hashlib.sha256(volume.tobytes()).hexdigest()
    with pytest.raises(ValueError, match="slab"):
        next(vio.iter_slabs(volume, 0))
