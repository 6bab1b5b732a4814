"""``ct-analyse`` on a paper-like volume at 1/8 of the paper's size: time and memory per stage (issue 18 §3).

Two sub-commands:

``render`` writes a **directly rendered** grey volume (no CT forward model: this is a speed and memory
benchmark of the analysis, not of its accuracy) as an uncompressed uint8 HDF5 dataset ``/volume``, rendered
in z-slabs so that no whole-volume float array is ever held. Particles have the paper's sizes and NMC
volume fraction (**design inputs**: log-normal equivalent diameters with a volume-weighted median of
``--d50-vox`` = 76 voxels = 1.9 µm at 25 nm, NMC fraction ``--fraction`` 0.27 of the volume): faceted
ellipsoids (a random ellipsoid cut by cube and octahedron facets, randomly oriented), placed by random
sequential addition with bounding spheres allowed to overlap by ``--overlap`` so that some touch and weld;
30 % of them hold 1–8 spherical internal voids of 50–300 nm (2–12 voxels). The background is glue or air
(a smooth random field), grey levels air 50, glue 120, NMC 200, blurred by a Gaussian of σ = 0.7 voxel
(partial volume) and given Gaussian noise σ = 10 grey levels, so the three phases are resolved and the
automatic threshold applies. The particle list is written beside it (``*_particles.json``).

``run`` times ``nmc-workbook ct-analyse`` on it in-process and/or with ``--scheduler local --workers N``:
wall time of the command and of each stage (the command's ``helpers.stages`` log lines: label clusters,
split clusters, particle boxes, voids, morphology, write), and memory sampled every 0.2 s over the command's
process tree (psutil): ``rss`` (all resident pages) and ``anon`` (rss minus file-backed and shared pages, the
memory the machine must really provide; memory-mapped files and the page cache can be evicted), peak per
stage. Outputs of the distributed modes are compared with the in-process one (labels voxel by voxel, every
table column). JSON to ``benchmarks/out/analyse_scale_<tag>.json``.

Usage (without a sub-command: a quick 1/512 cut, 120 × 320², rendered and analysed in-process and on 2
workers, ~2 min)::

    python benchmarks/bench_analyse_scale.py render --shape 480 1280 1280 --out /work/scratch18/v8.h5
    python benchmarks/bench_analyse_scale.py run /work/scratch18/v8.h5 --modes inproc local2 --tag 1of8
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = Path(__file__).resolve().parent / "out"
PAPER_SHAPE = (960, 2560, 2560)
GREY = {"air": 50.0, "glue": 120.0, "nmc": 200.0}
NOISE_SIGMA = 10.0
BLUR_SIGMA = 0.7
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}

# ------------------------------------------------------------------------------------------- render

_CUBE = np.eye(3)
_OCTA = np.array([[1, 1, 1], [1, 1, -1], [1, -1, 1], [-1, 1, 1]], float) / math.sqrt(3)


def _random_rotation(rng) -> np.ndarray:
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, x, y, z = q
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def _inside_unit(u: np.ndarray, cube: float, octa: float) -> np.ndarray:
    """Unit ball cut by cube facets at ``cube`` and octahedron facets at ``octa`` (u: (..., 3))."""
    inside = (u * u).sum(-1) <= 1.0
    inside &= np.abs(u).max(-1) <= cube
    inside &= np.abs(u @ _OCTA.T).max(-1) <= octa
    return inside


def draw_particles(shape, rng, fraction=0.27, d50_vox=76.0, sigma_ln=0.4, overlap=0.10,
                   void_share=0.3) -> list[dict]:
    """Particle list: centre, rotation, semi-axes, facets, voids; placed largest first."""
    n_vox = float(np.prod(shape))
    median = d50_vox * math.exp(-3 * sigma_ln**2)  # number median of a log-normal with this volume median
    diameters = []
    total = 0.0
    while total < fraction * n_vox:
        d = float(np.clip(rng.lognormal(math.log(median), sigma_ln), 12, 360))
        diameters.append(d)
        total += math.pi / 6 * d**3
    probe = rng.uniform(-1, 1, size=(20000, 3))
    probe = probe[(probe**2).sum(1) <= 1]
    placed_c, placed_r, particles = [], [], []
    for d in sorted(diameters, reverse=True):
        cube, octa = rng.uniform(0.78, 0.92), rng.uniform(1.15, 1.45)
        q = rng.uniform(0.75, 1.0, size=2)
        kappa = _inside_unit(probe, cube, octa).mean()  # kept share of the unit ball
        s = (d**3 / (8 * kappa * q[0] * q[1])) ** (1 / 3)  # volume κ·4/3π s³ q1 q2 = π/6 d³
        radius = s
        for _ in range(300):
            c = rng.uniform(0, 1, 3) * np.array(shape)
            if placed_c:
                dist = np.linalg.norm(np.array(placed_c) - c, axis=1)
                if np.any(dist < (1 - overlap) * (np.array(placed_r) + radius)):
                    continue
            break
        else:
            continue  # no room: skip this one (reported as the achieved fraction)
        placed_c.append(c)
        placed_r.append(radius)
        voids = []
        if d >= 30 and rng.uniform() < void_share:
            for _ in range(int(rng.integers(1, 9))):
                r_void = rng.uniform(1.0, 6.0)
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                voids.append((rng.uniform(0, 0.6) * direction).tolist() + [r_void])
        particles.append({"centre": c.tolist(), "rotation": _random_rotation(rng).tolist(),
                          "semi_axes": (s * np.array([1.0, q[0], q[1]])).tolist(), "cube": cube,
                          "octa": octa, "d_eq_design": d, "radius": radius, "voids": voids})
    return particles


def _background(z, y, x, waves) -> np.ndarray:
    """Glue (True) or air: the sign of a smooth separable random field (a sum of products of cosines)."""
    field = np.zeros((z.size, y.size, x.size), np.float32)
    for (kz, ky, kx), (pz, py, px) in waves:
        field += (np.cos(kz * z + pz)[:, None, None] * np.cos(ky * y + py)[None, :, None]
                  * np.cos(kx * x + px)[None, None, :]).astype(np.float32)
    return field > -0.3


def render_slab(z0, z1, shape, particles, waves, rng, halo=3):
    """The uint8 grey slab z0:z1 (rendered with a halo for the blur); returns (grey, NMC voxels)."""
    from scipy import ndimage as ndi

    a, b = max(z0 - halo, 0), min(z1 + halo, shape[0])
    z = np.arange(a, b, dtype=np.float32)
    y = np.arange(shape[1], dtype=np.float32)
    x = np.arange(shape[2], dtype=np.float32)
    glue = _background(z, y, x, waves)
    nmc = np.zeros(glue.shape, bool)
    void = np.zeros(glue.shape, bool)
    for p in particles:
        c, r = np.array(p["centre"]), p["radius"]
        lo = np.maximum(np.floor(c - r).astype(int), [a, 0, 0])
        hi = np.minimum(np.ceil(c + r).astype(int) + 1, [b, shape[1], shape[2]])
        if np.any(hi <= lo):
            continue
        grid = np.stack(np.meshgrid(*[np.arange(lo[i], hi[i], dtype=np.float32) - np.float32(c[i])
                                      for i in range(3)], indexing="ij"), -1)
        rot = np.asarray(p["rotation"], np.float32)
        u = (grid @ rot) / np.asarray(p["semi_axes"], np.float32)
        inside = _inside_unit(u, p["cube"], p["octa"])
        box = tuple(slice(lo[i] - (a if i == 0 else 0), hi[i] - (a if i == 0 else 0)) for i in range(3))
        nmc[box] |= inside
        for *offset, r_void in p["voids"]:
            centre = (rot @ (np.array(offset) * np.array(p["semi_axes"]))).astype(np.float32)
            hole = ((grid - centre) ** 2).sum(-1) <= r_void**2
            void[box] |= hole & inside
    nmc &= ~void
    grey = np.where(nmc, GREY["nmc"], np.where(glue & ~void, GREY["glue"], GREY["air"])).astype(np.float32)
    grey = ndi.gaussian_filter(grey, BLUR_SIGMA)[z0 - a : z0 - a + (z1 - z0)]
    grey += rng.normal(0, NOISE_SIGMA, size=grey.shape).astype(np.float32)
    n_nmc = int(nmc[z0 - a : z0 - a + (z1 - z0)].sum())
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8), n_nmc


def render(shape, out: Path, seed=0, slab=16, **particle_options) -> dict:
    import h5py

    rng = np.random.default_rng(seed)
    particles = draw_particles(shape, rng, **particle_options)
    waves = [(tuple(2 * np.pi / rng.uniform(150, 600, 3)), tuple(rng.uniform(0, 2 * np.pi, 3)))
             for _ in range(4)]
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n_nmc = 0
    start = time.perf_counter()
    with h5py.File(tmp, "w") as f:
        ds = f.create_dataset("volume", shape=shape, dtype=np.uint8)  # contiguous: ct-analyse memory-maps it
        ds.attrs["description"] = ("directly rendered paper-like grey volume (no CT forward model; a speed "
                                   "and memory benchmark input), bench_analyse_scale.py")
        for z0 in range(0, shape[0], slab):
            z1 = min(z0 + slab, shape[0])
            grey, n = render_slab(z0, z1, shape, particles, waves, rng)
            ds[z0:z1] = grey
            n_nmc += n
    os.replace(tmp, out)
    d = np.array([p["d_eq_design"] for p in particles])
    vol = d**3
    order = np.argsort(d)
    d50_vol = float(d[order][np.searchsorted(np.cumsum(vol[order]), vol.sum() / 2)])
    info = {"shape": list(shape), "voxels": int(np.prod(shape)), "seed": seed, "n_particles": len(particles),
            "nmc_fraction": n_nmc / float(np.prod(shape)), "d_eq_design_volume_median_vox": d50_vol,
            "d_eq_design_max_vox": float(d.max()), "n_with_voids": sum(bool(p["voids"]) for p in particles),
            "render_s": time.perf_counter() - start, "grey": GREY, "noise_sigma": NOISE_SIGMA,
            "blur_sigma": BLUR_SIGMA, "particle_options": particle_options}
    out.with_name(out.stem + "_particles.json").write_text(json.dumps({"info": info, "particles": particles}))
    return info


# ------------------------------------------------------------------------------------------- run

BOOT = ("import logging, sys; logging.basicConfig(level=logging.WARNING, stream=sys.stderr, "
        "format='%(created).3f %(name)s %(message)s'); "
        "logging.getLogger('helpers.stages').setLevel(logging.INFO); "
        "from helpers.cli import main; sys.exit(main(sys.argv[1:]))")


def run_measured(cmd, log_path: Path, interval=0.2) -> dict:
    """Run ``cmd``; wall time, memory samples (t, rss, anon) of its process tree, stage times from its log."""
    import psutil

    start_wall = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, env=ENV, stdout=log, stderr=subprocess.STDOUT, text=True)
        root = psutil.Process(proc.pid)
        samples = []
        while proc.poll() is None:
            rss = anon = 0
            try:
                procs = [root, *root.children(recursive=True)]
            except psutil.Error:
                procs = [root]
            for p in procs:
                try:
                    m = p.memory_info()
                except psutil.Error:
                    continue
                rss += m.rss
                anon += m.rss - m.shared
            samples.append((time.time(), rss, anon))
            time.sleep(interval)
    wall = time.time() - start_wall
    text = log_path.read_text()
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}): {text[-3000:]}")
    stages = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[1] == "helpers.stages" and parts[2] == "stage":
            name = " ".join(parts[3:]).split(" start")[0].split(" end")[0]
            key = "start" if " start" in line else "end"
            stages.setdefault(name, {})[key] = float(parts[0])
    t = np.array([s[0] for s in samples])
    rss = np.array([s[1] for s in samples]) / 2**30
    anon = np.array([s[2] for s in samples]) / 2**30
    out = {"wall_s": wall, "peak_rss_gb": float(rss.max()), "peak_anon_gb": float(anon.max()),
           "load_avg_end": os.getloadavg(), "stages": {}}
    for name, se in stages.items():
        if "start" not in se or "end" not in se:
            continue
        sel = (t >= se["start"]) & (t <= se["end"] + interval)
        out["stages"][name] = {"s": se["end"] - se["start"],
                               "peak_rss_gb": float(rss[sel].max()) if sel.any() else float("nan"),
                               "peak_anon_gb": float(anon[sel].max()) if sel.any() else float("nan")}
    out["tail"] = text.strip().splitlines()[-1] if text.strip() else ""
    return out


def compare_outputs(a: Path, b: Path, slab=32) -> dict:
    """Labels voxel by voxel (slab-wise) and every table column: differing voxels, max relative difference."""
    import h5py

    result = {}
    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        la, lb = fa["labels"], fb["labels"]
        if la.shape != lb.shape:
            return {"labels": f"shapes differ {la.shape} {lb.shape}"}
        differ = sum(int(np.count_nonzero(la[z : z + slab] != lb[z : z + slab]))
                     for z in range(0, la.shape[0], slab))
        result["labels_voxels_differing"] = differ
        for group in ("particles", "voids", "morphology"):
            if group not in fa:
                continue
            worst = 0.0
            for col in fa[group]:
                x, y = fa[group][col][()], fb[group][col][()]
                if x.shape != y.shape:
                    worst = float("inf")
                    break
                if x.dtype.kind in "fiub":
                    x, y = x.astype(float), y.astype(float)
                    both_nan = np.isnan(x) & np.isnan(y)
                    diff = np.abs(x - y) / np.maximum(np.abs(x), 1e-300)
                    diff[both_nan] = 0
                    worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
                elif not np.array_equal(x, y):
                    worst = float("inf")
            result[f"{group}_max_rel_diff"] = worst
            result[f"{group}_rows"] = int(len(fa[group]["label"][()]))
    return result


def run(volume: Path, modes, tag: str, work: Path, threshold=None, extra=()) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    info_path = volume.with_name(volume.stem + "_particles.json")
    info = json.loads(info_path.read_text())["info"] if info_path.is_file() else {}
    results = {"volume": str(volume), "render": info, "modes": {}}
    json_path = OUT / f"analyse_scale_{tag}.json"
    OUT.mkdir(exist_ok=True)
    for mode in modes:
        out = work / f"{tag}_{mode}.h5"
        cmd = [sys.executable, "-c", BOOT, "ct-analyse", str(volume), "--out", str(out), "--overwrite",
               "--dataset", "volume", *extra]
        if threshold is not None:
            cmd += ["--threshold", str(threshold)]
        base, _, mapped = mode.partition("+")
        if base.startswith("local"):
            cmd += ["--scheduler", "local", "--workers", base[len("local"):]]
        if mapped == "mm":
            cmd += ["--scratch-dir", str(work / f"{tag}_{mode}.scratch")]
        print(f"[{time.strftime('%H:%M:%S')}] {mode}: load {os.getloadavg()[0]:.1f}", flush=True)
        load_start = os.getloadavg()
        r = run_measured(cmd, work / f"{tag}_{mode}.log")
        r["load_avg_start"] = load_start
        results["modes"][mode] = r
        print(json.dumps({mode: {k: v for k, v in r.items() if k != "stages"}}), flush=True)
        for name, s in r["stages"].items():
            print(f"   {name:16s} {s['s']:8.1f} s  rss {s['peak_rss_gb']:.2f} GB  "
                  f"anon {s['peak_anon_gb']:.2f} GB")
        if mode != modes[0]:
            r["vs_" + modes[0]] = compare_outputs(work / f"{tag}_{modes[0]}.h5", out)
            print("   vs", modes[0], r["vs_" + modes[0]], flush=True)
        json_path.write_text(json.dumps(results, indent=1))
    return results


STAGES = ["segment", "label clusters", "split clusters", "particle boxes", "voids", "morphology", "write"]


def markdown(json_path: Path) -> str:
    """Per-mode, per-stage table (s; peak rss / anon GB) of a ``run`` JSON, and the comparisons."""
    data = json.loads(Path(json_path).read_text())
    modes = data["modes"]
    lines = ["| stage | " + " | ".join(modes) + " |", "|---|" + "---|" * len(modes)]
    for name in STAGES + ["whole command"]:
        cells = []
        for r in modes.values():
            st = r if name == "whole command" else r["stages"].get(name)
            if st is None:
                cells.append("—")
                continue
            t = st["wall_s"] if name == "whole command" else st["s"]
            cells.append(f"{t:.0f} s; {st['peak_rss_gb']:.2f} / {st['peak_anon_gb']:.2f} GB")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    loads = [f"{m}: {(r.get('load_avg_start') or [float('nan')])[0]:.1f} → {r['load_avg_end'][0]:.1f}"
             for m, r in modes.items()]
    lines.append("")
    lines.append("Load average (1 min) at start → end: " + "; ".join(loads) + ".")
    for m, r in modes.items():
        for key, value in r.items():
            if key.startswith("vs_"):
                lines.append(f"{m} {key.replace('_', ' ')}: {value}")
    return "\n".join(lines)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")  # none (``make bench``): the quick 1/512 case
    r = sub.add_parser("render", help="write the paper-like grey volume (uint8 HDF5 /volume)")
    r.add_argument("--shape", type=int, nargs=3, default=[480, 1280, 1280], metavar=("Z", "Y", "X"))
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--fraction", type=float, default=0.27, help="NMC volume fraction (design input)")
    r.add_argument("--d50-vox", type=float, default=76.0, help="volume-weighted median d_eq, voxels")
    r.add_argument("--overlap", type=float, default=0.10,
                   help="allowed overlap of the bounding spheres (share of the radii sum): touching pairs")
    m = sub.add_parser("run", help="time ct-analyse on a rendered volume")
    m.add_argument("volume", type=Path)
    m.add_argument("--modes", nargs="+", default=["inproc", "local1", "local2"],
                   help="inproc, localN (--scheduler local --workers N); +mm: with --scratch-dir "
                        "(whole-volume arrays memory-mapped), e.g. inproc+mm local2+mm")
    m.add_argument("--tag", default="run")
    m.add_argument("--work", type=Path, default=Path("/work/scratch18/analyse"))
    m.add_argument("--threshold", type=float, help="manual NMC threshold (default: the command's fit)")
    m.add_argument("--no-morphology", action="store_true")
    t = sub.add_parser("table", help="markdown table of a run's JSON")
    t.add_argument("json", type=Path)
    args = parser.parse_args(argv)
    if args.command is None:  # quick case: a 1/512 cut rendered and analysed in-process and on 2 workers
        import tempfile

        with tempfile.TemporaryDirectory(prefix="bench_analyse_") as tmp:
            volume = Path(tmp) / "v512.h5"
            print(json.dumps(render((120, 320, 320), volume)))
            result = run(volume, ["inproc+mm", "local2+mm"], "1of512", Path(tmp) / "work")
        print(markdown(OUT / "analyse_scale_1of512.json"))
        return result
    if args.command == "table":
        print(markdown(args.json))
        return {}
    if args.command == "render":
        info = render(tuple(args.shape), args.out, seed=args.seed, fraction=args.fraction,
                      d50_vox=args.d50_vox, overlap=args.overlap)
        print(json.dumps(info, indent=1))
        return info
    extra = ["--no-morphology"] if args.no_morphology else []
    return run(args.volume, args.modes, args.tag, args.work, args.threshold, extra)


if __name__ == "__main__":
    main()
