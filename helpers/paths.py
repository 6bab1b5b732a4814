"""Where the workbook's inputs and outputs live, and the one figure-saving helper.

Environment variables (all optional):

- ``NMC_DATA_SAMPLES``: folder of the bundled sample data (default: ``data_samples/`` of this checkout)
- ``NMC_FIGURES_DIR``: folder every figure is written to (default: ``figures/`` of this checkout)
- ``NMC_CACHE_DIR``: folder for larger data generated on demand (default: ``.cache/`` of this checkout)
"""

from __future__ import annotations

import os
from pathlib import Path

_STYLE_FILE = Path(__file__).with_name("workbook.mplstyle")


def repo_root() -> Path:
    """The checkout that holds this ``helpers`` package (an editable install points into it)."""
    return Path(__file__).resolve().parent.parent


def _from_env_or_repo(variable: str, default_name: str) -> Path:
    value = os.environ.get(variable)
    return Path(value).expanduser() if value else repo_root() / default_name


def data_samples_dir() -> Path:
    """Folder of the bundled sample data; raises a clear error when it is not there."""
    folder = _from_env_or_repo("NMC_DATA_SAMPLES", "data_samples")
    if not folder.is_dir():
        raise FileNotFoundError(
            f"sample-data folder {folder} not found: run the notebooks from a clone of the workbook "
            "(pip install -e . inside it), or set NMC_DATA_SAMPLES to the folder holding the samples"
        )
    return folder


def data_sample(name: str) -> Path:
    """Path of one bundled sample file, with an error saying how to regenerate it if missing."""
    path = data_samples_dir() / name
    if not path.exists():
        raise FileNotFoundError(
            f"sample file {name!r} is missing from {path.parent}: run `make data` to regenerate "
            "the bundled samples from their seeds"
        )
    return path


def figures_dir(create: bool = True) -> Path:
    """Folder every figure is written to (``NMC_FIGURES_DIR`` or ``figures/``), checked writable."""
    folder = _from_env_or_repo("NMC_FIGURES_DIR", "figures")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(
                f"cannot create the figure folder {folder} ({err.strerror}): set NMC_FIGURES_DIR "
                "to a folder you can write to"
            ) from err
        if not os.access(folder, os.W_OK):
            raise OSError(
                f"the figure folder {folder} is not writable: set NMC_FIGURES_DIR to a folder you "
                "can write to"
            )
    return folder


def cache_dir() -> Path:
    """Folder for larger cases generated on demand (never committed)."""
    folder = _from_env_or_repo("NMC_CACHE_DIR", ".cache")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_figure(fig, name: str, formats: tuple[str, ...] = ("png",), dpi: int = 150) -> None:
    """Save ``fig`` as ``<figures_dir>/<name>.<fmt>``; ``name`` follows the paper panel (``fig1c_d_spacing``).

    Returns nothing, so a notebook cell that ends with it stores no path in its output.
    """
    if not name or any(sep in name for sep in ("/", "\\")) or name.startswith("."):
        raise ValueError(f"figure name {name!r} must be a plain file stem such as 'fig1c_d_spacing'")
    folder = figures_dir()
    for fmt in formats:
        metadata = {"Software": None} if fmt == "png" else None  # byte-stable PNGs across versions
        fig.savefig(folder / f"{name}.{fmt}", dpi=dpi, metadata=metadata)


def setup() -> None:
    """Apply the workbook's matplotlib style (explicit, never at import)."""
    import matplotlib.pyplot as plt

    plt.style.use(str(_STYLE_FILE))
