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
import os
from pathlib import Path

import numpy as np

from helpers import cli_checks as checks
from helpers import nexus
from helpers.nanoct import grey, io, phase, recon, rings
from helpers.provenance import INPUT_SHA256, file_sha256, stored_input_sha256


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
    parser.add_argument(
        "--data-path", default=None,
        help="HDF5 path of the frames in any other NeXus/HDF5 layout (e.g. entry/imaging/data)",
    )
    parser.add_argument(
        "--image-key-path", default=None,
        help="HDF5 path of the image_key (0 projection, 1 flat, 2 dark) of the --data-path frames",
    )
    parser.add_argument("--flats-path", default=None, help="HDF5 path of separate flat-field frames")
    parser.add_argument("--darks-path", default=None, help="HDF5 path of separate dark frames")
    parser.add_argument(
        "--angles-path", default=None,
        help="HDF5 path of the rotation angles (one per frame or per projection; links followed)",
    )
    parser.add_argument(
        "--angles-units", choices=("deg", "rad"), default=None,
        help="units of --angles-path (default: its 'units' attribute; required when it has none)",
    )
    parser.add_argument(
        "--overwrite", action="store_true",
        help="replace an --out (or unfinished OUT.partial) written with other parameters",
    )
    from helpers.cluster import add_scheduler_arguments

    add_scheduler_arguments(parser)  # phase and slab passes as Dask tasks (helpers.nanoct.*_tasks)
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


def _validate_options(args) -> None:
    """Options checked before the input is opened (no work is done before these pass)."""
    if args.slab < 1 or args.batch < 1:
        raise ValueError(f"--slab {args.slab} / --batch {args.batch}: both must be ≥ 1")
    checks.positive("--delta-beta", args.delta_beta)
    checks.positive("--energy-kev", args.energy_kev)
    checks.positive("--pixel-size", args.pixel_size)
    for d in args.distances or []:
        checks.positive("--distances", d)
    if args.phase == "none" and args.distances:
        raise ValueError("--distances given with --phase none: an absorption (−ln) reconstruction uses "
                         "no propagation distance; drop --distances or choose --phase paganin/ctf")
    if args.center != "auto":
        try:
            value = float(args.center)
        except ValueError as err:
            raise ValueError(f"--center {args.center!r}: give a number of pixels or 'auto'") from err
        if not np.isfinite(value):
            raise ValueError(f"--center {args.center!r}: give a finite number of pixels or 'auto'")
    _parse_window(args.window)
    if args.angles_units is not None and args.angles_path is None:
        raise ValueError("--angles-units applies to --angles-path; give --angles-path too")
    if args.data_path is None and any(
        getattr(args, k) is not None for k in ("image_key_path", "angles_path", "flats_path", "darks_path")
    ):
        raise ValueError("--image-key-path/--angles-path/--flats-path/--darks-path need --data-path")


def _parse_window(text: str):
    """``None`` for 'auto', else the :class:`helpers.nanoct.grey.Window` of 'low:high'."""
    if text == "auto":
        return None
    try:
        low, high = (float(v) for v in text.split(":"))
    except ValueError as err:
        raise ValueError(f"--window {text!r}: give 'low:high' in volume units, or 'auto'") from err
    if not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(f"--window {text!r}: need finite low < high")
    return grey.Window(low, high)


def open_scans(args) -> list[io.TomoScan]:
    path = Path(args.input)
    if not path.exists():
        raise OSError(f"{path}: input file not found")
    if args.data_path is not None:
        if args.entries:
            raise ValueError("--entries and --data-path exclude each other: --data-path names one scan")
        return [
            io.read_hdf5_paths(
                path,
                data_path=args.data_path,
                image_key_path=args.image_key_path,
                angles_path=args.angles_path,
                angles_units=args.angles_units,
                flats_path=args.flats_path,
                darks_path=args.darks_path,
            )
        ]
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
    """Distances (m; none needed for ``--phase none``), pixel size (m) and energy (keV)."""
    pixel = args.pixel_size or scans[0].pixel_size_m
    energy = args.energy_kev or scans[0].energy_kev
    if args.phase == "none":
        return [], pixel, energy
    distances = args.distances or [s.distance_m for s in scans]
    if len(distances) != len(scans) or any(d is None for d in distances):
        raise ValueError(
            f"{args.input}: --phase {args.phase} needs one propagation distance per entry ({len(scans)}); "
            f"the file gives {[s.distance_m for s in scans]}: pass --distances (or --phase none for an "
            "absorption scan)"
        )
    if pixel is None or energy is None:
        raise ValueError(
            f"{args.input}: pixel size or energy not in the file: pass --pixel-size and --energy-kev"
        )
    for name, value in (("pixel size", pixel), ("energy", energy), *(("distance", d) for d in distances)):
        checks.positive(f"{name} (from {args.input})", float(value))
    return [float(d) for d in distances], pixel, energy


