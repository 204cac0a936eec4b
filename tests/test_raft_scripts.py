"""Runs each Raft transcript under tests/testdata/raft/ and compares its output line by line.

``LEDGERCORE_REGEN=1 pytest tests/test_raft_scripts.py`` rewrites the expected output in place;
review the diff (git diff tests/testdata/raft) before committing it.
"""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest
from raft_interaction import parse_transcript, render_transcript, run_transcript

TESTDATA = Path(__file__).parent / "testdata" / "raft"
SCRIPTS = sorted(TESTDATA.glob("*.txt"))
REGEN = os.environ.get("LEDGERCORE_REGEN") == "1"


def test_there_are_transcripts() -> None:
    assert len(SCRIPTS) >= 10


@pytest.mark.parametrize("path", SCRIPTS, ids=[p.stem for p in SCRIPTS])
def test_transcript(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    directives, trailing, outputs = run_transcript(text)
    if REGEN:
        path.write_text(render_transcript(directives, trailing, outputs), encoding="utf-8")
        return
    for d, got in zip(directives, outputs):
        if got != d.expected:
            diff = "\n".join(difflib.unified_diff(d.expected, got, "expected", "got", lineterm=""))
            pytest.fail(f"{path.name}:{d.line}: {d.command}\n{diff}")


def test_parser_rejects_a_command_without_separator() -> None:
    with pytest.raises(ValueError, match="not followed by ----"):
        parse_transcript("campaign 1\nok\n")


def test_a_wrong_expectation_fails() -> None:
    # The comparison must be able to fail: a transcript with a wrong line does not match.
    text = "add-nodes 1 voters=(1)\n----\nok\n\nraft-state\n----\n1: StateLeader (Voter) Term:9 Lead:1\n"
    directives, _, outputs = run_transcript(text)
    assert outputs[1] != directives[1].expected
