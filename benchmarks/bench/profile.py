"""``--profile``: the worker over match-heavy under py-spy, summarised per function."""

from __future__ import annotations

import time
from pathlib import Path

from .measure import measure
from .workloads import REPO, RESULTS, fresh_topics


def run_profile(bootstrap: str, scale: float, tmp: Path) -> int:
    """waitline over match-heavy under py-spy; writes benchmarks/results/profile.txt."""
    out = tmp / "waitline.stacks"
    topics, prefix = fresh_topics(bootstrap)
    rate, _ = measure("waitline", bootstrap, topics, prefix, "match-heavy", scale, tmp, None, out)
    deadline = time.monotonic() + 60
    while not out.exists() and time.monotonic() < deadline:
        time.sleep(0.1)  # py-spy writes the file when the worker exits
    report = RESULTS / "profile.txt"
    RESULTS.mkdir(parents=True, exist_ok=True)
    report.write_text(
        f"waitline worker, match-heavy (scale {scale}), sampled by py-spy at 200 Hz: "
        f"{rate:,.0f} rec/s while sampled\n\n" + summarize_stacks(out)
    )
    print(report.read_text())
    return 0


def summarize_stacks(path: Path, top: int = 40) -> str:
    """Self and inclusive share of samples per function, from py-spy's collapsed stacks."""
    own: dict[str, int] = {}
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_short(frame) for frame in stack.split(";")]
        total += count
        own[frames[-1]] = own.get(frames[-1], 0) + count
        for frame in set(frames):
            inclusive[frame] = inclusive.get(frame, 0) + count
    lines = [f"{total} samples", "", "self %  function"]
    for name, count in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:6.1f}  {name}")
    lines += ["", "incl %  function"]
    for name, count in sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]:
        lines.append(f"{100 * count / total:6.1f}  {name}")
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    """``func (/path/to/repo/pkg/mod.py:12)`` → ``func (pkg/mod.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")").rsplit(":", 1)[0]
    for root in (str(REPO) + "/", "site-packages/", "lib/python3"):
        if root in where:
            where = where.split(root, 1)[1]
    return f"{name} ({where})"
