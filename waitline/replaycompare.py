"""Comparing a replay's resumes with the live run's (``waitline replay compare``).

A resume is known by ``(resumeId, waitId, outcome, eventId)``, never by its times: a replay
decides from the same records, but the order in which it reads a partition's events and wait
commands, and so ``resolvedAt``, may differ. Both sides are taken inside the window both cover
(``compare``), and what the window leaves out is counted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from confluent_kafka.admin import AdminClient

from waitline.logread import read_to_end
from waitline.progress import Bar
from waitline.replay import MANIFEST, ReplayError, ReplayTarget, read_manifest

__all__ = ["Comparison", "compare"]


def _identity(resume: dict[str, Any]) -> tuple[str, str, str, str | None]:
    event = resume.get("event")
    event_id = event.get("eventId") if isinstance(event, dict) else None
    return (
        str(resume.get("resumeId")),
        str(resume.get("waitId")),
        str(resume.get("outcome")),
        event_id,
    )


def _summary(resume: dict[str, Any]) -> dict[str, Any]:
    resume_id, wait_id, outcome, event_id = _identity(resume)
    return {
        "resumeId": resume_id,
        "waitId": wait_id,
        "runId": resume.get("runId"),
        "outcome": outcome,
        "eventId": event_id,
        "registeredAt": resume.get("registeredAt"),
        "resolvedAt": resume.get("resolvedAt"),
    }


@dataclass
class Comparison:
    """The resumes of the replay against the live run's, by (resumeId, waitId, outcome,
    eventId), inside the window both cover; ``first`` of each difference."""

    same: int
    only_replay: int
    only_live: int
    first_only_replay: list[dict[str, Any]]
    first_only_live: list[dict[str, Any]]
    window: tuple[int | None, int | None]
    left_out: dict[str, int]

    @property
    def equal(self) -> bool:
        return self.only_replay == 0 and self.only_live == 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "equal": self.equal,
            "same": self.same,
            "onlyReplay": self.only_replay,
            "onlyLive": self.only_live,
            "firstOnlyReplay": self.first_only_replay,
            "firstOnlyLive": self.first_only_live,
            "window": {"registeredFrom": self.window[0], "resolvedBefore": self.window[1]},
            "leftOut": self.left_out,
        }


def _resumes(client: dict[str, Any], topic: str, bar: Bar | None) -> Iterator[dict[str, Any]]:
    meta = AdminClient(client).list_topics(timeout=30).topics.get(topic)
    if meta is None or meta.error is not None:
        raise ReplayError(f"topic {topic!r} does not exist")
    for msg in read_to_end(client, topic, sorted(meta.partitions), bar=bar):
        try:
            resume = json.loads(msg.value() or b"")
        except ValueError:
            continue
        if isinstance(resume, dict):
            yield resume


def compare(target: ReplayTarget, *, first: int = 5, bar: Bar | None = None) -> Comparison:
    """Compare the replay's resumes with the live ones.

    Both sides are taken inside one window: resumes resolved before the replay last read the
    inputs' ends (``endsReadAt``: it has replayed everything appended before then), and, for a
    replay from a point, of waits registered at or after its earliest replayed record time
    (waits registered before are unknown to it). What the window leaves out is counted."""
    manifest = read_manifest(target)
    if not manifest:
        raise ReplayError(
            f"replay {target.prefix!r} has not run on this machine (no {MANIFEST} under "
            f"{target.state_path})"
        )
    client = target.settings.as_librdkafka_dict()
    lower = manifest.get("startTime")
    upper = manifest.get("endsReadAt")
    left_out = {"live": 0, "replay": 0}

    def collect(topic: str, side: str) -> dict[tuple[str, str, str, str | None], dict[str, Any]]:
        found: dict[tuple[str, str, str, str | None], dict[str, Any]] = {}
        for resume in _resumes(client, topic, bar):
            registered = resume.get("registeredAt")
            resolved = resume.get("resolvedAt")
            if (lower is not None and isinstance(registered, int) and registered < lower) or (
                upper is not None and isinstance(resolved, int) and resolved >= upper
            ):
                left_out[side] += 1
                continue
            found.setdefault(_identity(resume), resume)
        return found

    live = collect(target.live.resumes.name, "live")
    replayed = collect(target.topics.resumes.name, "replay")
    only_replay = [replayed[k] for k in replayed if k not in live]
    only_live = [live[k] for k in live if k not in replayed]
    return Comparison(
        same=len(replayed) - len(only_replay),
        only_replay=len(only_replay),
        only_live=len(only_live),
        first_only_replay=[_summary(r) for r in only_replay[:first]],
        first_only_live=[_summary(r) for r in only_live[:first]],
        window=(lower, upper),
        left_out=left_out,
    )
