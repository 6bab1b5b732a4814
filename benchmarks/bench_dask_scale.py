"""The CT chain in-process vs on Dask (``local``, ``tcp://``); 1 worker vs 2 at a larger size (issue 18 §3).

Part 1, overhead on a small case: the bundled scan (``data_samples/ct_powder_holotomo.h5``) through
``ct-reconstruct`` and ``ct-analyse`` (manual threshold 165: the sample's raw grey peaks overlap) in-process,
with ``--scheduler local --workers 2`` and with ``--scheduler tcp://…`` (a ``dask scheduler`` and two
``dask worker`` processes started here on 127.0.0.1). Each output is compared with the in-process one.

Part 2, scale: a simulated scan of the workbook's powder phantom (``--shape`` z y x voxels, ``--angles``
projections over 360°, one distance, Paganin), the same chain in-process, then ``local`` with 1 and 2
workers. ``ct-analyse --no-morphology`` is run once in-process to split segmentation + voids from the
morphology step.

Time = wall clock of the command; peak memory = the largest sum of RSS over the command's process tree
(and the external Dask processes for ``tcp://``), sampled every 0.1 s with psutil (so short peaks may be
missed; the interpreter and libraries, ~0.25 GB per process, are included). Writes
``benchmarks/out/dask_scale.json`` and ``benchmarks/RESULTS_dask_scale.md``; the extrapolation to the
paper's 2560² × 960 voxels is computed from the measured stage times with the cost model stated there.
Usage: ``python benchmarks/bench_dask_scale.py [--shape 64 256 256 --angles 400]``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
RESULTS = Path(__file__).resolve().parent / "RESULTS_dask_scale.md"
PAPER = {"rows": 960, "cols": 2560, "angles": 3203}
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}


def run_measured(cmd, extra_pids=()) -> dict:
    """Run ``cmd``; wall time (s), peak summed RSS (MB) of its process tree (+ ``extra_pids``), rc."""
    import psutil

    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    root = psutil.Process(proc.pid)
    extra = [psutil.Process(p) for p in extra_pids]
    peak = 0
    while proc.poll() is None:
        total = 0
        try:
            for p in [root, *root.children(recursive=True), *extra]:
                try:
                    total += p.memory_info().rss
                except psutil.Error:
                    pass
        except psutil.Error:
            pass
        peak = max(peak, total)
        time.sleep(0.1)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {stderr[-2000:]}")
    return {"wall_s": wall, "peak_mb": peak / 2**20}


def _cli(*args):
    return [sys.executable, "-m", "helpers.cli", *map(str, args)]


def start_tcp_cluster(tmp: Path, n_workers=2):
    from distributed import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    log = open(tmp / "dask.log", "w")  # noqa: SIM115 - closed by stop()
    procs = [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
                               "--port", str(port), "--no-dashboard"], env=ENV, stdout=log, stderr=log)]
    procs += [subprocess.Popen([sys.executable, "-m", "distributed.cli.dask_worker", address, "--host",
                                "127.0.0.1", "--nthreads", "1", "--no-nanny", "--no-dashboard",
                                "--local-directory", str(tmp)], env=ENV, stdout=log, stderr=log)
              for _ in range(n_workers)]

    def stop():
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        log.close()

    with Client(address, timeout="60s") as client:
        client.wait_for_workers(n_workers, timeout=120)
    return address, [p.pid for p in procs], stop


def rel_diff(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    scale = np.nanmax(np.abs(a))
    return float(np.nanmax(np.abs(a - b)) / scale) if scale > 0 else float(np.nanmax(np.abs(a - b)))


def rel_diff_datasets(path_a, path_b, name: str = "volume", slab: int = 16) -> float:
    """:func:`rel_diff` of dataset ``name`` of two files, read ``slab`` z-slices at a time (a 1/8-paper
    volume is 3 GB in float32: two copies in float64 plus temporaries exhaust 24 GB)."""
    largest_diff, largest_value = 0.0, 0.0
    with h5py.File(path_a) as fa, h5py.File(path_b) as fb:
        a_ds, b_ds = fa[name], fb[name]
        if a_ds.shape != b_ds.shape:
            raise ValueError(f"{name}: shapes differ, {a_ds.shape} vs {b_ds.shape}")
        for z in range(0, a_ds.shape[0], slab):
            a, b = a_ds[z : z + slab].astype(float), b_ds[z : z + slab].astype(float)
            largest_value = max(largest_value, float(np.nanmax(np.abs(a))))
            largest_diff = max(largest_diff, float(np.nanmax(np.abs(a - b))))
    return largest_diff / largest_value if largest_value > 0 else largest_diff


def chain(scan: Path, tag: str, work: Path, scheduler_args, extra_pids=(), threshold=165, morphology=True):
    """ct-reconstruct + ct-analyse of ``scan``; stage times, memory and the outputs' paths."""
    recon = work / f"recon_{tag}.h5"
    analysis = work / f"analysis_{tag}.h5"
    for p in (recon, analysis):
        p.unlink(missing_ok=True)
    r = run_measured(_cli("ct-reconstruct", scan, "--out", recon, "--slab", 8, "--batch", 16, "--quiet",
                          *scheduler_args), extra_pids)
    no_morphology = [] if morphology else ["--no-morphology"]
    a = run_measured(_cli("ct-analyse", recon, "--dataset", "volume_8bit", "--out", analysis, "--threshold",
                          threshold, *no_morphology, *scheduler_args), extra_pids)
    return {"reconstruct": r, "analyse": a, "recon": str(recon), "analysis": str(analysis)}


