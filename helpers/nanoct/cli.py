"""``nmc-workbook ct-reconstruct``: out-of-core, resumable reconstruction of a nano-CT scan into HDF5.

Two streaming passes over the input (never modified), both recorded in the output so an interrupted
run continues where it stopped:

1. **phase pass**, projection batches: flat/dark correction, (multi-distance) phase retrieval or −ln,
   written to ``/projections_retrieved`` (float32, n_proj × rows × cols, chunked per projection);
2. **slab pass**, ``--slab`` detector rows at a time: sinograms → ring removal → reconstruction →
   ``/volume`` (float32, chunked one slice each); then an 8-bit copy ``/volume_8bit`` with its window.

Peak memory (float32, B = 4 bytes): phase pass ≈ B·batch·rows·cols·(n_distances + 3) plus the flats,
darks and FFT padding of one image; slab pass ≈ B·slab·n_proj·cols·2 + B·slab·cols²·2, plus, with the
default ``--method gridding``, its NUFFT plan (≈ 90 B·n_proj·cols + 48 B·cols², 0.9 GiB at 2048 × 3203
angles; ``--method fbp`` needs none of it but is ~25× slower). Both are
independent of the number of slices; :func:`memory_bound_bytes` computes the bound that
``tests/test_nanoct_cli.py`` checks against ``tracemalloc``. Not included: the interpreter and libraries
and the one-time numba compilation of the back-projector (≈ 0.3 GB process RSS in all).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from helpers.nanoct import grey, io, phase, recon, rings


def add_arguments(parser: argparse.ArgumentParser, name: str = "ct-reconstruct") -> None:
    """Arguments of ``nmc-workbook ct-reconstruct``."""
    parser.add_argument("input", type=Path, help="NXtomo (one entry per distance) or Data Exchange HDF5 file")
    parser.add_argument("--out", type=Path, required=True, help="output HDF5 file (created or resumed)")
    parser.add_argument("--entries", nargs="*", default=None, help="NXtomo entries to use (default: all)")
    parser.add_argument(
        "--phase",
        choices=["paganin", "ctf", "none"],
        default="paganin",
        help="paganin: first distance; ctf: multi-distance CTF over all entries; none: −ln",
    )
    parser.add_argument("--delta-beta", type=float, default=87.0, help="δ/β of the retrieval (paper: 87)")
    parser.add_argument("--energy-kev", type=float, default=None, help="photon energy (default: from file)")
    parser.add_argument(
        "--distances",
        type=float,
        nargs="*",
        default=None,
        help="effective propagation distance(s) in m, one per entry (default: from file)",
    )
    parser.add_argument("--pixel-size", type=float, default=None, help="pixel size in m (default: from file)")
    parser.add_argument(
        "--register",
        action="store_true",
        help="register the distances by phase correlation even if stage positions are recorded",
    )
    parser.add_argument("--rings", choices=list(rings.RING_METHODS), default="none", help="ring removal")
    parser.add_argument(
        "--method",
        choices=list(recon.METHODS),
        default="gridding",
        help="reconstruction backend (default 'gridding' = the workbook FBP by NUFFT, ≫ faster than 'fbp')",
    )
    parser.add_argument("--center", default="auto", help="rotation axis in pixels, or 'auto'")
    parser.add_argument("--slices", default=None, help="detector rows a:b to reconstruct (default: all)")
    parser.add_argument("--slab", type=int, default=16, help="rows per slab in the slab pass (memory bound)")
    parser.add_argument("--batch", type=int, default=8, help="projections per batch in the phase pass")
    parser.add_argument(
        "--window",
        default="auto",
        help="8-bit window 'low:high' in volume units, or 'auto' (0.1/99.9 percentiles)",
    )
    parser.add_argument("--overwrite", action="store_true", help="start again even if --out exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _parse_slices(text: str | None, n_rows: int) -> tuple[int, int]:
    if text is None:
        return 0, n_rows
    try:
        a, b = (int(v) if v else d for v, d in zip(text.split(":"), (0, n_rows), strict=True))
    except ValueError as err:
        raise ValueError(f"--slices {text!r}: give 'a:b' with integers, e.g. 100:164") from err
    if not 0 <= a < b <= n_rows:
        raise ValueError(f"--slices {text!r} outside the detector rows 0:{n_rows}")
    return a, b


def memory_bound_bytes(
    n_proj: int,
    n_rows: int,
    n_cols: int,
    slab: int,
    batch: int,
    n_distances: int,
    pad_px: int,
    method: str = "gridding",
) -> int:
    """Upper bound of the working memory of one run (bytes), as stated in the module docstring.

    Phase pass: the batch of frames per distance plus three work copies (float32), and one padded
    image in the FFT (``pad_px`` per side: float64 input, complex128 spectrum, filter, output ≈ 48 B per
    padded pixel, times the distances for the CTF). Slab pass: the slab of sinograms (float32, with a
    ring-removed copy), the reconstructor's padded sinogram spectrum (complex128, 2× width) and its
    output slices. Plus 14 MiB of fixed overhead (FFT plans, small arrays, the 10⁶-value sample of the
    8-bit window and its float64 sort). ``method="gridding"`` adds its NUFFT plan and work arrays
    (:func:`helpers.nanoct.recon.gridding_memory_bytes`, worst-case centre).
    """
    frame = n_rows * n_cols
    padded = (n_rows + 2 * pad_px) * (n_cols + 2 * pad_px)
    phase_pass = 4 * frame * (batch * (n_distances + 3) + 4 * n_distances) + 48 * padded * max(1, n_distances)
    slab_pass = (
        4 * slab * n_proj * n_cols * 2 + 16 * n_proj * 2 * n_cols * 2 + 4 * (slab + 2) * n_cols * n_cols
    )
    if method in ("gridding", "nufft"):
        slab_pass += recon.gridding_memory_bytes(n_proj, n_cols)
    return int(max(phase_pass, slab_pass) + 14 * 2**20)


def _open_scans(args) -> list[io.TomoScan]:
    path = Path(args.input)
    if not path.exists():
        raise OSError(f"{path}: input file not found")
    entries = args.entries
    if entries is None:
        try:
            entries = io.list_nxtomo_entries(path)
        except OSError as err:
            raise OSError(f"{path}: cannot open as HDF5 ({err})") from err
    scans = [io.read_nxtomo(path, e) for e in entries] if entries else [io.open_scan(path)]
    if args.phase != "ctf":
        scans = scans[:1]
    shapes = {s.shape for s in scans}
    if len(shapes) != 1:
        raise ValueError(f"{path}: the entries have different shapes {sorted(shapes)}; they must match")
    return scans


def _geometry(args, scans) -> tuple[list[float], float, float]:
    distances = args.distances or [s.distance_m for s in scans]
    if len(distances) != len(scans) or any(d is None for d in distances):
        raise ValueError(
            f"{args.input}: need one propagation distance per entry ({len(scans)}); the file gives "
            f"{[s.distance_m for s in scans]}: pass --distances"
        )
    pixel = args.pixel_size or scans[0].pixel_size_m
    energy = args.energy_kev or scans[0].energy_kev
    if args.phase != "none" and (pixel is None or energy is None):
        raise ValueError(
            f"{args.input}: pixel size or energy not in the file: pass --pixel-size and --energy-kev"
        )
    return [float(d) for d in distances], pixel, energy


def _pad_px(args, distances, pixel, energy, scans) -> int:
    """Padding per side of the phase-retrieval FFT (as :func:`helpers.nanoct.phase.paganin` chooses it)."""
    _, ny, nx = scans[0].shape
    if args.phase == "none":
        return 0
    return phase.paganin_pad_px(args.delta_beta, energy, max(distances), pixel, ny, nx)


def _params(args, distances, pixel, energy) -> dict:
    return {
        "phase": args.phase,
        "delta_beta": args.delta_beta,
        "energy_kev": energy,
        "distances_m": distances,
        "pixel_size_m": pixel,
        "rings": args.rings,
        "method": args.method,
        "center": args.center,
        "slices": args.slices,
        "entries": args.entries,
        "register": args.register,
    }


def run(args) -> int:
    """Run the reconstruction; returns 0 on success."""
    import h5py

    scans = _open_scans(args)
    distances, pixel, energy = _geometry(args, scans)
    n_proj, n_rows, n_cols = scans[0].shape
    row0, row1 = _parse_slices(args.slices, n_rows)
    if args.slab < 1 or args.batch < 1:
        raise ValueError("--slab and --batch must be ≥ 1")
    params = _params(args, distances, pixel, energy)
    checksum = io.file_checksum(args.input)
    out = Path(args.out)
    if out.resolve() == Path(args.input).resolve():
        raise ValueError("--out must differ from the input file (inputs are never modified)")
    if out.exists() and args.overwrite:
        out.unlink()
    with h5py.File(out, "a") as f:
        if "params" in f.attrs:
            if f.attrs["params"] != json.dumps(params) or f.attrs["input_checksum"] != checksum:
                raise ValueError(
                    f"{out} was started with other parameters or another input: "
                    "use --overwrite to start again"
                )
        else:
            f.attrs["params"] = json.dumps(params)
            f.attrs["input_file"] = Path(args.input).name
            f.attrs["input_checksum"] = checksum
            f.attrs["program"] = "nmc-workbook ct-reconstruct (helpers.nanoct.cli)"
            f.attrs["memory_bound_bytes"] = memory_bound_bytes(
                n_proj,
                n_rows,
                n_cols,
                args.slab,
                args.batch,
                len(scans),
                _pad_px(args, distances, pixel, energy, scans),
                args.method,
            )
            f.create_dataset(
                "projections_retrieved", (n_proj, n_rows, n_cols), "f4", chunks=(1, n_rows, n_cols)
            )
            f["projections_retrieved"].attrs["done"] = 0
            f["projections_retrieved"].attrs["units"] = (
                "projected delta, pixels (∫δ dt / pixel size)" if args.phase != "none" else "−ln(I/I0)"
            )
            f.create_dataset("volume", (row1 - row0, n_cols, n_cols), "f4", chunks=(1, n_cols, n_cols))
            f["volume"].attrs["units"] = (
                "delta (refractive index decrement)" if args.phase != "none" else "1/pixel"
            )
            f["volume"].attrs["first_row"] = row0
            f["volume"].attrs["voxel_size_m"] = pixel if pixel is not None else np.nan
            f.create_dataset("slice_done", data=np.zeros(row1 - row0, bool))
            f["angles_rad"] = scans[0].angles_rad
        _phase_pass(f, scans, args, distances, pixel, energy, quiet=args.quiet)
        center = _center(f, scans[0].angles_rad, args, n_rows)
        _slab_pass(f, scans[0].angles_rad, center, args, row0, row1, quiet=args.quiet)
        _to_8bit(f, args)
    if not args.quiet:
        print(f"wrote {out}: volume {row1 - row0}×{n_cols}×{n_cols}, centre {center:.2f} px")
    return 0


def _phase_pass(f, scans, args, distances, pixel, energy, quiet) -> None:
    from tqdm import tqdm

    ds = f["projections_retrieved"]
    n_proj = ds.shape[0]
    start = int(ds.attrs["done"])
    if start >= n_proj:
        return
    flats = [s.flat_mean() for s in scans]
    darks = [s.dark_mean() for s in scans]
    shifts = None
    if args.phase == "ctf" and len(scans) > 1:
        if "distance_shifts_px" in f.attrs:
            shifts = [tuple(v) for v in json.loads(f.attrs["distance_shifts_px"])]
        elif all(s.translation_px is not None for s in scans) and not args.register:
            # the recorded stage positions: an offset t moves the image by +t, so shift back by −(t − t₀)
            t0 = np.array(scans[0].translation_px)
            shifts = [tuple(float(v) for v in -(np.array(s.translation_px) - t0)) for s in scans]
            f.attrs["distance_shifts_px"] = json.dumps(shifts)
            f.attrs["distance_shifts_source"] = "sample/{z,x}_translation of each entry"
        else:
            step = max(1, n_proj // 32)
            sample = [
                io.flat_dark_correct(s.read_frames(0, n_proj)[::step], fl, dk)
                if n_proj <= 64
                else np.concatenate(
                    [io.flat_dark_correct(s.read_frames(i, i + 1), fl, dk) for i in range(0, n_proj, step)]
                )
                for s, fl, dk in zip(scans, flats, darks, strict=True)
            ]
            shifts = phase.register_distances(sample, args.delta_beta, energy, distances, pixel)
            f.attrs["distance_shifts_px"] = json.dumps(shifts)
            f.attrs["distance_shifts_source"] = "phase correlation (helpers.nanoct.phase.register_distances)"
    bar = tqdm(total=n_proj, initial=start, desc="phase", unit="proj", disable=quiet)
    for i in range(start, n_proj, args.batch):
        j = min(i + args.batch, n_proj)
        trans = [
            io.flat_dark_correct(s.read_frames(i, j), fl, dk)
            for s, fl, dk in zip(scans, flats, darks, strict=True)
        ]
        if args.phase == "paganin":
            out = phase.paganin(trans[0], args.delta_beta, energy, distances[0], pixel)
        elif args.phase == "ctf":
            out = phase.ctf_multi(trans, args.delta_beta, energy, distances, pixel, shifts_px=shifts)
        else:
            out = -np.log(np.clip(trans[0], 1e-6, None))
        ds[i:j] = out
        ds.attrs["done"] = j
        f.flush()
        bar.update(j - i)
    bar.close()


def _center(f, angles, args, n_rows) -> float:
    if "center_px" in f.attrs:
        return float(f.attrs["center_px"])
    if args.center == "auto":
        # 8–16 rows spread over the inner 80 % of the detector (as many as a slab when that is more than
        # 8): the opposite-projection match averages their noise
        n_use = min(n_rows, max(8, min(16, args.slab)))
        rows = np.unique(np.linspace(0.1 * n_rows, 0.9 * n_rows - 1, n_use).astype(int)).tolist()
        sino = f["projections_retrieved"][:, rows, :]
        span = float(angles.max() - angles.min())
        center = recon.find_center(sino, angles, "opposite" if span > 1.9 * np.pi else "vo")
    else:
        try:
            center = float(args.center)
        except ValueError as err:
            raise ValueError(f"--center {args.center!r}: give a number of pixels or 'auto'") from err
    f.attrs["center_px"] = center
    return center


def _slab_pass(f, angles, center, args, row0, row1, quiet) -> None:
    from tqdm import tqdm

    done = f["slice_done"]
    vol = f["volume"]
    todo = np.flatnonzero(~done[()])
    bar = tqdm(
        total=row1 - row0, initial=(row1 - row0) - len(todo), desc="slabs", unit="slice", disable=quiet
    )
    for a in range(row0, row1, args.slab):
        b = min(a + args.slab, row1)
        if done[a - row0 : b - row0].all():
            continue
        sinos = f["projections_retrieved"][:, a:b, :]
        for k in range(b - a):
            sino = rings.remove_rings(sinos[:, k, :], args.rings)
            vol[a - row0 + k] = recon.reconstruct(sino, angles, center, args.method)
        done[a - row0 : b - row0] = True
        f.flush()
        bar.update(b - a)
    bar.close()


def _to_8bit(f, args) -> None:
    vol = f["volume"]
    if args.window == "auto":
        # percentiles of ≤ 1e6 values from ≤ 16 slices read one at a time (bounded memory)
        index = np.unique(np.linspace(0, vol.shape[0] - 1, min(vol.shape[0], 16)).astype(int))
        every = max(1, vol.shape[1] * vol.shape[2] * len(index) // 1_000_000)
        window = grey.percentile_window(np.concatenate([vol[int(i)].ravel()[::every] for i in index]))
    else:
        try:
            low, high = (float(v) for v in args.window.split(":"))
        except ValueError as err:
            raise ValueError(f"--window {args.window!r}: give 'low:high' or 'auto'") from err
        window = grey.Window(low, high)
    if "volume_8bit" in f:
        del f["volume_8bit"]
    v8 = f.create_dataset("volume_8bit", vol.shape, "u1", chunks=(1, *vol.shape[1:]))
    for a in range(0, vol.shape[0], max(1, args.slab)):
        v8[a : a + args.slab] = window.to_8bit(vol[a : a + args.slab])
    for key, value in window.as_attrs().items():
        v8.attrs[key] = value
    v8.attrs["mapping"] = "volume = window_low + volume_8bit/255 · (window_high − window_low)"
