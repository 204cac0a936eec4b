"""Smoke test of ``ledgercore bench raft``: a short run of both parts exits 0 and reports positive
rates, latencies and the machine. Not a timing test: speeds are recorded in bench/RESULTS.md."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from ledgercore.node.init_cluster import MAX_NODES


def run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgercore", "bench", "raft", *args],
        capture_output=True, text=True, timeout=900, check=False, env=env,
    )  # fmt: skip


def test_short_run_reports_positive_rates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = run_bench("--seconds", "2", "--json", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["suite"] == "raft"
    consensus, ledger = r["results"]
    for res in (consensus, ledger):
        assert res["rate"] > 0 and res["peer_rate"] > 0 and res["ratio"] > 0
        assert res["goal"]["kind"] == "ratio"
    assert consensus["peer"].startswith("pysyncobj")
    info = r["info"]
    for name in ("ledgercore", "pysyncobj"):
        c = info["consensus"][name]
        assert c["entries_applied"] > 0 and len(c["node_rates"]) == 3
        # A leader that lost its post in the short window may leave no proposal timed in it.
        assert (c["latency_p50"] or 0) > 0 or c["leader_changed"], c
    assert info["ledger"]["verify_rate"] > 0 and info["ledger"]["height"] >= 1
    led = info["ledger"]
    assert led["verify_rate"] == max(led["verify_rate_before"], led["verify_rate_after"])
    # The items reported are the transactions the rate counted, not the rate times the window.
    committed = led["items"]
    assert isinstance(committed, int) and committed > 0 and ledger["items"] == committed
    assert consensus["items"] == info["consensus"]["ledgercore"]["items"] and consensus["peer_items"] == info["consensus"]["pysyncobj"]["items"]
    # The cluster's CPU per committed transaction, from the nodes' own CPU clocks over the window.
    assert led["cpu_us_per_tx"] == pytest.approx(1e6 * sum(led["cpu_seconds"]) / committed) and led["cpu_us_per_tx"] > 0
    # The same CPU over the transactions the goal's rate (0.6 x verify / nodes) would commit.
    at_goal = 0.6 * led["verify_rate"] / info["nodes"] * led["window_seconds"]
    assert led["cpu_us_per_tx_at_goal"] == pytest.approx(1e6 * sum(led["cpu_seconds"]) / at_goal)
    assert "us per committed tx over the cluster" in ledger["note"]
    assert info["ledger"]["latency_p50"] > 0 and info["ledger"]["latency_p99"] >= info["ledger"]["latency_p50"]
    assert r["machine"]["cpus"] >= 1
    assert list(tmp_path.iterdir()) == []  # the clusters' data is removed


def test_bad_arguments_are_usage_errors() -> None:
    for args, message in [
        (("--nodes", "0"), "argument --nodes: must be at least 1, got 0"),
        # Found only after generating half a million transactions, in a node's traceback.
        (("--block-txs", "0"), "argument --block-txs: must be at least 1, got 0"),
        (("--seconds", "nan"), "argument --seconds: must be a finite number in (0, inf), got 'nan'"),
        (("--clients", "-2"), "argument --clients: must be at least 1, got -2"),
    ]:
        proc = run_bench(*args)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_more_nodes_than_init_cluster_allows_is_a_usage_error() -> None:
    # Unbounded, --nodes 1000 started a cluster that never got going: a hang, not an error. In its
    # own session so a regression's node processes are killed with it, not left behind.
    proc = subprocess.Popen(
        [sys.executable, "-m", "ledgercore", "bench", "raft", "--nodes", str(MAX_NODES + 1)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip
    try:
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.returncode is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert f"argument --nodes: must be at most {MAX_NODES}, got {MAX_NODES + 1}" in err, err


def test_a_data_dir_that_cannot_be_made_is_refused_with_a_message(tmp_path) -> None:  # type: ignore[no-untyped-def]
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_bench("--seconds", "1", "--dir", str(blocker / "sub"))
    assert proc.returncode == 1
    assert "cannot make a scratch directory" in proc.stderr and "Traceback" not in proc.stderr


def test_without_pysyncobj_part_a_is_refused_before_anything_starts(tmp_path) -> None:  # type: ignore[no-untyped-def]
    hidden = tmp_path / "hide" / "pysyncobj"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("hidden from this test")\n')
    path = os.pathsep.join(filter(None, [str(hidden.parent), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path}
    proc = run_bench("--seconds", "1", "--dir", str(tmp_path / "data"), env=env)
    assert proc.returncode == 1
    assert "PySyncObj: not installed (pip install pysyncobj)" in proc.stderr and "--only ledger" in proc.stderr
    assert "Traceback" not in proc.stderr and "started" not in proc.stderr
