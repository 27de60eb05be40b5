"""Onboarding drip on the asyncio API: wait up to 3 days for onboarding, then tips or a nudge.

    .venv/bin/python examples/onboarding_drip.py     # against `make dev`

Each user's drip is one coroutine that awaits ``wait_for_event`` with ``on_timeout="continue"``
(the run resumes with ``event=None`` when the time is up) and a CEL ``if`` filter: only a
``app/onboarding.completed`` event for the same user with at least 3 steps counts. ``async``
is the candidate event, ``event`` the wait's ``context``.

The demo runs three drips at once, all on one client and so one resume consumer, with a 5 s
timeout instead of 3 days: user 1 completes onboarding (tips), user 2 sends an event with only
1 step (the filter refuses it; nudged after 5 s), user 3 never does (nudged).
"""

from __future__ import annotations

import asyncio
import uuid

from waitline.aio import AsyncClient


async def onboarding_drip(client: AsyncClient, user_id: str, timeout: str = "3d") -> str:
    run_id = f"drip-{user_id}"
    print(f"{run_id}: welcome email sent, waiting for onboarding", flush=True)
    resume = await client.wait_for_event(
        f"{run_id}/wait-for-onboarding",
        run_id=run_id,
        name="app/onboarding.completed",
        correlation_key=user_id,
        timeout=timeout,
        on_timeout="continue",
        if_="async.data.userId == event.data.userId && async.data.steps >= 3",
        context={"data": {"userId": user_id}},
        wait_timeout=60,
    )
    step = "new_user_tips" if resume.event is not None else "onboarding_nudge"
    print(f"{run_id}: {resume.outcome}, next: {step}", flush=True)
    return step


async def main() -> None:
    run = uuid.uuid4().hex[:8]
    users = [f"user-{run}-{n}" for n in (1, 2, 3)]
    async with AsyncClient() as client:
        drips = [asyncio.create_task(onboarding_drip(client, u, timeout="5s")) for u in users]
        completed = {"userId": users[0], "steps": 3}
        await client.send_event("app/onboarding.completed", users[0], completed)
        halfway = {"userId": users[1], "steps": 1}
        await client.send_event("app/onboarding.completed", users[1], halfway)
        steps = await asyncio.gather(*drips)
    assert steps == ["new_user_tips", "onboarding_nudge", "onboarding_nudge"], steps
    print("demo done", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