def _check_scan(args, scans) -> None:
    """Input checks before any work: centre on the detector, finite angles, flats, darks, projections."""
    n_proj, n_rows, n_cols = scans[0].shape
    if n_proj < 2:
        raise ValueError(f"{args.input}: {n_proj} projection(s); a reconstruction needs many angles")
    if args.center != "auto" and not 0 <= float(args.center) < n_cols:
        raise ValueError(f"--center {args.center}: outside the detector columns 0…{n_cols - 1}")
    for scan in scans:
        if not np.all(np.isfinite(scan.angles_rad)):
            raise ValueError(f"{scan.source} ({scan.format}): rotation angles hold NaN/inf")
        checks.check_finite_frames(scan.flats, f"{scan.source} ({scan.format}) flats")
        checks.check_finite_frames(scan.darks, f"{scan.source} ({scan.format}) darks")
        checks.check_finite_frames(_FrameReader(scan), f"{scan.source} ({scan.format}) projections",
                                   block=max(1, args.batch))


class _FrameReader:
    """The projections of a scan indexed by frame (``dtype``, ``shape``, ``[a:b]``) for the NaN check."""

    def __init__(self, scan: io.TomoScan):
        self.scan, self.shape, self.dtype = scan, scan.shape, scan.dtype

    def __getitem__(self, sl: slice) -> np.ndarray:
        start, stop, _ = sl.indices(self.shape[0])
        return self.scan.read_frames(start, stop)


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
        "data_path": args.data_path,
        "image_key_path": args.image_key_path,
        "angles_path": args.angles_path,
        "angles_units": args.angles_units,
        "flats_path": args.flats_path,
        "darks_path": args.darks_path,
    }


PROGRAM = "nmc-workbook ct-reconstruct (helpers.nanoct.cli_reconstruct)"
#: the same command's outputs written before its module was renamed (still resumable / recognised)
FORMER_PROGRAMS = ("nmc-workbook ct-reconstruct (helpers.nanoct.cli)",)


def partial_path(out: str | Path) -> Path:
    """Where an unfinished (resumable) reconstruction for ``out`` is kept until it is complete."""
    out = Path(out)
    return out.with_name(out.name + ".partial")


