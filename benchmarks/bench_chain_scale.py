"""The nano-CT chain end to end at 1/8 of the paper's volume: projections → ct-reconstruct → ct-analyse.

Issue 18 §3 asks for the chain run end to end through the Dask path at ≥ 1/8 of the paper's volume
(1280² × 480 voxels from ≥ 1600 projections) with time and memory per stage. Two sub-commands:

``scan`` forward-models a grey volume written by ``bench_analyse_scale.py render`` (paper-like faceted
particles, glue and air) into a raw absorption scan: the attenuation per voxel is proportional to the grey
level above air (**design inputs**: NMC ``--mu-nmc`` = 0.003 per voxel, glue in proportion, air 0), cut to the
cylinder inscribed in the slice (a pillar sample: every ray enters and leaves the object inside the field of
view), projected exactly for the band-limited image (Fourier-slice theorem: finufft's type-2 NUFFT samples
each slice's 2-D spectrum on the polar lines of the projection angles, period 2n so projections do not wrap),
turned into Poisson counts (``--flat-counts`` 10 000 photons per pixel, dark 100) with flats and darks, and
written as NXtomo (uint16) in the convention of ``helpers.nanoct.recon`` (pinned by the self-check: a disk's
projections against its exact chords). The scan is absorption-only, so it is reconstructed with
``--phase none``: the Paganin pass of the paper's chain (one 2-D FFT filter per projection) is timed in
``bench_dask_scale.py --recon-only`` and is not part of this run.

``run`` times ``nmc-workbook ct-reconstruct`` then ``nmc-workbook ct-analyse`` (automatic threshold) on the
reconstruction's 8-bit volume, in-process and/or ``--scheduler local --workers N``, with the memory of the
process tree sampled every 0.2 s (rss and anon, as in ``bench_analyse_scale.py``) and the analysis split by
stage; then compares the analysis with the rendered volume's own NMC voxels inside the cylinder (a sanity
check of the chain, not its accuracy benchmark: the rendered grey volume is the "truth" here, thresholded at
the glue/NMC midpoint) and the modes with each other. JSON to ``benchmarks/out/chain_scale_<tag>.json``.

Usage::

    python benchmarks/bench_chain_scale.py scan /work/scratch18/v8.h5 --out /work/scratch18/scan8.h5
    python benchmarks/bench_chain_scale.py run /work/scratch18/scan8.h5 --modes local2 --tag 1of8
    python benchmarks/bench_chain_scale.py --self-check      # the projector against exact chords (seconds)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_analyse_scale import BOOT, GREY, compare_outputs, run_measured  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"


# ------------------------------------------------------------------------------------------- projector
class SliceProjector:
    """Exact projections of band-limited n × n slices for one angle set (finufft type 2, one plan).

    Convention of ``helpers.nanoct.recon``: the projection at θ integrates along ``x cos θ + y sin θ = s``,
    ``x = col − (n−1)/2``, ``y = row − (n−1)/2``, detector pixel ``i`` at ``s = i − (n−1)/2``.
    """

    def __init__(self, n: int, angles_rad: np.ndarray, eps: float = 1e-4, threads: int = 2):
        import finufft

        self.n, self.n_angles, self.period = n, len(angles_rad), 2 * n
        omega = 2 * np.pi * np.arange(n + 1) / self.period  # ω ≥ 0 (real image: Hermitian spectrum)
        cos_t, sin_t = np.cos(angles_rad)[:, None], np.sin(angles_rad)[:, None]
        fold = lambda w: np.mod(w + np.pi, 2 * np.pi) - np.pi  # noqa: E731
        # single precision at eps 1e-4: the counts' Poisson noise (≥ 0.3 % here) is far above it
        self.plan = finufft.Plan(
            2, (n, n), eps=eps, isign=-1, dtype=np.complex64, nthreads=threads, upsampfac=1.25
        )
        self._points = (
            fold(omega * sin_t).ravel().astype(np.float32),
            fold(omega * cos_t).ravel().astype(np.float32),
        )  # finufft axis 0 = rows
        self.plan.setpts(*self._points)
        offset = n // 2 - (n - 1) / 2.0  # pixel coordinate = finufft mode + offset
        self.phase = np.exp(-1j * omega * offset * (cos_t + sin_t)) * np.exp(
            -1j * omega * (n - 1) / 2.0
        )  # s = i − (n−1)/2

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """(n_angles, n) line integrals (image units × pixel) of one slice."""
        spectrum = self.plan.execute(np.asarray(image, np.complex64)).reshape(self.n_angles, -1) * self.phase
        return np.fft.irfft(spectrum, n=self.period, axis=1)[:, : self.n]


def self_check(n: int = 256, n_angles: int = 720) -> float:
    """Largest error of the projector against the exact chords of a disk, away from its rim (pixel units)."""
    yy, xx = np.mgrid[:n, :n]
    x, y = xx - (n - 1) / 2, yy - (n - 1) / 2
    cx, cy, r = 0.16 * n, -0.08 * n, 0.12 * n  # off-centre in both axes: a flip or a swap moves it
    # supersampled pixel disk, so that its band-limited projection is close to the exact chords
    sub = (np.arange(4) + 0.5) / 4 - 0.5
    disk = np.mean([((x + a - cx) ** 2 + (y + b - cy) ** 2 < r**2) for a in sub for b in sub], axis=0)
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    sino = SliceProjector(n, angles)(disk)
    s = np.arange(n) - (n - 1) / 2
    worst = 0.0
    for k in range(0, n_angles, 37):
        centre = cx * np.cos(angles[k]) + cy * np.sin(angles[k])
        chord = 2 * np.sqrt(np.clip(r**2 - (s - centre) ** 2, 0, None))
        inner = np.abs(s - centre) < r - 3  # the rim's partial-volume pixels excluded
        worst = max(worst, float(np.abs(sino[k] - chord)[inner].max()))
    return worst


# ------------------------------------------------------------------------------------------- scan
def make_scan(
    volume: Path,
    out: Path,
    n_angles: int,
    mu_nmc: float,
    flat_counts: float,
    seed: int = 0,
    dataset: str = "volume",
) -> dict:
    """Forward-model the grey volume into an NXtomo absorption scan (see the module docstring)."""
    import h5py
    from tqdm import tqdm

    sys.path.insert(0, str(ROOT))
    from helpers.synthetic import ct_projections as cp

    rng = np.random.default_rng(seed)
    with h5py.File(volume, "r") as f:
        vol = f[dataset]
        n_rows, n, n_cols = vol.shape
        if n != n_cols:
            raise ValueError(f"slices must be square, got {vol.shape}")
        angles = np.linspace(0.0, 2.0 * np.pi, n_angles, endpoint=False)
        projector = SliceProjector(n, angles)
        yy, xx = np.mgrid[:n, :n]
        outside = (xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2 > (n / 2 - 4) ** 2
        mu_per_grey = mu_nmc / (GREY["nmc"] - GREY["air"])
        frames = np.empty((n_angles, n_rows, n), np.uint16)
        start = time.perf_counter()
        for row in tqdm(range(n_rows), desc="projecting slices", unit="slice"):
            mu = (vol[row].astype(np.float64) - GREY["air"]) * mu_per_grey
            mu[outside] = 0.0
            line_integrals = projector(mu)
            frames[:, row, :] = np.minimum(rng.poisson(flat_counts * np.exp(-line_integrals)) + 100, 65535)
        project_s = time.perf_counter() - start
    flats = (rng.poisson(flat_counts, (10, n_rows, n)) + 100).astype(np.uint16)
    darks = np.full((5, n_rows, n), 100, np.uint16)
    scan = cp.SimulatedScan(
        projections=[frames],
        flats=[flats],
        darks=[darks],
        angles_rad=angles,
        distances_m=[1e-4],
        pixel_size_m=25e-9,
        energy_kev=29.6,
        shifts_px=[(0.0, 0.0)],
    )
    tmp = out.with_name(out.name + ".tmp")
    cp.write_nxtomo(tmp, scan)
    os.replace(tmp, out)
    info = {
        "volume": str(volume),
        "shape": [n_rows, n, n],
        "angles": n_angles,
        "mu_nmc_per_voxel": mu_nmc,
        "flat_counts": flat_counts,
        "seed": seed,
        "project_s": project_s,
        "min_transmission": float(frames.min() - 100) / flat_counts,
    }
    out.with_name(out.stem + "_scan.json").write_text(json.dumps(info, indent=1))
    return info


# ------------------------------------------------------------------------------------------- run
def nmc_agreement(analysis: Path, volume: Path, slab: int = 16) -> dict:
    """NMC voxels of the analysis (``/labels`` > 0) against the rendered volume above the glue/NMC midpoint,
    inside the cylinder: voxel counts, their ratio and the IoU (a sanity check of the whole chain)."""
    import h5py

    cut = 0.5 * (GREY["glue"] + GREY["nmc"])
    inter = union = n_found = n_true = 0
    with h5py.File(analysis, "r") as fa, h5py.File(volume, "r") as fv:
        labels, vol = fa["labels"], fv["volume"]
        n = vol.shape[1]
        yy, xx = np.mgrid[:n, :n]
        inside = (xx - (n - 1) / 2) ** 2 + (yy - (n - 1) / 2) ** 2 <= (n / 2 - 8) ** 2
        for z in range(0, vol.shape[0], slab):
            found = (labels[z : z + slab] > 0) & inside
            true = (vol[z : z + slab] > cut) & inside
            inter += int(np.count_nonzero(found & true))
            union += int(np.count_nonzero(found | true))
            n_found += int(np.count_nonzero(found))
            n_true += int(np.count_nonzero(true))
    return {
        "nmc_voxels_found": n_found,
        "nmc_voxels_rendered": n_true,
        "volume_ratio": n_found / max(n_true, 1),
        "iou": inter / max(union, 1),
    }


def _center_found(recon: Path):
    """The rotation axis that ``ct-reconstruct --center auto`` wrote (px), or None if not found."""
    import h5py

    with h5py.File(recon, "r") as f:
        for obj in (f, f.get("volume")):
            for key in ("center_px", "center", "rotation_axis_px"):
                if obj is not None and key in obj.attrs:
                    return float(obj.attrs[key])
    return None


def run(
    scan: Path, modes, tag: str, work: Path, slab: int = 8, batch: int = 16, morphology: bool = True
) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    info_path = scan.with_name(scan.stem + "_scan.json")
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    results = {"scan": str(scan), "scan_info": info, "modes": {}}
    OUT.mkdir(exist_ok=True)
    json_path = OUT / f"chain_scale_{tag}.json"
    for mode in modes:
        sched = (
            ["--scheduler", "local", "--workers", mode[len("local") :]] if mode.startswith("local") else []
        )
        recon, analysis = work / f"{tag}_{mode}_recon.h5", work / f"{tag}_{mode}_analysis.h5"
        for p in (recon, analysis):
            p.unlink(missing_ok=True)
        print(
            f"[{time.strftime('%H:%M:%S')}] {mode} ct-reconstruct: load {os.getloadavg()[0]:.1f}", flush=True
        )
        r = {"load_avg_start": os.getloadavg()}
        r["reconstruct"] = run_measured(
            [
                sys.executable,
                "-c",
                BOOT,
                "ct-reconstruct",
                str(scan),
                "--out",
                str(recon),
                "--phase",
                "none",
                "--center",
                "auto",  # the command finds the axis (true: (n − 1)/2, recorded with the result)
                "--slab",
                str(slab),
                "--batch",
                str(batch),
                "--quiet",
                *sched,
            ],
            work / f"{tag}_{mode}_recon.log",
        )
        print(
            json.dumps({"reconstruct": {k: v for k, v in r["reconstruct"].items() if k != "stages"}}),
            flush=True,
        )
        print(f"[{time.strftime('%H:%M:%S')}] {mode} ct-analyse: load {os.getloadavg()[0]:.1f}", flush=True)
        r["analyse"] = run_measured(
            [
                sys.executable,
                "-c",
                BOOT,
                "ct-analyse",
                str(recon),
                "--dataset",
                "volume_8bit",
                "--out",
                str(analysis),
                "--overwrite",
                *([] if morphology else ["--no-morphology"]),
                *sched,
                "--scratch-dir",
                str(work / f"{tag}_{mode}.scratch"),
            ],
            work / f"{tag}_{mode}_analyse.log",
        )
        for name, s in r["analyse"]["stages"].items():
            print(
                f"   {name:16s} {s['s']:8.1f} s  rss {s['peak_rss_gb']:.2f} GB"
                f"  anon {s['peak_anon_gb']:.2f} GB"
            )
        r["load_avg_end"] = os.getloadavg()
        r["center_found_px"] = _center_found(recon)
        r["center_true_px"] = (info.get("shape", [0, 0, 0])[2] - 1) / 2.0
        if info.get("volume") and Path(info["volume"]).is_file():
            r["nmc_vs_rendered"] = nmc_agreement(analysis, Path(info["volume"]))
            print("   NMC vs rendered:", r["nmc_vs_rendered"], flush=True)
        if mode != modes[0]:
            first = results["modes"][modes[0]]
            r["vs_" + modes[0]] = compare_outputs(Path(first["analysis"]), analysis)
            print("   vs", modes[0], r["vs_" + modes[0]], flush=True)
        r["recon"], r["analysis"] = str(recon), str(analysis)
        results["modes"][mode] = r
        json_path.write_text(json.dumps(results, indent=1))
    return results


def markdown(json_path: Path) -> str:
    """Per-mode table: reconstruction, analysis stages, whole chain (s; peak rss / anon GB)."""
    data = json.loads(Path(json_path).read_text())
    modes = data["modes"]
    stages = ["label clusters", "split clusters", "particle boxes", "voids", "morphology", "write"]
    lines = ["| stage | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]

    def cell(d, key="wall_s"):
        return f"{d[key]:.0f} s; {d['peak_rss_gb']:.2f} / {d['peak_anon_gb']:.2f} GB"

    lines.append(
        "| ct-reconstruct (whole command) | "
        + " | ".join(cell(r["reconstruct"]) for r in modes.values())
        + " |"
    )
    for name in stages:
        cells = [
            cell(r["analyse"]["stages"][name], "s") if name in r["analyse"]["stages"] else "—"
            for r in modes.values()
        ]
        lines.append(f"| ct-analyse: {name} | " + " | ".join(cells) + " |")
    lines.append(
        "| ct-analyse (whole command) | " + " | ".join(cell(r["analyse"]) for r in modes.values()) + " |"
    )
    lines.append(
        "| **chain (sum)** | "
        + " | ".join(
            f"**{r['reconstruct']['wall_s'] + r['analyse']['wall_s']:.0f} s**" for r in modes.values()
        )
        + " |"
    )
    for m, r in modes.items():
        lines.append("")
        lines.append(
            f"{m}: load {r['load_avg_start'][0]:.1f} → {r['load_avg_end'][0]:.1f}; "
            f"NMC vs rendered {r.get('nmc_vs_rendered')}; "
            + "; ".join(f"{k}: {v}" for k, v in r.items() if k.startswith("vs_"))
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--self-check", action="store_true", help="check the projector against exact chords")
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("scan", help="forward-model a rendered grey volume into an NXtomo absorption scan")
    s.add_argument("volume", type=Path)
    s.add_argument("--out", type=Path, required=True)
    s.add_argument("--angles", type=int, default=1600)
    s.add_argument("--mu-nmc", type=float, default=0.003, help="NMC attenuation per voxel (design input)")
    s.add_argument("--flat-counts", type=float, default=10000.0, help="photons per pixel in the flat field")
    s.add_argument("--seed", type=int, default=0)
    m = sub.add_parser("run", help="ct-reconstruct + ct-analyse, timed per stage")
    m.add_argument("scan", type=Path)
    m.add_argument("--modes", nargs="+", default=["local2"], help="inproc, local1, local2, …")
    m.add_argument("--tag", default="run")
    m.add_argument("--work", type=Path, default=Path("/work/scratch18/chain"))
    m.add_argument("--no-morphology", action="store_true")
    t = sub.add_parser("table", help="markdown table of a run JSON")
    t.add_argument("json", type=Path)
    args = parser.parse_args(argv)
    if args.self_check:
        worst = self_check()
        # a wrong orientation, centre or sign puts the chord elsewhere (errors ~ the chord, 61); the
        # band-limited (sinc) image of a pixelated disk rings at its rim by ≈ 0.5 pixel units: bound 1.2
        print(f"projector vs exact chords of a disk: largest error {worst:.3f} pixel units (chord ≤ 61)")
        return 0 if worst < 1.2 else 1
    if args.command == "scan":
        print(
            json.dumps(
                make_scan(args.volume, args.out, args.angles, args.mu_nmc, args.flat_counts, args.seed)
            )
        )
    elif args.command == "run":
        run(args.scan, args.modes, args.tag, args.work, morphology=not args.no_morphology)
    elif args.command == "table":
        print(markdown(args.json))
    else:
        parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
