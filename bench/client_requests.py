"""Requests per second from one ``Client`` that keeps its connection against a new ``Client`` per
request (a TLS handshake each, as every request paid before connections were kept), alternating
rounds, on a local 3-node cluster over mutual TLS.

    python bench/client_requests.py [--requests 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from ledgercore.client import Client
from ledgercore.node.cluster import load_cluster, start_node, stop_all, wait_ready
from ledgercore.node.init_cluster import free_base_port, init_cluster


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=300)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        init_cluster(Path(tmp), 3, base_port=free_base_port(6))
        cluster = load_cluster(Path(tmp))
        tls = cluster.client_context()
        nodes = [start_node(entry, tls) for entry in cluster.nodes]
        try:
            if not wait_ready(nodes, [], 30.0):
                raise SystemExit("the cluster did not start")
            url = cluster.nodes[0]["client_url"]
            kept = Client(url, tls=tls)

            def fresh() -> None:
                with Client(url, tls=tls) as c:
                    c.status()

            ways: dict[str, Callable[[], object]] = {"kept connection": kept.status, "new client per request": fresh}
            best = dict.fromkeys(ways, 0.0)
            for _ in range(args.rounds):
                for name, call in ways.items():
                    t = time.perf_counter()
                    for _ in range(args.requests):
                        call()
                    best[name] = max(best[name], args.requests / (time.perf_counter() - t))
            kept.close()
        finally:
            stop_all(nodes, 10.0, announce=False)
    for name, rate in best.items():
        print(f"GET /status, {name}: {rate:,.0f} requests/s ({1e3 / rate:.2f} ms each)")
    print(f"ratio: {best['kept connection'] / best['new client per request']:.1f}x")


if __name__ == "__main__":
    main()