def compare(reference: dict, other: dict) -> dict:
    with h5py.File(reference["recon"]) as f, h5py.File(other["recon"]) as g:
        volume = rel_diff(f["volume"][()], g["volume"][()])
        shape = f["volume"].shape
    a = pd.read_csv(reference["analysis"].replace(".h5", "_morphology.csv"))
    b = pd.read_csv(other["analysis"].replace(".h5", "_morphology.csv"))
    table = max(rel_diff(a[c].astype(float), b[c].astype(float)) for c in a.columns)
    return {"volume_max_rel_diff": volume, "morphology_max_rel_diff": table, "n_particles": len(a),
            "same_rows": len(a) == len(b), "volume_shape": list(shape)}


def simulated_scan(shape, angles, work: Path) -> Path:
    from helpers.synthetic import ct_projections, ct_samples

    path = work / f"scan_{'x'.join(map(str, shape))}_{angles}.h5"
    if not path.exists():
        _, scan = ct_samples.make_sample_scan(shape=tuple(shape), n_angles=angles,
                                              distances_m=(ct_samples.SAMPLE_DISTANCES_M[0],))
        ct_projections.write_nxtomo(path, scan)
    return path


def table(runs: dict) -> list[str]:
    """Markdown rows: mode, stage times and peaks, agreement with in-process."""
    lines = ["| mode | ct-reconstruct (s) | peak (MB) | ct-analyse (s) | peak (MB) | volume vs in-process "
             "| morphology table vs in-process |", "|---|---|---|---|---|---|---|"]
    for mode, v in runs.items():
        c = v.get("vs_in_process")
        agree = "— | —"
        if c:
            agree = (f"{c['volume_max_rel_diff']:.1e} | {c['morphology_max_rel_diff']:.1e} "
                     f"({c['n_particles']} rows)")
        lines.append(f"| {mode} | {v['reconstruct']['wall_s']:.1f} | {v['reconstruct']['peak_mb']:.0f} | "
                     f"{v['analyse']['wall_s']:.1f} | {v['analyse']['peak_mb']:.0f} | {agree} |")
    return lines


def recon_scan(rows: int, cols: int, angles: int, work: Path) -> Path:
    """A reconstruction-only scan, cheap to make: the exact sinogram of an analytic powder slice, the same
    for every detector row (cost of the reconstruction does not depend on the content), as transmission
    counts with flats and darks, written as NXtomo."""
    from helpers.synthetic import ct_projections as cp

    path = work / f"recon_scan_{rows}x{cols}_{angles}.h5"
    if path.exists():
        return path
    theta = np.linspace(0.0, 2.0 * np.pi, angles, endpoint=False)
    sino = cp.ellipse_sinogram(cp.powder_ellipses(cols, rng=0), theta, cols)  # value·pixel
    transmission = np.exp(-0.02 * sino)  # ~2 % absorption per pixel of NMC
    rng = np.random.default_rng(1)
    frames = np.empty((angles, rows, cols), np.uint16)
    for r in range(rows):
        frames[:, r, :] = rng.poisson(10000.0 * transmission) + 100
    flats = (rng.poisson(10000.0, (10, rows, cols)) + 100).astype(np.uint16)
    darks = np.full((5, rows, cols), 100, np.uint16)
    scan = cp.SimulatedScan(projections=[frames], flats=[flats], darks=[darks], angles_rad=theta,
                            distances_m=[1e-4], pixel_size_m=25e-9, energy_kev=29.6, shifts_px=[(0.0, 0.0)])
    cp.write_nxtomo(path, scan)
    return path


