"""Read an 8-bit reconstructed nano-CT volume memory-mapped or slab-wise (HDF5, TIFF, .npy).

The paper's volume is 2560 × 2560 × 960 voxels of 8 bits (6.3 GB): it is never copied whole.
:func:`open_volume` returns a ``numpy.memmap`` (read-only) whenever the file stores the voxels
contiguously and uncompressed (``.npy``, uncompressed HDF5 dataset, uncompressed contiguous TIFF);
otherwise (compressed or chunked HDF5, compressed TIFF) it returns a :class:`SlabReader` that reads
``z``-slabs on demand. Both support ``shape``, ``dtype``, ``ndim`` and slicing; :func:`iter_slabs`
walks either in slabs of bounded memory. Input files are opened read-only and never modified.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np

from helpers.provenance import file_sha256  # noqa: F401 (re-exported: volume_io.file_sha256)


def validate_volume(volume, name: str = "volume") -> None:
    """Raise ``ValueError`` unless ``volume`` is a 3-D 8-bit unsigned array(-like)."""
    shape = getattr(volume, "shape", None)
    dtype = getattr(volume, "dtype", None)
    if shape is None or dtype is None:
        raise ValueError(f"{name} must be an array with shape and dtype, got {type(volume).__name__}")
    if len(shape) != 3:
        raise ValueError(
            f"{name} must be 3-D (z, y, x), got shape {tuple(shape)}; stack the slices into one volume"
        )
    if np.dtype(dtype) != np.uint8:
        raise ValueError(
            f"{name} must be 8-bit unsigned (uint8) like the paper's 32→8-bit converted volume, got "
            f"{np.dtype(dtype)}; convert it first, e.g. np.clip((v - lo) / (hi - lo) * 255, 0, 255)"
            ".astype(np.uint8) with lo, hi the grey range you trust"
        )
    if min(shape) < 1:
        raise ValueError(f"{name} is empty: shape {tuple(shape)}")


class SlabReader:
    """Lazy read-only view of an HDF5 dataset or a TIFF stack, read in ``z``-slabs when sliced."""

    def __init__(self, path: Path, dataset: str | None, shape, dtype, reader):
        self.path = Path(path)
        self.dataset = dataset
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)
        self._reader = reader  # callable(z0, z1) -> ndarray

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        zkey = key[0] if key else slice(None)
        if isinstance(zkey, (int, np.integer)):
            z0 = int(zkey) % self.shape[0]
            return self._reader(z0, z0 + 1)[0][key[1:]]
        if not isinstance(zkey, slice) or zkey.step not in (None, 1):
            raise KeyError(f"SlabReader supports z as an integer or a contiguous slice, got {zkey!r}")
        z0, z1, _ = zkey.indices(self.shape[0])
        return self._reader(z0, z1)[(slice(None),) + tuple(key[1:])]

    def __array__(self, dtype=None, copy=None):
        data = self._reader(0, self.shape[0])
        return data if dtype is None else data.astype(dtype)

    def __repr__(self):
        return f"SlabReader({self.path.name}:{self.dataset or ''}, shape={self.shape}, dtype={self.dtype})"


def _collect_3d(found: list):
    import h5py

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.ndim == 3:
            found.append(name)

    return visit


def _open_hdf5(path: Path, dataset: str | None):
    import h5py

    with h5py.File(path, "r") as f:
        if not bool(f.attrs.get("complete", True)):
            raise OSError(
                f"{path.name} is incomplete (attribute complete = False: the run that wrote it did not "
                "finish); finish or re-run it"
            )
        if dataset is None:
            found = []
            f.visititems(_collect_3d(found))
            if len(found) != 1:
                raise KeyError(
                    f"{path.name}: give the dataset of the volume (dataset=... or --dataset); 3-D datasets "
                    f"found: {found or 'none'}"
                )
            dataset = found[0]
        if dataset not in f:
            raise KeyError(f"{path.name}: no dataset {dataset!r}; top-level keys: {list(f.keys())}")
        ds = f[dataset]
        validate_volume(ds, f"{path.name}:{dataset}")
        offset = ds.id.get_offset()
        contiguous = ds.chunks is None and ds.compression is None and offset is not None
        shape, dtype = ds.shape, ds.dtype
    if contiguous:
        return np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape)

    def read(z0, z1, _path=path, _name=dataset):
        with h5py.File(_path, "r") as fh:
            return fh[_name][z0:z1]

    return SlabReader(path, dataset, shape, dtype, read)


def _open_tiff(path: Path):
    import tifffile

    try:
        arr = tifffile.memmap(path, mode="r")
        validate_volume(arr, path.name)
        return arr
    except ValueError as err:
        if "must be" in str(err):
            raise
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        shape, dtype = series.shape, series.dtype
    validate_volume(SimpleNamespace(shape=shape, dtype=dtype), path.name)

    def read(z0, z1, _path=path):
        return tifffile.imread(_path, key=range(z0, z1)).reshape((z1 - z0,) + tuple(shape[1:]))

    return SlabReader(path, None, shape, dtype, read)


def open_volume(path, dataset: str | None = None):
    """Open an 8-bit 3-D volume without loading it: ``numpy.memmap`` or :class:`SlabReader`.

    Parameters
    ----------
    path : ``.h5``/``.hdf5``/``.nxs``, ``.tif``/``.tiff`` (one multi-page stack) or ``.npy``
    dataset : HDF5 dataset path; may be omitted when the file holds exactly one 3-D dataset

    Raises
    ------
    OSError  file missing or unreadable;  KeyError  HDF5 dataset not found;
    ValueError  not 3-D or not uint8 (with the conversion to apply).
    """
    path = Path(path)
    if not path.is_file():
        raise OSError(f"volume file {path} not found")
    suffix = path.suffix.lower()
    if suffix in (".h5", ".hdf5", ".nxs", ".hdf"):
        return _open_hdf5(path, dataset)
    if suffix in (".tif", ".tiff"):
        return _open_tiff(path)
    if suffix == ".npy":
        arr = np.load(path, mmap_mode="r")
        validate_volume(arr, path.name)
        return arr
    raise OSError(f"{path.name}: unknown volume format {suffix!r}; use HDF5 (.h5), TIFF stack (.tif) or .npy")


def iter_slabs(volume, slab: int = 64):
    """Yield ``(z0, block)`` with ``block = volume[z0:z0+slab]`` (memory: one slab)."""
    if slab < 1:
        raise ValueError(f"slab must be ≥ 1 slice, got {slab}")
    for z0 in range(0, volume.shape[0], slab):
        yield z0, np.asarray(volume[z0 : z0 + slab])


