"""Smoke test of ``ledgercore bench ingest``: a tiny run of each workload on each suite exits 0, every
transaction succeeds, and every rate it reports is positive. Not a timing test: speeds are recorded in
bench/RESULTS.md."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

SUITES = ("ed25519-blake3", "sm2-sm3", "p256-sha256")


def run_bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgercore", "bench", "ingest", *args],
        capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip


@pytest.mark.parametrize("suite", SUITES)
@pytest.mark.parametrize("workload", ["evidence", "cert"])
def test_tiny_ingest_run_reports_positive_rates(tmp_path, suite: str, workload: str) -> None:
    proc = run_bench(
        "--txs", "2000", "--block-size", "500", "--suite", suite, "--workload", workload, "--senders", "50",
        "--putmulti-entries", "1000", "--json", "--dir", str(tmp_path),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    w = r["workload"]
    assert (w["kind"], w["suite"], w["txs"], w["blocks"], w["block_size"]) == (workload, suite, 2000, 4, 500)
    assert w["issued"] + w["revoked"] == 2000
    if workload == "cert":
        assert w["revoked"] > 0
    e = r["end_to_end"]
    for rate in (e["rate"], e["first_10pct_rate"], e["last_10pct_rate"], r["verify_only"]["rate"], r["putmulti"]["rate"]):
        assert rate > 0
    assert r["verify_only"]["txs"] == 2000
    assert r["ratio_end_to_end_over_verify"] > 0
    assert set(r["stages"]) == {"decode", "verify", "execute", "commit"}
    assert all(s["seconds"] > 0 for s in r["stages"].values())
    assert r["machine"]["ledgercore_threads"] >= 1
    assert e["cpu_us_per_tx"] > 0 and e["cores_busy"] > 0
    if sys.platform == "linux":  # the split reads each thread's CPU time from /proc
        c = r["cpu_split"]
        assert c["verify_us_per_tx"] > 0 and c["other_us_per_tx"] > 0 and c["verify_only_us_per_tx"] > 0
        assert c["verify_us_per_tx"] + c["other_us_per_tx"] == pytest.approx(e["cpu_us_per_tx"])
        assert c["cpu_factor"] * c["utilisation_factor"] == pytest.approx(r["ratio_end_to_end_over_verify"])
    assert r["reopen_seconds"] > 0
    assert list(tmp_path.iterdir()) == []  # the temporary ledger is removed


def test_a_pipelined_run_also_reports_verify_only_in_the_pipelines_own_shape(tmp_path) -> None:
    # apply_blocks checks one block per thread as one equation, which costs less CPU per signature
    # than verify_batch's split of a block: the ratio to verify_batch alone flattered it.
    proc = run_bench("--txs", "4000", "--block-size", "500", "--pipeline", "4", "--putmulti-entries", "100", "--json",
                     "--dir", str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    pt = r["verify_only_one_block_per_thread"]
    threads = r["machine"]["ledgercore_threads"]
    assert pt["rate"] > 0 and pt["txs"] == 500 * threads * (8 // threads)
    assert r["ratio_end_to_end_over_verify_one_block_per_thread"] == pytest.approx(r["end_to_end"]["rate"] / pt["rate"])
    plain = json.loads(run_bench("--txs", "1000", "--block-size", "500", "--putmulti-entries", "100", "--json").stdout)
    assert plain["verify_only_one_block_per_thread"] is None  # apply_block: verify_batch is its own shape


def test_the_rate_goal_is_not_judged_on_a_run_without_one_full_block(tmp_path) -> None:
    # The goal is stated for 10k-transaction blocks: 100 transactions make one block of 100.
    proc = run_bench("--txs", "100", "--putmulti-entries", "100", "--json", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["workload"]["block_size"] == 10_000 and r["goals"]["rate"]["met"] is None


def test_text_report_names_stages_and_comparisons(tmp_path) -> None:
    proc = run_bench("--txs", "1000", "--block-size", "250", "--senders", "1000", "--dir", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for line in (
        "end to end (apply_block", "CPU ", "stages: decode", "verify_batch only", "end-to-end / verify-only",
        "CPU per tx end to end: signature checks", "utilisation factor", "reopen (Ledger.open", "raw py-lmdb putmulti",
    ):  # fmt: skip
        assert line in proc.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--txs", "0"), "argument --txs: must be at least 1, got 0"),
        (("--block-size", "x"), "argument --block-size: expected an integer, got 'x'"),
        # These ran (generating the workload first) and ended in a traceback.
        (("--workload", "cert", "--revoke-fraction", "-1"), "argument --revoke-fraction: must be a finite number in [0, 0.5)"),
        (("--putmulti-entries", "-5"), "argument --putmulti-entries: must be at least 1, got -5"),
        (("--time-limit", "nan"), "argument --time-limit: must be a finite number in [0, inf), got 'nan'"),
        (("--pipeline", "-1"), "argument --pipeline: must be at least 0, got -1"),
    ],
)
def test_bad_arguments_are_usage_errors(args: tuple[str, ...], message: str) -> None:
    proc = run_bench(*args)
    assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_a_ledger_dir_that_cannot_be_made_is_refused_with_a_message(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    proc = run_bench("--txs", "100", "--dir", str(blocker / "sub"))
    assert proc.returncode == 1
    assert "cannot make a scratch directory" in proc.stderr and "Traceback" not in proc.stderr


def test_a_time_limit_that_runs_out_before_the_first_block_is_refused_with_a_message() -> None:
    # No block applied left nothing to measure: the putmulti comparison divided by zero.
    proc = run_bench("--txs", "1000", "--block-size", "500", "--no-progress", "--time-limit", "1e-9")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.strip() == "ledgercore bench ingest: --time-limit 1e-09s ran out before the first block was applied"
