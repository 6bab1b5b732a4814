"""Nano-CT reconstruction chain side by side with its peers, on exact analytic data (one run, one process).

- Reconstruction: exact line integrals of an analytic powder slice (ellipses: no pixel grid, no inverse
  crime), 360°: NRMSE, SSIM, gain and wall time of the workbook's FBP, algotom FBP (single-threaded:
  its multi-threaded back-projector has a data race), algotom DFI, scikit-image ``iradon`` and tomopy
  gridrec when importable. The paper's 2048 px × 3203 angles are measured only with ``--full``;
  otherwise a smaller size is measured and the per-slice cost extrapolated ∝ n_det² · n_angles (stated).
- Paganin: projected thickness of NMC spheres after Fresnel propagation (δ/β = 87), error vs exact and
  time, workbook vs nabu, on an n × n projection (2048² with ``--full``).
- Rings: stripe residual and time of the four ring removers on the analytic sinogram with stripes.

Writes ``benchmarks/out/bench_ct_recon.json`` and the table ``benchmarks/RESULTS_ct_recon.md``.
The machine (2 cores) is shared with other jobs: absolute times vary, ratios within one run hold.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
import tracemalloc
from pathlib import Path

import numpy as np

from helpers.nanoct import phase, recon, rings
from helpers.synthetic import ct_projections as cp

HERE = Path(__file__).resolve().parent
PAPER_DET, PAPER_ANGLES, PAPER_SLICES = 2560, 3203, 960


def _timed(fn, repeat=1):
    best, out = np.inf, None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return out, best


def bench_reconstruction(n: int, n_angles: int, methods: list[str]) -> list[dict]:
    from skimage.metrics import structural_similarity

    ellipses = cp.powder_ellipses(n, rng=0)
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    sino = cp.ellipse_sinogram(ellipses, angles, n).astype(np.float32)
    truth = cp.ellipse_image(ellipses, n, supersample=2)
    mask = recon.disk_mask(n)
    rows = []
    images = {}
    for method in methods:
        try:
            # warm-up outside the timing: numba JIT on a small case; the per-size calibration of the
            # backends that need one (dfi, skimage, gridrec) at the measured size
            recon.reconstruct(sino[::16, :: n // 64], angles[::16], method=method)
            if method not in ("fbp", "algotom_fbp", "gridding", "nufft"):
                recon.calibration(method, n, (0.0, round(2 * np.pi, 9), n_angles))
        except ImportError as err:
            rows.append({"method": method, "skipped": str(err).splitlines()[0]})
            continue
        extra = {}
        if method in ("gridding", "nufft"):
            # first slice of a volume: builds the NUFFT plan (points, factors; numpy peak traced);
            # every further slice with the same angles and centre reuses it: best of 3
            tracemalloc.start()
            _, first = _timed(lambda m=method: recon.reconstruct(sino, angles, method=m))
            extra["traced_peak_mb"] = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()
            extra["seconds_first_slice"] = first
            extra["stated_bound_mb"] = recon.gridding_memory_bytes(n_angles, n) / 1e6
            img, seconds = _timed(lambda m=method: recon.reconstruct(sino, angles, method=m), repeat=3)
        else:
            img, seconds = _timed(lambda m=method: recon.reconstruct(sino, angles, method=m))
        images[method] = img
        if method != "fbp" and "fbp" in images:
            extra["nrmse_vs_fbp"] = recon.nrmse(img, images["fbp"], mask)
        lo, hi = truth[mask].min(), truth[mask].max()
        rows.append(
            {
                "method": method,
                "n_det": n,
                "n_angles": n_angles,
                "nrmse": recon.nrmse(img, truth, mask),
                "ssim": float(
                    structural_similarity(
                        np.where(mask, truth, 0), np.where(mask, img, 0), data_range=hi - lo
                    )
                ),
                "gain": recon.gain(img, truth, mask),
                "seconds": seconds,
                "seconds_2048x3203_extrapolated": seconds * (2048 / n) ** 2 * (3203 / n_angles),
                "hours_paper_volume_extrapolated": seconds
                * (PAPER_DET / n) ** 2
                * (PAPER_ANGLES / n_angles)
                * PAPER_SLICES
                / 3600,
                **extra,
            }
        )
        print(rows[-1], flush=True)
    return rows


def bench_paganin(n: int) -> list[dict]:
    energy, pixel, z = 29.6, 25e-9, 1e-3
    delta = 1.05e-6
    y, x = np.mgrid[0:n, 0:n] - (n - 1) / 2
    r1, r2 = 0.16 * n, 0.06 * n
    chord = 2 * np.sqrt(np.clip(r1**2 - x**2 - y**2, 0, None)) + 2 * np.sqrt(
        np.clip(r2**2 - (x - 0.27 * n) ** 2 - (y + 0.2 * n) ** 2, 0, None)
    )
    lam = cp.wavelength_m(energy)
    k = 2 * np.pi / lam
    t = chord * pixel
    wave = np.exp(-k * delta / 87 * t - 1j * k * delta * t)
    intensity = (np.abs(cp.fresnel_propagate(wave, lam, z, pixel)) ** 2).astype(np.float32)
    truth = delta * chord
    inside = truth > 0
    rows = []
    for backend in ("workbook", "nabu"):
        phase.paganin(intensity[:64, :64], 87, energy, z, pixel, backend=backend)
        out, seconds = _timed(
            lambda b=backend: phase.paganin(intensity, 87, energy, z, pixel, backend=b), repeat=2
        )
        rows.append(
            {
                "backend": backend,
                "n": n,
                "thickness_error": float(abs(out[inside].sum() / truth[inside].sum() - 1)),
                "nrmse": float(np.sqrt(np.mean((out - truth) ** 2)) / truth.max()),
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    return rows


def bench_rings(n: int, n_angles: int) -> list[dict]:
    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    clean = cp.ellipse_sinogram(cp.powder_ellipses(n, rng=1), angles, n).astype(np.float32)
    rng = np.random.default_rng(0)
    stripes = rng.normal(0, 0.01, n) * clean.max()
    stripes[rng.choice(n, 8)] += 0.05 * clean.max()
    noisy = clean + stripes[None, :]
    rows = []
    for method in ("sorting", "filtering", "all", "munch"):
        out, seconds = _timed(lambda m=method: rings.remove_rings(noisy, m))
        rows.append(
            {
                "method": method,
                "n_det": n,
                "n_angles": n_angles,
                "residual": rings.stripe_residual(out, clean, stripes),
                "damage_on_clean": rings.stripe_residual(rings.remove_rings(clean, method), clean, stripes),
                "seconds": seconds,
            }
        )
        print(rows[-1], flush=True)
    return rows


def bench_out_of_core(n_rows: int, n_cols: int, n_angles: int, slab: int, workdir: Path) -> dict:
    """Peak memory of ``ct-reconstruct`` on a Data Exchange scan of n_rows × n_cols × n_angles (uint16).

    tracemalloc follows numpy's allocations (the working arrays whose size the bound states); the
    process's peak RSS adds the interpreter and libraries (~0.3 GB).
    """
    import resource
    import tracemalloc

    from helpers import cli as workbook_cli
    from helpers.nanoct import cli_reconstruct as cli
    from helpers.nanoct import io

    angles = np.linspace(0, 2 * np.pi, n_angles, endpoint=False)
    sino = cp.ellipse_sinogram(cp.powder_ellipses(n_cols, rng=0), angles, n_cols).astype(np.float32)
    counts = (5000 * np.exp(-1e-3 * sino))[:, None, :] * np.ones((1, n_rows, 1), np.float32)
    path = io.write_dataexchange(
        workdir / "ooc_scan.h5",
        counts.astype(np.uint16),
        np.full((4, n_rows, n_cols), 5100, np.uint16),
        np.full((2, n_rows, n_cols), 100, np.uint16),
        angles,
        25e-9,
    )
    del counts
    argv = ["ct-reconstruct", str(path), "--out", str(workdir / "ooc_recon.h5"), "--distances", "1e-4"]
    argv += ["--energy-kev", "29.6", "--slab", str(slab), "--quiet", "--overwrite"]
    args = workbook_cli.build_parser().parse_args(argv)
    # compile the numba back-projector first: JIT compilation is a one-time ~0.1 GB of Python objects,
    # not working memory that grows with the data
    recon.reconstruct(np.zeros((8, 16), np.float32), angles[:8])
    tracemalloc.start()
    t = time.perf_counter()
    cli.run(args)
    seconds = time.perf_counter() - t
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    import h5py

    with h5py.File(workdir / "ooc_recon.h5") as f:
        bound = int(f.attrs["memory_bound_bytes"])
    input_bytes = n_rows * n_cols * n_angles * 2
    return {
        "shape": [n_angles, n_rows, n_cols],
        "slab": slab,
        "input_mb": input_bytes / 2**20,
        "traced_peak_mb": peak / 2**20,
        "stated_bound_mb": bound / 2**20,
        "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": seconds,
    }


def write_markdown(result: dict, path: Path) -> None:
    lines = [
        "# Nano-CT reconstruction benchmark (`benchmarks/bench_ct_recon.py`)",
        "",
        f"Machine: {result['machine']} (2 cores shared with other jobs: absolute times vary, ratios hold).",
        "",
        "## Reconstruction of an exact analytic powder slice (360°)",
        "",
        "| backend | n_det × angles | NRMSE | NRMSE vs fbp | SSIM | gain | s / slice "
        "| s at 2048×3203 (extrap.) | h for 2560²×960 (extrap.) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["reconstruction"]:
        if "skipped" in r:
            lines.append(f"| {r['method']} | skipped: {r['skipped']} | | | | | | | |")
            continue
        vs_fbp = f"{100 * r['nrmse_vs_fbp']:.2f} %" if "nrmse_vs_fbp" in r else ""
        first = f" (first slice {r['seconds_first_slice']:.2f})" if "seconds_first_slice" in r else ""
        lines.append(
            f"| {r['method']} | {r['n_det']}×{r['n_angles']} | {100 * r['nrmse']:.2f} % | {vs_fbp} | "
            f"{r['ssim']:.3f} | {r['gain']:.3f} | {r['seconds']:.2f}{first} | "
            f"{r['seconds_2048x3203_extrapolated']:.1f} | {r['hours_paper_volume_extrapolated']:.1f} |"
        )
    lines += [
        "",
        "NRMSE over the reconstruction disk, normalised by the truth's range; the truth is the",
        "pixel-averaged analytic image, so NRMSE includes the partial-volume edges of ~60 particles.",
        "Gain = Σ img·truth / Σ truth².",
        "Extrapolation: per-slice cost ∝ n_det² · n_angles (back-projection); DFI and gridding scale",
        "closer to n·N_θ + n² log n (so their extrapolation is an upper bound). gridding: s / slice with",
        "the NUFFT plan reused (best of 3, as for every slice of a volume), first slice incl. the plan.",
        "NRMSE vs fbp: same disk, normalised by fbp's range.",
        "",
        "## Paganin phase retrieval (NMC spheres, δ/β = 87, z = 1 mm, exact Fresnel propagation)",
        "",
        "| backend | image | integrated thickness error | NRMSE | s / projection |",
        "|---|---|---|---|---|",
    ]
    for r in result["paganin"]:
        lines.append(
            f"| {r['backend']} | {r['n']}² | {100 * r['thickness_error']:.2f} % | {100 * r['nrmse']:.2f} % | "
            f"{r['seconds']:.3f} |"
        )
    lines += [
        "",
        "## Ring removal (stripes of 1 % of the maximum + 8 columns at 5 %)",
        "",
        "| method | sinogram | stripe residual | change of a clean sinogram | s |",
        "|---|---|---|---|---|",
    ]
    for r in result["rings"]:
        lines.append(
            f"| {r['method']} | {r['n_det']}×{r['n_angles']} | {r['residual']:.2f} | "
            f"{r['damage_on_clean']:.2f} | {r['seconds']:.2f} |"
        )
    lines += [
        "",
        "Residual: std of the column-mean error after correction / std of the injected stripes.",
        "",
    ]
    if "out_of_core" in result:
        o = result["out_of_core"]
        lines += [
            "## Out-of-core reconstruction (`nmc-workbook ct-reconstruct`, Paganin + `--method fbp`)",
            "",
            "| scan (angles × rows × cols) | slab | input | numpy peak | stated bound | process RSS | s |",
            "|---|---|---|---|---|---|---|",
            f"| {' × '.join(map(str, o['shape']))} | {o['slab']} | {o['input_mb']:.0f} MB | "
            f"{o['traced_peak_mb']:.0f} MB | {o['stated_bound_mb']:.0f} MB | "
            f"{o['process_peak_rss_mb']:.0f} MB | {o['seconds']:.0f} |",
            "",
            "numpy peak: tracemalloc during the run (after the one-time numba compilation); stated bound:",
            "`helpers.nanoct.cli_reconstruct.memory_bound_bytes`, stored in the output file;",
            "process RSS includes the",
            "interpreter and libraries. The bound grows with slab × n_angles × n_cols and the padded frame,",
            "not with the number of slices: at the paper's size (3203 × 2160 × 2560, slab 16, batch 4) it is",
            "1.9 GiB with Paganin and 5.2 GiB with the 4-distance CTF (four padded 4720 × 5120 spectra; the",
            "padding of half the frame could shrink to 3 Paganin lengths on large frames). The default",
            "`--method gridding` adds its NUFFT plan to the slab pass (1.2 GiB there): 3.1 GiB with Paganin,",
            "CTF unchanged (its phase pass dominates).",
            "",
        ]
    lines += [
        "## Findings",
        "",
        "- **algotom's CPU FBP has a data race** (threads over angles add into one image): repeated calls",
        "  differed by up to 15 % of the signal on this machine. The workbook runs it single-threaded",
        "  (`algotom_fbp`) and uses its own numba back-projector, parallel over image rows (`fbp`); both",
        "  agree to 0.2 % of the signal and are bit-reproducible (`tests/test_nanoct_recon.py`).",
        "- **≤ 2 s per 2048 × 3203 slice: met by `gridding`** (the workbook FBP evaluated by finufft's",
        "  type-1 NUFFT, single-threaded, on 2 shared cores at load ≈ 4): 1.7 s per slice when the NUFFT",
        "  plan is reused (every slice of a volume: same angles and centre), 3.9 s for the first slice",
        "  (builds the plan), against 42 s for the direct back-projector `fbp` and 40 s for `algotom_fbp`",
        "  in the same run (≈ 25× faster). It is the same reconstruction: 0.09 % NRMSE from `fbp` (the",
        "  linear interpolation of `fbp` is reproduced in Fourier space up to 1.5 cycles/px), the same",
        "  NRMSE against the truth (1.62 %), SSIM and gain. DFI is 3× slower than gridding and 2.7× less",
        "  accurate (4.4 %). Extrapolated to the paper's 2560² × 960 volume: ≈ 0.7 h (∝ n², an upper",
        "  bound: the NUFFT part grows ∝ n·N_θ + n² log n), against ≈ 17 h for direct back-projection.",
        "  Memory: numpy peak 0.44 GB for the first slice (tracemalloc; bound",
        "  `recon.gridding_memory_bytes` 1.0 GB incl. finufft's C++ arrays, kept as a plan between slices).",
        "  `nmc-workbook ct-reconstruct` uses it by default (`--method fbp` for the direct path).",
        "- **NRMSE ≤ 0.85 % is not reached by any FBP on this phantom** (all at 1.62 %, including the",
        "  peers): its ~60 sharp-edged particles put many partial-volume pixels and the Gibbs overshoot of",
        "  the unwindowed ramp in the NRMSE (the WORKBOOK's 0.82 % was another phantom). This is the",
        "  accuracy of FBP itself at this sampling, not of a backend. Timings vary with the other jobs on",
        "  the 2 cores (the earlier run at load 6–8 gave fbp 75 s, algotom_fbp 68 s, DFI 7.3 s); ratios",
        "  within one run hold. On a GPU, algotom's FBP (`gpu=True`) or nabu's CUDA back-projector would",
        "  also meet 2 s (no device was lent to this task, so not measured).",
        "- **Paganin**: the workbook's padded filter and nabu agree to 1e-4; nabu is faster (less padding);",
        "  the workbook pads by 3× the Paganin length so that small images (width ≲ 3L) stay correct.",
        "- **Rings** at 2048 × 3203: algotom sorting/filtering and nabu Münch leave about a quarter of the",
        "  stripes and change a clean sinogram by < 5 % of the stripe level; `all` is slower and leaves more",
        "  here. On small sinograms (256 px) a 21-px window or Münch's 4 levels flatten real features as",
        "  much as stripes: the workbook scales the window with the detector width.",
        "",
    ]
    path.write_text("\n".join(lines))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1024, help="detector width measured (default 1024)")
    parser.add_argument("--angles", type=int, default=1601, help="angles over 360° (default 1601)")
    parser.add_argument("--full", action="store_true", help="measure the paper's 2048 × 3203 (slow)")
    parser.add_argument(
        "--methods", nargs="*", default=["fbp", "gridding", "algotom_fbp", "dfi", "skimage", "gridrec"]
    )
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the table from the JSON")
    parser.add_argument("--update", action="store_true", help="keep rows of backends not measured now")
    parser.add_argument("--out-of-core-only", action="store_true", help="add the out-of-core run to the JSON")
    args = parser.parse_args(argv)
    if args.out_of_core_only:
        import tempfile

        json_path = HERE / "out" / "bench_ct_recon.json"
        result = json.loads(json_path.read_text())
        with tempfile.TemporaryDirectory() as tmp:
            result["out_of_core"] = bench_out_of_core(64, 512, 720, 8, Path(tmp))
        print(result["out_of_core"])
        json_path.write_text(json.dumps(result, indent=2))
        write_markdown(result, HERE / "RESULTS_ct_recon.md")
        return 0
    if args.markdown_only:
        write_markdown(
            json.loads((HERE / "out" / "bench_ct_recon.json").read_text()), HERE / "RESULTS_ct_recon.md"
        )
        return 0
    n, n_angles = (2048, 3203) if args.full else (args.n, args.angles)
    json_path = HERE / "out" / "bench_ct_recon.json"
    previous = json.loads(json_path.read_text()) if args.update and json_path.exists() else {}
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {platform.system()}",
        "reconstruction": bench_reconstruction(n, n_angles, args.methods),
        "paganin": bench_paganin(2048 if args.full else n),
        "rings": bench_rings(n, n_angles),
    }
    if previous:
        # keep the rows of backends not re-measured in this run, and the out-of-core measurement
        measured = {r["method"] for r in result["reconstruction"]}
        kept = [r for r in previous.get("reconstruction", []) if r["method"] not in measured]
        order = {m: i for i, m in enumerate(["fbp", "gridding", "algotom_fbp", "dfi", "skimage", "gridrec"])}
        result["reconstruction"] = sorted(
            result["reconstruction"] + kept, key=lambda r: order.get(r["method"], 9)
        )
        if "out_of_core" in previous:
            result["out_of_core"] = previous["out_of_core"]
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / "bench_ct_recon.json").write_text(json.dumps(result, indent=2))
    write_markdown(result, HERE / "RESULTS_ct_recon.md")
    print(f"wrote {out / 'bench_ct_recon.json'} and {HERE / 'RESULTS_ct_recon.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
