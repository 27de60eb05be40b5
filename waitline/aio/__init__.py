"""waitline for asyncio: the client and the runner as coroutines, never blocking the loop.

>>> from waitline.aio import AsyncClient
>>> async def signup() -> None:                                  # doctest: +SKIP
...     async with AsyncClient() as client:
...         resume = await client.wait_for_event(
...             "signup-123/verify-email", run_id="signup-123", name="email.verified",
...             correlation_key="user:123", timeout="24h", wait_timeout=60)
...         print(resume.outcome, resume.event)

``AsyncClient`` sends events, registers and cancels waits, and awaits resumes: the waits of
one client share one consumer of ``resumes``. ``AsyncRunner`` is a member of a runners'
consumer group that awaits a handler for each resume. Both run confluent-kafka clients on
threads of their own (docs/sdk.md says why, with figures).
"""

from waitline.aio.client import AsyncClient, PendingResume
from waitline.aio.runner import AsyncRunner

__all__ = ["AsyncClient", "AsyncRunner", "PendingResume"]
