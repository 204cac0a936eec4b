"""``ledgercore node --config FILE``: run one consensus node and its client API until SIGINT/SIGTERM.

On either signal the client API stops taking requests, the node stops (consensus, transport, ledger)
and the process exits 0. Logs go to stderr; one line ``ready <id> ...`` goes to stdout once both the
transport and the client API listen.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from typing import Any

from ..errors import ChainMismatchError, LedgerError
from ..net.errors import CertificateFileError
from ..user_code import UserCodeError
from .config import NodeConfig


async def run_node(config: NodeConfig) -> int:
    """Runs ``config``'s node until SIGINT or SIGTERM (exit status 0), or until one of its loops
    dies (1: a node that cannot take part stops, so that it can be restarted)."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        return await _serve_until_stopped(config, stop)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


async def _serve_until_stopped(config: NodeConfig, stop: asyncio.Event) -> int:
    from .http import serve
    from .node import Node

    log = logging.getLogger("ledgercore.node")
    node = Node(config)
    # Starting may take a while (opening a large store, a slow disk): a signal stops it there too.
    starting = asyncio.ensure_future(node.start())  # closes what it opened if it fails or is cancelled
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait((starting, stopping), return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        starting.cancel()
        await asyncio.gather(starting, return_exceptions=True)
        log.info("%s stopped while starting", config.id)
        return 0
    stopping.cancel()
    starting.result()  # its error, if it failed
    runner = None
    status = 0
    try:
        runner = await serve(node)
        print(
            f"ready {config.id} transport {config.host}:{config.port} client {config.client_url}", flush=True
        )
        stopping, failing = asyncio.ensure_future(stop.wait()), asyncio.ensure_future(node.failed.wait())
        await asyncio.wait((stopping, failing), return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        failing.cancel()
        if node.failure is not None:
            log.error("%s: %s; stopping", config.id, node.failure)
            print(f"ledgercore node: {config.id}: {node.failure}", file=sys.stderr, flush=True)
            status = 1
        else:  # a leader asked to stop hands over first: no election timeout for the others
            await node.hand_over()
        log.info("stopping %s", config.id)
    finally:
        node.stop_waits()  # requests waiting on a commit answer 503 now, so the API closes at once
        if runner is not None:
            await runner.cleanup()
        await node.stop()
    log.info("%s stopped", config.id)
    return status


def _run(args: argparse.Namespace) -> int:
    try:
        config = NodeConfig.load(args.config)
    except LedgerError as exc:
        print(f"ledgercore node: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()), stream=sys.stderr,
        format=f"%(asctime)s %(levelname)s {config.id} %(name)s: %(message)s",
    )  # fmt: skip
    try:
        return asyncio.run(run_node(config))
    except (CertificateFileError, ChainMismatchError, UserCodeError) as exc:  # what the config names: restarting will not help
        print(f"ledgercore node: {config.id}: {exc}", file=sys.stderr)
        return 2
    except (LedgerError, OSError) as exc:
        print(f"ledgercore node: {config.id}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def register(commands: Any) -> None:
    """Adds ``ledgercore node`` to the top-level sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "node",
        help="run one consensus node and its HTTP client API",
        description="Run the node described by FILE (written by init-cluster) until SIGINT or SIGTERM, "
        "then stop it cleanly.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the node's config.json")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.set_defaults(handler=_run)