def _own_state(path: Path, params: dict, checksum: str) -> str:
    """'same' (this command's output of the same input and parameters), 'other' (this command's, other
    input/parameters) or 'foreign' (anything else, including unreadable files)."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("program") not in (PROGRAM, *FORMER_PROGRAMS):
                return "foreign"
            same = f.attrs.get("params") == json.dumps(params) and stored_input_sha256(f.attrs) == checksum
            return "same" if same else "other"
    except OSError:
        return "foreign"


def _prepare_output(args, params, checksum) -> tuple[Path, Path, bool]:
    """Decide where to write: returns (out, partial, already_complete); refuses foreign files untouched."""
    out = Path(args.out)
    for path in (out, partial_path(out)):
        if checks.same_file(path, args.input):
            raise ValueError(f"--out {out} is the input file: inputs are never modified, choose another name")
    if not out.parent.is_dir():
        raise OSError(f"--out {out}: folder {out.parent} does not exist; create it first")
    partial = partial_path(out)
    if out.exists():
        state = _own_state(out, params, checksum)
        if state == "same" and not args.overwrite:
            return out, partial, True
        if state == "foreign":
            raise OSError(f"--out {out} exists and is not a ct-reconstruct output: left untouched; "
                          "choose another name")
        if state == "other" and not args.overwrite:
            raise ValueError(f"--out {out} was written with other parameters or another input: left "
                             "untouched; choose another name or pass --overwrite to replace it")
    if partial.exists():
        state = _own_state(partial, params, checksum)
        if state == "foreign":
            raise OSError(f"{partial} exists and is not an unfinished ct-reconstruct output: left "
                          "untouched; move it away")
        if state == "other":
            if not args.overwrite:
                raise ValueError(f"{partial} (an unfinished run) was started with other parameters or "
                                 "another input: use --overwrite to start again")
            partial.unlink()
        elif args.overwrite:
            partial.unlink()
    return out, partial, False


def run(args) -> int:
    """Run the reconstruction; returns 0 on success.

    The run is kept in ``OUT.partial`` (resumable) and renamed to ``OUT`` when complete, so ``OUT``
    only ever holds a finished reconstruction (with root attribute ``complete = True``).
    """
    import h5py

    from helpers.cluster import check_scheduler, dask_client

    _validate_options(args)
    scheduler, workers = getattr(args, "scheduler", None), getattr(args, "workers", None)
    check_scheduler(scheduler, workers)
    scans = open_scans(args)
    distances, pixel, energy = _geometry(args, scans)
    n_proj, n_rows, n_cols = scans[0].shape
    row0, row1 = _parse_slices(args.slices, n_rows)
    params = _params(args, distances, pixel, energy)
    checksum = file_sha256(args.input)
    out, partial, complete = _prepare_output(args, params, checksum)
    if complete:
        if not args.quiet:
            print(f"{out} is already complete for this input and these parameters: nothing to do")
        return 0
    if not partial.exists():
        _check_scan(args, scans)
    with dask_client(scheduler, workers, getattr(args, "connect_timeout", 10.0), quiet=args.quiet) as client:
        with h5py.File(partial, "a") as f:
            if "params" not in f.attrs:
                _create_layout(f, args, scans, params, checksum, pixel, energy, distances, (row0, row1))
            _phase_pass(f, scans, args, distances, pixel, energy, quiet=args.quiet, client=client)
            center = _center(f, scans[0].angles_rad, args, n_rows)
            if client is None:
                _slab_pass(f, scans[0].angles_rad, center, args, row0, row1, quiet=args.quiet)
        if client is not None:  # tasks read the closed file; one writer joins their slab files
            from helpers.nanoct import slab_tasks

            slab_tasks.slab_pass(partial, center, args.rings, args.method, args.slab, row0, row1, client,
                                 quiet=args.quiet)
    with h5py.File(partial, "a") as f:
        _to_8bit(f, args)
        nexus.mark_volume(f, "volume", voxel_size_m=pixel, first_row=row0)
        nexus.mark_volume(f, "volume_8bit", voxel_size_m=pixel, first_row=row0)
        f.attrs["complete"] = True
    os.replace(partial, out)
    if not args.quiet:
        print(f"wrote {out}: volume {row1 - row0}×{n_cols}×{n_cols}, centre {center:.2f} px")
    return 0


def _create_layout(f, args, scans, params, checksum, pixel, energy, distances, rows) -> None:
    """Attributes and (empty, chunked) datasets of a new run; ``complete`` stays False until the end."""
    n_proj, n_rows, n_cols = scans[0].shape
    row0, row1 = rows
    f.attrs["params"] = json.dumps(params)
    f.attrs["input_file"] = Path(args.input).name
    f.attrs[INPUT_SHA256] = checksum
    f.attrs["program"] = PROGRAM
    f.attrs["complete"] = False
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
    f.create_dataset("projections_retrieved", (n_proj, n_rows, n_cols), "f4", chunks=(1, n_rows, n_cols))
    f["projections_retrieved"].attrs["done"] = 0
    f["projections_retrieved"].attrs["units"] = (
        "projected delta, pixels (∫δ dt / pixel size)" if args.phase != "none" else "−ln(I/I0)"
    )
    f.create_dataset("volume", (row1 - row0, n_cols, n_cols), "f4", chunks=(1, n_cols, n_cols))
    f["volume"].attrs["units"] = "delta (refractive index decrement)" if args.phase != "none" else "1/pixel"
    f["volume"].attrs["first_row"] = row0
    f["volume"].attrs["voxel_size_m"] = pixel if pixel is not None else np.nan
    f.create_dataset("slice_done", data=np.zeros(row1 - row0, bool))
    f["angles_rad"] = scans[0].angles_rad


def _phase_pass(f, scans, args, distances, pixel, energy, quiet, client=None) -> None:
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
    if client is not None:  # projection ranges as Dask tasks (helpers.nanoct.phase_tasks)
        from helpers.nanoct import phase_tasks

        phase_tasks.phase_pass(f, args, distances, pixel, energy, shifts, start, client, quiet=quiet)
        return
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
        center = float(args.center)  # checked by _validate_options and _check_scan
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
        window = _parse_window(args.window)
    if "volume_8bit" in f:
        del f["volume_8bit"]
    v8 = f.create_dataset("volume_8bit", vol.shape, "u1", chunks=(1, *vol.shape[1:]))
    for a in range(0, vol.shape[0], max(1, args.slab)):
        v8[a : a + args.slab] = window.to_8bit(vol[a : a + args.slab])
    for key, value in window.as_attrs().items():
        v8.attrs[key] = value
    v8.attrs["mapping"] = "volume = window_low + volume_8bit/255 · (window_high − window_low)"
