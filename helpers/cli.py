"""The ``nmc-workbook`` command: a thin layer over the functions the notebooks call.

Each analysis sub-command lives in its own module exposing ``add_arguments(parser)`` and
``run(args) -> int``; :data:`SUBCOMMANDS` lists them, and a module that is not there yet is skipped.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

import helpers

#: sub-command name → (module with add_arguments/run, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "reproduce": ("helpers.cli_core", "execute every notebook in order and write the figures"),
    "data": ("helpers.cli_core", "regenerate data_samples/ from their seeds"),
    "versions": ("helpers.cli_core", "print the versions of the workbook's dependencies"),
    "sxdm-maps": ("helpers.sxdm.cli_maps", "reduce an ID01 SXDM scan series to strain/tilt maps (HDF5)"),
    "sxdm-curvature": ("helpers.sxdm.cli_curvature", "radius of curvature from reduced maps"),
    "ct-reconstruct": ("helpers.nanoct.cli_reconstruct", "reconstruct a nano-CT scan out-of-core into HDF5"),
    "ct-analyse": ("helpers.nanoct.cli_analyse", "segment particles, measure shape and voids"),
    "correlate": ("helpers.cli_correlate", "register SXDM maps and nano-CT voids of one particle, correlate"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every sub-command whose module is installed (or just ``only``).

    ``only`` a sub-command name: import that command's module alone. A command's start-up then does
    not pay for the other commands' imports (scipy.constants, the CT stack: ≈ 0.3–0.5 s).
    """
    parser = argparse.ArgumentParser(
        prog="nmc-workbook",
        description="Workbook for X-ray microscopy of NMC-622 single crystals (SXDM + nano-CT).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {helpers.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        if only is not None and name != only:
            continue
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(sub_parser, name)
        sub_parser.set_defaults(_module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``nmc-workbook``; returns the process exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    named = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(named if named in SUBCOMMANDS else None)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    try:
        return int(args._module.run(args) or 0)
    except (ValueError, OSError, KeyError, RuntimeError) as err:  # RuntimeError: failed Dask tasks
        message = err.args[0] if isinstance(err, KeyError) and err.args else err  # KeyError quotes str()
        print(f"nmc-workbook {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
