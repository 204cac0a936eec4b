"""The ``ledgercore`` command line.

Each top-level command lives in its own module, which provides ``register(subparsers)``: it adds its
parser and sets ``handler`` (a function taking the parsed arguments and returning an exit status).
To add a command (``demo``, ``node``, ``sim``), write its module and list it in ``COMMAND_MODULES``.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence

from . import __version__

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


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    return int(args.handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
