"""The reconstruction chain as the notebooks use it: raw NXtomo scan → 8-bit volume, once, cached.

:func:`reconstructed_volume` runs the ``ct-reconstruct`` command (flat/dark → phase retrieval →
rings → FBP → 8-bit with a stored window) on a scan file and keeps the result in the workbook's cache
folder (``helpers.paths.cache_dir()``, ``NMC_CACHE_DIR``), keyed by the scan's sha256 and the chain's
parameters, so every notebook can start from the raw projections alone and a second notebook reuses
the first one's result. The cached file is written under a temporary name and renamed when complete.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from helpers.nanoct import grey, io


@dataclass
class ChainVolume:
    """A reconstructed volume: ``volume_8bit`` (z, y, x) uint8, its ``window`` (8-bit ↦ δ), the file."""

    volume_8bit: np.ndarray
    window: grey.Window
    center_px: float
    path: Path
    params: dict

    def to_32bit(self) -> np.ndarray:
        """Grey values back in δ units (centre of each 8-bit bin)."""
        return self.window.to_32bit(self.volume_8bit)


def reconstructed_volume(
    scan_path: str | Path,
    phase: str = "paganin",
    delta_beta: float = 87.0,
    ring_method: str = "filtering",
    method: str = "gridding",
    center: str | float = "auto",
    cache_folder: str | Path | None = None,
) -> ChainVolume:
    """Reconstruct ``scan_path`` with ``ct-reconstruct`` (or reuse the cached result) and read it.

    Parameters are those of the command (``--phase``, ``--delta-beta``, ``--rings``, ``--method``,
    ``--center``); ``cache_folder`` defaults to ``helpers.paths.cache_dir() / "ct_chain"``.
    """
    from helpers.nanoct import cli_reconstruct as cli
    from helpers.paths import cache_dir

    scan_path = Path(scan_path)
    if not scan_path.is_file():
        raise FileNotFoundError(f"{scan_path}: no such scan file (give an NXtomo or Data Exchange HDF5 file)")
    folder = Path(cache_folder) if cache_folder is not None else cache_dir() / "ct_chain"
    folder.mkdir(parents=True, exist_ok=True)
    argv = [
        str(scan_path), "--out", "OUT", "--phase", phase, "--delta-beta", str(delta_beta),
        "--rings", ring_method, "--method", method, "--center", str(center), "--quiet",
    ]  # fmt: skip
    key = hashlib.sha256(
        (io.file_checksum(scan_path) + json.dumps(argv[3:])).encode()
    ).hexdigest()[:16]
    out = folder / f"{scan_path.stem}-{key}.h5"
    if not out.exists():
        tmp = out.with_suffix(".part.h5")
        if tmp.exists():
            tmp.unlink()
        parser = argparse.ArgumentParser()
        cli.add_arguments(parser)
        argv[2] = str(tmp)
        cli.run(parser.parse_args(argv))
        tmp.replace(out)
    return read_volume(out)


def read_volume(path: str | Path) -> ChainVolume:
    """Read the 8-bit volume, window, centre and parameters of a ``ct-reconstruct`` output."""
    import h5py

    path = Path(path)
    with h5py.File(path, "r") as f:
        if "volume_8bit" not in f:
            raise ValueError(f"{path}: no /volume_8bit — the reconstruction did not finish; run it again")
        ds = f["volume_8bit"]
        window = grey.Window(float(ds.attrs["window_low"]), float(ds.attrs["window_high"]))
        return ChainVolume(
            volume_8bit=ds[()],
            window=window,
            center_px=float(f.attrs["center_px"]),
            path=path,
            params=json.loads(f.attrs["params"]),
        )
