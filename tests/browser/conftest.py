"""The browser test runs only when asked (``make test-browser`` sets ``NMC_BROWSER_TEST=1``).

It needs the system Chromium and takes minutes, so ``make test`` does not collect it.
"""

import os

if os.environ.get("NMC_BROWSER_TEST") != "1":
    collect_ignore_glob = ["test_*.py"]
