"""Per-task result files of the distributed reconstruction (phase ranges, back-projection slabs).

A task writes its file under a temporary ``.part`` name and renames it only when complete, tagged with
the run's parameters; a resumed run keeps exactly the files that are complete and of the same run.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path


def parts_folder(out) -> Path:
    """The folder beside output ``out`` for its per-task and scratch files: ``OUT.parts``."""
    out = Path(out)
    return out.with_name(out.name + ".parts")


@contextmanager
def part_writer(target: Path, what: str, run_tag: str):
    """Yield an ``h5py.File`` open for writing at ``target``'s ``.part`` name; on leaving, tag it with
    ``run_tag`` and rename it to ``target``. On any error the partial file is removed; a write error
    (``OSError``) is raised again naming ``what`` (e.g. "slab rows 0:8") and the file."""
    import h5py

    target = Path(target)
    partial = target.with_suffix(".h5.part")
    try:
        with h5py.File(partial, "w") as g:
            yield g
            g.attrs["run"] = run_tag
        os.replace(partial, target)
    except OSError as err:
        partial.unlink(missing_ok=True)
        raise OSError(f"{what}: cannot write {partial} ({err}); is the disk full?") from err
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def is_finished(path: Path, run_tag: str, dataset: str) -> bool:
    """True when ``path`` is a complete part file of run ``run_tag`` holding ``dataset``."""
    import h5py

    try:
        with h5py.File(path, "r") as g:
            return g.attrs.get("run") == run_tag and dataset in g
    except OSError:
        return False
