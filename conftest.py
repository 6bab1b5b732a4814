"""Session set-up shared by the unit tests and the nbval notebook runs.

Figures go to a temporary folder (kernels started by nbval inherit the environment), and the unit
tests draw with the non-interactive Agg backend.
"""

import os
import tempfile


def pytest_configure(config):
    import matplotlib

    matplotlib.use("Agg")
    if "NMC_FIGURES_DIR" not in os.environ:
        os.environ["NMC_FIGURES_DIR"] = tempfile.mkdtemp(prefix="nmc-test-figures-")
    os.environ.setdefault("NMC_CACHE_DIR", os.path.join(tempfile.gettempdir(), "nmc-workbook-cache"))
