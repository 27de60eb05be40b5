"""The chaos checker itself must catch every kind of violation it claims to."""

from __future__ import annotations

from typing import Any

from benchmodules import load

chaos = load("chaos")


def _resume(
    wait_id: str,
    outcome: str = "matched",
    action: str = "continue",
    event: str | None = "e1",
    resume_id: str = "r1",
) -> dict[str, Any]:
    return {
        "waitId": wait_id,
        "resumeId": resume_id,
        "outcome": outcome,
        "action": action,
        "event": {"eventId": event} if event else None,
    }


def _oracle() -> Any:
    oracle = chaos.Oracle()
    oracle.expected = {"w1": ("matched", "continue", "e1"), "w2": ("timed_out", "fail", None)}
    return oracle


def test_clean_run_passes_and_repeats_are_fine() -> None:
    resumes = [_resume("w1"), _resume("w1"), _resume("w2", "timed_out", "fail", None, "r2")]
    assert chaos.check(_oracle(), resumes) == []


def test_each_violation_is_caught() -> None:
    assert "no outcome" in chaos.check(_oracle(), [_resume("w1")])[0]
    two = [
        _resume("w1"),
        _resume("w1", "cancelled", "cancel", None),
        _resume("w2", "timed_out", "fail", None, "r2"),
    ]
    assert "distinct outcomes" in chaos.check(_oracle(), two)[0]
    wrong = [_resume("w1", event="e9"), _resume("w2", "timed_out", "fail", None, "r2")]
    assert "expected" in chaos.check(_oracle(), wrong)[0]
    unknown = [_resume("w1"), _resume("w2", "timed_out", "fail", None, "r2"), _resume("w3")]
    assert "unknown wait" in chaos.check(_oracle(), unknown)[0]