def reconstruct_scaling(rows, cols, angles, work: Path) -> dict:
    scan = recon_scan(rows, cols, angles, work)
    runs = {}
    modes = {"in-process": [], "local (1 worker)": ["--scheduler", "local", "--workers", 1],
             "local (2 workers)": ["--scheduler", "local", "--workers", 2]}
    for mode, extra in modes.items():
        out = work / f"recon_only_{mode.split()[0]}{extra[-1] if extra else ''}.h5"
        out.unlink(missing_ok=True)
        runs[mode] = run_measured(_cli("ct-reconstruct", scan, "--out", out, "--slab", 8, "--batch", 16,
                                       "--quiet", *extra))
        runs[mode]["out"] = str(out)
        print(mode, runs[mode], flush=True)
    for mode in list(modes)[1:]:
        runs[mode]["volume_max_rel_diff"] = rel_diff_datasets(runs["in-process"]["out"], runs[mode]["out"])
    return {"rows": rows, "cols": cols, "angles": angles, "runs": runs}


def phantom_volume(shape, work: Path, tile_shape=(64, 192, 192)) -> tuple[Path, float]:
    """8-bit phantom volume of ``shape`` (HDF5 ``/volume``) and its glue/NMC mid-grey threshold.

    One workbook powder phantom of ``tile_shape`` (CNR 8: the threshold is unambiguous; the timing, not the
    segmentation's accuracy, is measured here) repeated along each axis and cut to ``shape``: particles cut at
    the tile faces are simply more particles. Cached in ``work``.
    """
    from helpers.synthetic import ct_phantom

    path = work / f"phantom_{'x'.join(map(str, shape))}.h5"
    tile_path = work / f"phantom_tile_{'x'.join(map(str, tile_shape))}.h5"
    if not tile_path.exists():
        phantom = ct_phantom.make_powder_phantom(tile_shape, rng=3)
        grey = ct_phantom.phantom_to_grey_8bit(phantom, rng=4, cnr=8)
        lo, hi = grey.window
        mid32 = 0.5 * (grey.phase_means_32["glue"] + grey.phase_means_32["NMC"])
        with h5py.File(tile_path, "w") as f:
            f["volume"] = grey.volume_8bit
            f.attrs["threshold"] = round((mid32 - lo) / (hi - lo) * 255.0, 1)
    with h5py.File(tile_path) as f:
        tile, threshold = f["volume"][()], float(f.attrs["threshold"])
    if not path.exists():
        reps = [-(-n // t) for n, t in zip(shape, tile.shape, strict=True)]
        volume = np.tile(tile, reps)[: shape[0], : shape[1], : shape[2]]
        with h5py.File(path, "w") as f:
            f.create_dataset("volume", data=volume, chunks=True)
    return path, threshold


def segmentation_scaling(shape, work: Path) -> dict:
    """``ct-analyse --no-morphology`` (segmentation + voids) in-process vs ``local`` 1 and 2 workers."""
    volume, threshold = phantom_volume(shape, work)
    runs = {}
    for tag, sched in (("in-process", []), ("local (1 worker)", ["--scheduler", "local", "--workers", 1]),
                       ("local (2 workers)", ["--scheduler", "local", "--workers", 2])):
        out = work / f"seg_{tag.split()[0]}{''.join(c for c in tag if c.isdigit())}.h5"
        for p in (out, *[Path(str(out).replace(".h5", f"_{t}.csv")) for t in ("particles", "voids")]):
            p.unlink(missing_ok=True)
        runs[tag] = run_measured(_cli("ct-analyse", volume, "--dataset", "volume", "--out", out,
                                      "--threshold", threshold, "--no-morphology", *sched))
        runs[tag]["out"] = str(out)
        print(tag, {k: v for k, v in runs[tag].items() if k != "stderr"}, flush=True)
    ref = runs["in-process"]["out"]
    with h5py.File(ref) as f:
        labels = f["labels"][()]
        n_particles = int(f.attrs["n_particles"])
    for tag in ("local (1 worker)", "local (2 workers)"):
        other = runs[tag]["out"]
        with h5py.File(other) as g:
            same_labels = bool(np.array_equal(labels, g["labels"][()]))
        same_tables = all(pd.read_csv(ref.replace(".h5", f"_{t}.csv")).equals(
            pd.read_csv(other.replace(".h5", f"_{t}.csv"))) for t in ("particles", "voids"))
        runs[tag]["identical_labels"], runs[tag]["identical_tables"] = same_labels, same_tables
    return {"shape": list(shape), "threshold": threshold, "n_particles": n_particles, "runs": runs,
            "load_avg_1min": os.getloadavg()[0]}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", type=int, nargs=3, default=[64, 256, 256], help="scale run z y x")
    parser.add_argument("--angles", type=int, default=400)
    parser.add_argument("--skip-small", action="store_true")
    parser.add_argument("--small-only", action="store_true")
    parser.add_argument("--recon-only", type=int, nargs=3, metavar=("ROWS", "COLS", "ANGLES"), default=None,
                        help="only the reconstruction scaling run on a cheap analytic scan of this size")
    parser.add_argument("--scan", type=Path, default=None, help="scale scan already simulated (NXtomo)")
    parser.add_argument("--segment-only", type=int, nargs=3, metavar=("Z", "Y", "X"), default=None,
                        help="only ct-analyse --no-morphology on a tiled phantom volume of this shape: "
                             "in-process vs local 1 and 2 workers (clusters and voids as tasks)")
    args = parser.parse_args(argv)
    work = OUT / "dask_scale"
    work.mkdir(parents=True, exist_ok=True)
    if args.segment_only:
        result = segmentation_scaling(args.segment_only, work)
        name = f"dask_scale_segment_{'x'.join(map(str, args.segment_only))}.json"
        (OUT / name).write_text(json.dumps(result, indent=1))
        return result
    results = {"small": {}, "scale": {}, "shape": args.shape, "angles": args.angles}
    if args.recon_only:
        result = reconstruct_scaling(*args.recon_only, work)
        rows, cols, angles = args.recon_only
        (OUT / f"dask_scale_recon_{rows}x{cols}_{angles}.json").write_text(json.dumps(result, indent=1))
        return result

    if not args.skip_small:
        sample = ROOT / "data_samples" / "ct_powder_holotomo.h5"
        small = results["small"]
        small["in-process"] = chain(sample, "small_inproc", work, [])
        local2 = ["--scheduler", "local", "--workers", 2]
        small["local (2 workers)"] = chain(sample, "small_local", work, local2)
        address, pids, stop = start_tcp_cluster(work)
        try:
            small["tcp:// (2 workers)"] = chain(sample, "small_tcp", work, ["--scheduler", address], pids)
        finally:
            stop()
        for key in ("local (2 workers)", "tcp:// (2 workers)"):
            small[key]["vs_in_process"] = compare(small["in-process"], small[key])
        print(json.dumps(small, indent=1), flush=True)

    if args.small_only:
        (OUT / "dask_scale_small.json").write_text(json.dumps(results, indent=1))
        return results
    scan = args.scan or simulated_scan(args.shape, args.angles, work)
    scale = results["scale"]
    scale["in-process"] = chain(scan, "scale_inproc", work, [])
    scale["in-process, no morphology"] = chain(scan, "scale_nomorph", work, [], morphology=False)
    for n in (1, 2):
        key = f"local ({n} worker{'s' if n > 1 else ''})"
        scale[key] = chain(scan, f"scale_local{n}", work, ["--scheduler", "local", "--workers", n])
        scale[key]["vs_in_process"] = compare(scale["in-process"], scale[key])
        print(key, json.dumps(scale[key], indent=1), flush=True)
    (OUT / "dask_scale.json").write_text(json.dumps(results, indent=1))
    return results


if __name__ == "__main__":
    main()
