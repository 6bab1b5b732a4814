"""Many SXDM scans, one task each: ``sxdm-maps IN1.h5 IN2.h5 … --out-dir DIR`` (in-process or on Dask).

Each task gets file paths only, opens the scan inside the task (``hdf5plugin`` imported there, so a Dask
worker reads compressed frames too) and writes ``DIR/<input stem>_maps.h5`` with
:func:`helpers.sxdm.reduce.reduce`, the same content as the one-input ``--out`` form (written under a
temporary name and renamed, so a failed scan leaves nothing that looks complete). A scan that fails is
reported by name; the others finish.
"""

from __future__ import annotations

from pathlib import Path

from helpers.cluster import TaskOutcome, run_tasks


def maps_path(out_dir, input_path) -> Path:
    """Output file of one input in ``--out-dir``: ``DIR/<input file stem>_maps.h5``."""
    return Path(out_dir) / f"{Path(input_path).stem}_maps.h5"


def plan_outputs(inputs, out_dir) -> list[tuple[str, str]]:
    """``(input, output)`` pairs; raises ``ValueError`` before any work for clashing or missing names."""
    pairs = [(str(Path(p)), str(maps_path(out_dir, p))) for p in inputs]
    missing = [p for p, _ in pairs if not Path(p).exists()]
    if missing:
        raise OSError(f"SXDM input(s) not found: {', '.join(missing)}")
    outputs = [o for _, o in pairs]
    clash = sorted({o for o in outputs if outputs.count(o) > 1})
    if clash:
        raise ValueError(
            f"--out-dir: several inputs have the same file stem and would write {clash[0]}; "
            "rename them or run them into different --out-dir folders"
        )
    for p, o in pairs:
        if Path(p).resolve() == Path(o).resolve():
            raise ValueError(f"{o} is an input file: the input is never modified, choose another --out-dir")
    return pairs


def reduce_scan_task(pair: tuple[str, str], options: dict) -> dict:
    """Reduce one scan (``pair`` = input path, output path) with ``reduce(**options)``; a summary dict."""
    import hdf5plugin  # noqa: F401 - registers the HDF5 compression filters in this (worker) process

    from helpers.sxdm.reduce import flag_summary, reduce

    source, out = pair
    maps = reduce(source, out, progress=False, **options)
    return {
        "input": source,
        "output": out,
        "shape": tuple(int(n) for n in maps.shape),
        "n_mask": int(maps.mask.sum()),
        "reference_d": float(maps.reference_d),
        "flags": {k: int(v) for k, v in flag_summary(maps).items() if v},
        "params": dict(maps.params),
    }


def reduce_many(inputs, out_dir, options: dict, client=None, quiet: bool = False) -> list[TaskOutcome]:
    """One :func:`reduce_scan_task` per input, on ``client`` (``None``: in this process, one by one)."""
    pairs = plan_outputs(inputs, out_dir)
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return run_tasks(client, reduce_scan_task, pairs, options, desc="scans", quiet=quiet,
                     names=lambda pair: Path(pair[0]).name)
