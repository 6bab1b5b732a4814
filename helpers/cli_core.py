"""Workbook-level sub-commands of ``nmc-workbook``: reproduce, data, versions."""

from __future__ import annotations

import importlib.metadata

#: distributions whose versions ``nmc-workbook versions`` prints (and CI logs)
REPORTED_PACKAGES = (
    "nmc-xray-workbook",
    "numpy",
    "scipy",
    "matplotlib",
    "h5py",
    "hdf5plugin",
    "pandas",
    "scikit-image",
    "scikit-learn",
    "numba",
    "xrayutilities",
    "algotom",
    "nabu",
    "tifffile",
    "fabio",
    "edt",
    "connected-components-3d",
    "fill-voids",
    "trimesh",
    "dask",
    "distributed",
    "dask-jobqueue",
    "ipywidgets",
    "jupyterlab",
    "nbval",
    "pytest",
    "ruff",
    "xsocs",
    "porespy",
    "localthickness",
    "tomopy",
)


def add_arguments(parser, name: str) -> None:
    """Arguments of the ``reproduce``, ``data`` and ``versions`` sub-commands."""
    if name == "reproduce":
        parser.add_argument(
            "notebooks",
            nargs="*",
            help="run only notebooks whose name contains these (default: all)",
        )
    elif name == "data":
        parser.add_argument("--out", help="folder to write to (default: data_samples/)")
        parser.add_argument("samples", nargs="*", help="regenerate only these samples (default: all)")


def run(args) -> int:
    """Dispatch on ``args.command``."""
    if args.command == "reproduce":
        from helpers.notebook_runner import reproduce

        reproduce(args.notebooks or None)
    elif args.command == "data":
        from pathlib import Path

        from helpers.paths import repo_root
        from helpers.synthetic.registry import regenerate_samples

        out = Path(args.out) if args.out else repo_root() / "data_samples"
        regenerate_samples(out, args.samples or None)
    elif args.command == "versions":
        for line in package_versions():
            print(line)
    return 0


def package_versions() -> list[str]:
    """``name version`` lines for :data:`REPORTED_PACKAGES` (``not installed`` where absent)."""
    lines = []
    for dist in REPORTED_PACKAGES:
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "not installed"
        lines.append(f"{dist:26s} {version}")
    return lines
