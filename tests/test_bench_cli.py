"""Smoke test of ``ledgercore bench crypto --quick --json``: it runs, checks its own answers, and
reports a positive rate for every operation. Not a timing test: speeds are recorded in bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata

from ledgercore.bench.common import Goal, Report, Result

OPERATIONS = (
    "ed25519 verify_batch",
    "sm2 verify_batch",
    "p256 verify_batch",
    "digest_many sha256",
    "digest_many blake3",
    "digest_many sm3",
    "merkle.root sha256",
    "MerkleLog.inclusion_proof",
)


def test_console_script_points_at_cli_main() -> None:
    scripts = metadata.entry_points(group="console_scripts")
    (entry,) = [e for e in scripts if e.name == "ledgercore"]
    assert entry.value == "ledgercore.cli:main"
    assert callable(entry.load())


def test_bench_crypto_quick_json_reports_every_operation() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledgercore", "bench", "crypto", "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["suite"] == "crypto" and report["quick"] is True
    assert report["machine"]["ledgercore_threads"] >= 1
    results = report["results"]
    for name in OPERATIONS:
        rows = [r for r in results if r["operation"].startswith(name)]
        assert rows, f"no result for {name}"
        for row in rows:
            assert row["rate"] > 0, row
            assert row["peer_rate"] is None or row["peer_rate"] > 0, row
    assert {r["goal_text"] for r in results if r["goal"]} >= {">= 8x", ">= 100x", ">= 5x", ">= 3x", ">= 2x"}


def test_cli_without_a_command_is_a_usage_error() -> None:
    proc = subprocess.run([sys.executable, "-m", "ledgercore"], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert "usage: ledgercore" in proc.stderr


def test_the_table_shows_ratios_below_one_to_two_decimals() -> None:
    # 0.435 of a goal of 0.6 printed as "0.4x" hid the difference between runs the goal cares about.
    report = Report("raft", quick=False)
    report.results += [
        Result("signed tx end to end", "tx/s", 1, 44_747.0, "batch verify / 3", 1, 102_945.0, Goal("ratio", 0.6)),
        Result("commit entries", "entries/s", 1, 424_000.0, "pysyncobj", 1, 51_300.0, Goal("ratio", 5.0)),
    ]
    rows = report.table().splitlines()
    assert "| 0.43x " in rows[2] and rows[2].endswith("| NO")
    assert "| 8.3x " in rows[3] and rows[3].endswith("| yes")


def test_bench_crypto_repeat_below_one_is_a_usage_error() -> None:
    # --repeat -5 ran one round and --repeat 0 fell back to the default, both exiting 0.
    for value in ("0", "-5"):
        proc = subprocess.run(
            [sys.executable, "-m", "ledgercore", "bench", "crypto", "--quick", "--only", "proofs", "--repeat", value],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"argument --repeat: must be at least 1, got {value}" in proc.stderr, proc.stderr
