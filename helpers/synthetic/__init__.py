"""Forward models with exact truth: simulated SXDM crystals and scans, nano-CT powder phantoms.

Only tests, benchmarks, notebooks and the ``make data`` command import this package; the analysis
code in ``helpers.sxdm`` and ``helpers.nanoct`` never does, so truth cannot leak into an analysis.
"""
