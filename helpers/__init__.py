"""Helpers of the NMC-622 X-ray microscopy workbook (SXDM at ESRF ID01, nano-CT at ESRF ID16B).

Importing this package has no side effects: call :func:`setup` in a notebook to apply the
workbook's matplotlib style.

Sub-packages
------------
- ``helpers.sxdm``: scanning X-ray diffraction microscopy (ID01 files, q-space, strain, tilt, curvature)
- ``helpers.nanoct``: phase-contrast nano-CT (ID16B files, phase retrieval, reconstruction, segmentation)
- ``helpers.synthetic``: forward models that make data with exact truth (used by tests and notebooks
  only; analysis code never imports it)
"""

from helpers.paths import data_samples_dir, figures_dir, save_figure, setup

__version__ = "0.1.0"

__all__ = ["__version__", "data_samples_dir", "figures_dir", "save_figure", "setup"]
