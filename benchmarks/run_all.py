"""Run every ``benchmarks/bench_*.py`` in turn (``make bench``); each writes its own JSON and table row."""

import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    selection = sys.argv[1:]
    scripts = sorted(Path(__file__).parent.glob("bench_*.py"))
    if selection:
        scripts = [s for s in scripts if any(name in s.name for name in selection)]
    if not scripts:
        print("no benchmark scripts found")
    for script in scripts:
        print(f"=== {script.name}", flush=True)
        runpy.run_path(str(script), run_name="__main__")
