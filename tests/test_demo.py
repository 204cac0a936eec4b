"""``ledgercore demo`` (the README's main command) runs end to end in a subprocess: exit 0, every
check it prints passed, and the lines a user reads are there."""

from __future__ import annotations

import subprocess
import sys

KEY_LINES = (
    "certificates issued",
    "only the issuer may revoke",
    "replayed nonce",
    "tx inclusion proof:",
    "block inclusion proof:",
    "consistency proof:",
    "certificate status, valid certificate",
    "revoked=True digest_matches=True",
    "digest_matches=False",
    "registered=False",
    "summary",
    "tx/s end to end",
    "all checks passed",
)


def test_demo_runs_and_every_check_passes() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledgercore", "demo"], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for line in KEY_LINES:
        assert line in proc.stdout, f"missing {line!r} in:\n{proc.stdout}"
    assert "FAILED" not in proc.stdout
    assert "stopped" not in proc.stdout  # the cluster's shutdown is not part of the demo's story
    assert proc.stdout.count("[ok]") >= 12


def test_demo_on_sm2_with_a_small_burst() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "ledgercore", "demo", "--suite", "sm2-sm3", "--txs", "600", "--block-size", "200"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "sm2-sm3 ledger" in proc.stdout and "all checks passed" in proc.stdout


def test_demo_arguments_out_of_range_are_usage_errors() -> None:
    for args, message in [
        (("--revoke-fraction", "0.7"), "argument --revoke-fraction: must be a finite number in [0, 0.5), got '0.7'"),
        (("--txs", "0"), "argument --txs: must be at least 1, got 0"),
        (("--cluster-txs", "-3"), "argument --cluster-txs: must be at least 1, got -3"),
    ]:
        proc = subprocess.run([sys.executable, "-m", "ledgercore", "demo", *args], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2 and message in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_demo_with_one_block_or_no_revocations_runs_its_checks() -> None:
    # Section 3 took its revocation from the second block: one block was an IndexError, blocks with
    # no revocation a StopIteration. It now proves what the run generated.
    for args, revoked in [
        (("--txs", "1000"), False),
        (("--txs", "1000", "--block-size", "500", "--revoke-fraction", "0"), False),
        (("--txs", "3", "--block-size", "1"), False),
        (("--txs", "1", "--block-size", "1"), False),
        (("--txs", "40", "--block-size", "20"), True),
    ]:
        proc = subprocess.run(
            [sys.executable, "-m", "ledgercore", "demo", "--no-cluster", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert proc.returncode == 0 and "all checks passed" in proc.stdout, (args, proc.stdout + proc.stderr)
        assert ("revoked=True digest_matches=True" in proc.stdout) == revoked, (args, proc.stdout)
        assert ("no certificate revoked in this run" in proc.stdout) != revoked, (args, proc.stdout)
