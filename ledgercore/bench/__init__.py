"""ledgercore bench SUITE: measure ledgercore against peer libraries in the same run.

Each suite is a module of this package listed in SUITES that provides HELP (one line),
add_arguments(parser) and run(args) -> int. Peer libraries are imported only when a suite runs
(pip install 'ledgercore[bench]' installs them).
"""

from __future__ import annotations

import argparse
import importlib
from typing import Any

SUITES: tuple[str, ...] = ("crypto", "ingest", "raft")


def register(commands: Any) -> None:
    """Adds ``bench`` and one sub-command per suite to the top-level ``commands`` sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "bench", help="benchmark ledgercore against peer libraries", description=__doc__
    )
    suites = parser.add_subparsers(dest="suite", metavar="SUITE", required=True)
    for name in SUITES:
        module = importlib.import_module(f"{__name__}.{name}")
        suite = suites.add_parser(name, help=module.HELP, description=module.__doc__)
        module.add_arguments(suite)
        suite.set_defaults(handler=module.run)
