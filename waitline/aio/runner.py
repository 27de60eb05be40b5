"""The asyncio runner: consume resume commands as a consumer group, hand each to a coroutine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterator

from confluent_kafka import Consumer

from waitline.aio.kafka import GroupReader
from waitline.config import Settings
from waitline.kafka import ConsumerFactory, group_config
from waitline.resumes import (
    COMMIT_EVERY,
    COMMIT_INTERVAL,
    REMEMBER,
    OffsetCommits,
    SeenResumes,
    parse_resume,
)
from waitline.schemas.models import ResumeCommand
from waitline.topics import Topics, load_topics

__all__ = ["AsyncRunner"]

log = logging.getLogger("waitline.runner")


class AsyncRunner:
    """A workflow runner's loop for asyncio: each resume command goes to ``handler`` once.

    The same contract as the synchronous ``Runner``: members of one consumer group split the
    resume partitions; a record's offset is committed after its handler returned, in batches
    (every ``commit_every`` records or ``commit_interval`` seconds, at once for revoked
    partitions and at stop); a resume whose ``resumeId`` is among the last ``remember`` seen
    (an LRU) is skipped. Handlers run one at a time, in each partition's order; the consumer
    reads at most a few batches ahead of them, on a thread of its own, so the loop never
    waits for Kafka.

    ``run`` stops on Ctrl-C or SIGTERM (when the loop runs in the main thread) and on
    :meth:`stop`: the current handler finishes, the offsets handled are committed, ``run``
    returns. ``consumer`` builds the Kafka consumer (default: ``confluent_kafka.Consumer``).
    """

    def __init__(
        self,
        handler: Callable[[ResumeCommand], Awaitable[None]],
        *,
        group_id: str,
        settings: Settings | None = None,
        topics: Topics | None = None,
        remember: int = REMEMBER,
        commit_every: int = COMMIT_EVERY,
        commit_interval: float = COMMIT_INTERVAL,
        consumer: ConsumerFactory | None = None,
    ) -> None:
        self.handler = handler
        self.group_id = group_id
        self.settings = settings or Settings()
        self._topics = topics
        self._seen = SeenResumes(remember)
        self._commit_every = commit_every
        self._commit_interval = commit_interval
        self._consumer_factory = consumer
        self._stopping = False
        self._reader: GroupReader | None = None
        self.handled = 0
        self.commits = 0  # commit requests sent (batches), for tests and metrics

    def stop(self) -> None:
        """Stop after the current handler returns. Call it on the loop's thread (from a
        handler, a task, a signal handler of the loop)."""
        self._stopping = True
        if self._reader is not None:  # wake the loop if it waits for records; the reader
            self._reader.queue.put_nowait(None)  # stops (and commits) once the loop is done

    async def resumes(
        self, idle_timeout: float | None = None
    ) -> AsyncGenerator[ResumeCommand, None]:
        """Yield resume commands; stop after ``idle_timeout`` seconds without one, or on
        :meth:`stop`. A record counts as handled when the next one is asked for."""
        topics = self._topics or load_topics(self.settings.topics_file, self.settings.topic_prefix)
        reader = GroupReader(
            self._consumer_factory or Consumer,
            group_config(self.settings, self.group_id),
            topics.resumes.name,
            OffsetCommits(self._commit_every, self._commit_interval),
        )
        self._reader = reader
        try:
            idle_since = time.monotonic()
            while not self._stopping:
                left = (
                    None if idle_timeout is None else idle_timeout - (time.monotonic() - idle_since)
                )
                if left is not None and left <= 0:
                    return
                try:
                    batch = await asyncio.wait_for(reader.queue.get(), left)
                except TimeoutError:
                    return
                if batch is None:
                    if reader.error is not None:
                        raise reader.error
                    return
                idle_since = time.monotonic()
                try:
                    for record in batch:
                        if self._stopping:
                            return
                        if not reader.assigned(record):
                            continue  # revoked since it was read: its next owner reads it
                        resume = parse_resume(record.value)
                        if resume is not None:
                            if resume.resume_id not in self._seen:
                                yield resume
                                self.handled += 1
                            self._seen.add(resume.resume_id)
                        reader.handled(record)
                finally:
                    reader.done()
        finally:
            self._reader = None
            await reader.close()
            self.commits += reader.commits_sent

    async def run(self, idle_timeout: float | None = None) -> int:
        """Await the handler for every resume until :meth:`stop`, Ctrl-C or SIGTERM (or
        ``idle_timeout`` seconds without a resume); return how many were handled."""
        with self._stop_on_signals():
            stream = self.resumes(idle_timeout)
            try:
                async for resume in stream:
                    await self.handler(resume)
            finally:
                await stream.aclose()
        return self.handled

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM call :meth:`stop` once (the next acts as before), where the
        running loop can take signal handlers (the main thread, not Windows)."""
        loop = asyncio.get_running_loop()
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        installed = []

        def on_signal(sig: signal.Signals) -> None:
            log.info("%s: stopping after the current resume", sig.name)
            loop.remove_signal_handler(sig)
            signal.signal(sig, previous[sig] or signal.SIG_DFL)
            self.stop()

        for sig in previous:
            try:
                loop.add_signal_handler(sig, on_signal, sig)
                installed.append(sig)
            except (NotImplementedError, RuntimeError, ValueError):
                break
        try:
            yield
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)
                signal.signal(sig, previous[sig] or signal.SIG_DFL)
