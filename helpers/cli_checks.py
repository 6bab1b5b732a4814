"""Checks and atomic writes shared by the analysis commands (``sxdm-maps``, ``sxdm-curvature``,
``ct-reconstruct``, ``ct-analyse``).

Every command validates its options and its input before the long work and writes its output so that
a file at ``--out`` is always complete: written under a temporary name in the same folder and renamed
(an atomic ``os.replace``) only when finished. An existing ``--out`` is never written into: it is
refused (left untouched) unless ``--overwrite`` is given, and then replaced only by the rename of the
finished result. ``--out`` may never be one of the inputs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

#: exit code of a command that wrote its per-item results but not its summary (e.g. no ensemble fit)
EXIT_PARTIAL = 3


def same_file(a: str | Path, b: str | Path) -> bool:
    """True if the two paths name the same file (symbolic links and relative paths resolved)."""
    a, b = Path(a), Path(b)
    if a.exists() and b.exists():
        return os.path.samefile(a, b)
    return a.resolve() == b.resolve()


def check_out_path(out: str | Path, inputs: Iterable[str | Path], *, overwrite: bool = False) -> Path:
    """Refuse an ``--out`` that is an input, that sits in a missing folder, or that exists (without
    ``overwrite``); returns ``out`` as a Path. Nothing is written or removed."""
    out = Path(out)
    for source in inputs:
        if same_file(out, source):
            raise ValueError(f"--out {out} is the input file {source}: inputs are never modified, "
                             "choose another output name")
    if not out.parent.is_dir():
        raise OSError(f"--out {out}: folder {out.parent} does not exist; create it first")
    if out.is_dir():
        raise OSError(f"--out {out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise OSError(f"--out {out} exists and was left untouched: choose another name or pass "
                      "--overwrite to replace it")
    return out


@contextlib.contextmanager
def atomic_output(out: str | Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``out``; rename it to ``out`` when the block ends without error,
    delete it otherwise. ``out`` is untouched until the rename."""
    out = Path(out)
    handle, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=f"{suffix}.partial", dir=out.parent)
    os.close(handle)
    tmp = Path(tmp)
    try:
        yield tmp
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)


def positive(option: str, value: float | None, *, allow_zero: bool = False) -> None:
    """Refuse a non-finite or non-positive (or negative, with ``allow_zero``) option value."""
    if value is None:
        return
    bad = not np.isfinite(value) or (value < 0 if allow_zero else value <= 0)
    if bad:
        raise ValueError(f"{option} {value}: must be a finite number {'≥' if allow_zero else '>'} 0")


def within(option: str, value: float | None, low: float, high: float, *, closed: bool = True) -> None:
    """Refuse an option value outside [low, high] (or (low, high) with ``closed=False``)."""
    if value is None:
        return
    ok = np.isfinite(value) and ((low <= value <= high) if closed else (low < value < high))
    if not ok:
        brackets = "[]" if closed else "()"
        raise ValueError(f"{option} {value}: must lie in {brackets[0]}{low}, {high}{brackets[1]}")


def check_rank(shape: tuple[int, ...], rank: int, what: str, hint: str = "") -> None:
    """Refuse data of the wrong number of dimensions (or with an empty axis)."""
    if len(shape) != rank:
        raise ValueError(f"{what} has {len(shape)} dimension(s) {tuple(shape)}; {rank} are needed"
                         + (f" ({hint})" if hint else ""))
    if 0 in shape:
        raise ValueError(f"{what} is empty: shape {tuple(shape)}")


def check_finite_frames(frames, what: str, block: int = 16, first_index: int = 0) -> None:
    """Refuse NaN/inf in a stack of frames (array or h5py dataset, frames along axis 0), naming the
    frames; read ``block`` frames at a time. Integer data cannot hold NaN and are not read."""
    if np.issubdtype(np.dtype(frames.dtype), np.integer):
        return
    bad: list[int] = []
    for start in range(0, frames.shape[0], block):
        chunk = np.asarray(frames[start : start + block])
        finite = np.isfinite(chunk.reshape(chunk.shape[0], -1)).all(axis=1)
        bad.extend(int(first_index + start + i) for i in np.flatnonzero(~finite))
    if bad:
        shown = ", ".join(map(str, bad[:10])) + (" …" if len(bad) > 10 else "")
        raise ValueError(f"{what}: NaN or infinite values in {len(bad)} frame(s), index {shown}; "
                         "remove or repair these frames first")


def require_modules(modules: dict[str, str], purpose: str) -> None:
    """Refuse to start when a module needed later is missing: ``{module: distribution}``."""
    missing = [dist for mod, dist in modules.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise OSError(f"{purpose} needs {', '.join(missing)}, not installed: "
                      f"pip install {' '.join(missing)}")
