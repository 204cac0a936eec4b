"""The ``ledgercore`` command line.

Each top-level command lives in its own module, which provides ``register(subparsers)``: it adds its
parser and sets ``handler`` (a function taking the parsed arguments and returning an exit status).
To add a command (``demo``, ``node``, ``sim``), write its module and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence

from . import __version__
from .output_stream import to_devnull

COMMAND_MODULES: tuple[str, ...] = (
    "ledgercore.bench",
    "ledgercore.demo",
    "ledgercore.audit",
    "ledgercore.sim.cli",
    "ledgercore.node.init_cluster",
    "ledgercore.node.renew_cert",
    "ledgercore.node.run",
    "ledgercore.node.cluster",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ledgercore",
        description="ledgercore: a ledger core for government-service consortium blockchains.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(commands)
    return parser


# What writing output raises where it cannot go on: a full disk or quota, a file too large, an I/O
# error (a terminal that closed).
_WRITE_ERRORS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (the console script exits with it). Output
    that cannot be written (a reader that went away, as ``| head`` does; a full disk) ends the
    command with exit status 1: quietly for a closed pipe, as Unix tools do, else with one line on
    stderr, never a traceback."""
    args = build_parser().parse_args(argv)
    try:
        code = int(args.handler(args))
        sys.stdout.flush()  # a write error shows here, not at interpreter exit
        return code
    except BrokenPipeError:
        to_devnull(sys.stdout)
        return 1
    except OSError as exc:
        # A write to an open file (stdout, or a file a command writes) names no file; opening one does.
        if exc.filename is not None or exc.errno not in _WRITE_ERRORS:
            raise
        to_devnull(sys.stdout)
        print(f"ledgercore: cannot write the output: {exc.strerror}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
