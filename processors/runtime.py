"""The worker: the one place that owns the Kafka consumer and producer.

The run loop reads top to bottom: fire due timers → poll → process → commit → purge
(exactly-once: the timers after the commit, in a transaction of their own).
Partition N of ``events`` and of ``wait-commands`` form one task with one RocksDB store, backed
up to partition N of ``changelog`` (``range`` assignment keeps equal numbers on one member).

Commit protocol, once per loop iteration (``Guarantee`` picks the variant):

1. Consume up to ``batch_size`` records from the assigned partitions.
2. Apply each record through the core to its partition's overlay (read-your-writes buffer)
   and collect the output records. Nothing has been written anywhere yet.
3. Exactly-once: begin a transaction.
4. Produce the output records. At-least-once: flush, so every output is acknowledged before
   anything records that the batch happened. The same flush acknowledges the changelog of the
   batch before (step 5 of the previous iteration): write that batch now (step 7).
5. Seal each touched partition's overlay and produce its changelog records: the changed keys,
   then the input offsets the batch reached (this record closes the batch). At-least-once: no
   flush; the records travel while the next batch is applied, and the next flush (step 4 of
   the next batch or of a purge's commit, or an idle loop's, a revocation's or a stop's)
   acknowledges them. Exactly-once: flush.
6. Exactly-once: add the input offsets to the transaction (``send_offsets_to_transaction``
   with the consumer's current group metadata) and commit it.
7. Write each sealed overlay, its input offsets and changelog position in one RocksDB
   ``WriteBatch`` (at-least-once: after that next flush). Until then the next batch reads the
   sealed overlay under its own.
8. At-least-once: commit the offsets to the group (asynchronously, at most every 200 ms and
   whenever the loop goes idle; informational: on assignment the worker seeks to the offsets
   in its store, and the group's offsets serve lag monitoring).

So the order that matters holds in both variants: a batch's outputs are acknowledged before its
changelog is produced, and its changelog before RocksDB holds it. At-least-once, one flush per
batch instead of two: waiting for the changelog overlaps the next batch's work.

Failure at any step before 7 leaves the store as it was, and the batch is read and applied again:
exactly-once at once, after the transaction is aborted (on a broker with working transactions that
hides the first copy of its outputs); at-least-once the worker stops, and the batch is read again
when it (or another member) restarts from the store, together with the sealed batch before it if
step 4's flush failed. The core is deterministic, so it yields the same outputs with the same
``resumeId``s (at-least-once: possibly published twice). A changelog batch without its closing
record, or (exactly-once) beyond the group's committed offsets, is ignored on restore
(``processors.restore``). A failure after 7 replays nothing.

Timers: at most every ``timer_interval_ms`` (20), before a batch is taken (at-least-once: the batch
before is sealed, and the scan reads it, written to RocksDB or not), the loop asks every store for
deadlines that passed on the wall clock and appends a ``timer`` command for each to the
wait-commands partition of the same number. The wait resolves when that command is processed (SPEC
§2.6). At-least-once, the commands are not flushed on their own: they leave with the producer's
linger while the next batch is applied, and that batch's flush (or the loop's poll) serves their
acknowledgements; a command that fails is sent again by its partition's next scan. Exactly-once,
they are committed in a transaction after the batch's.
"""

from __future__ import annotations

import enum
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_LOG_APPEND_TIME,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from waitline.processors.correlation import (
    HEADER_ORIGIN,
    HEADER_REASON,
    CoreSettings,
    Correlator,
    Emit,
    Headers,
    InputRecord,
    Source,
    Target,
    carried_key,
    reference_headers,
)
from waitline.processors.gaps import OffsetGaps
from waitline.processors.limits import MAX_REASON_CHARS, producer_max_bytes, record_size
from waitline.processors.restore import Restorer
from waitline.processors.store import PartitionStore
from waitline.processors.transactions import PartitionProducers
from waitline.schemas.keys import partition_for

__all__ = ["Guarantee", "RuntimeConfig", "Worker", "WorkerError"]

_UNASSIGNED = -1  # librdkafka's RD_KAFKA_PARTITION_UA: the producer's partitioner picks
KILL_IN_TRANSACTION_ENV = "WAITLINE_TEST_KILL_IN_TRANSACTION"
# A timer command whose wait is still pending this long after it was sent goes again.
TIMER_RESEND_S = 5.0

log = logging.getLogger("waitline.worker")


class WorkerError(RuntimeError):
    """A fatal error: the worker stops without committing the current batch."""


class Guarantee(enum.Enum):
    AT_LEAST_ONCE = "at_least_once"
    EXACTLY_ONCE = "exactly_once"


@dataclass(frozen=True)
class RuntimeConfig:
    """What the run loop needs; built from ``waitline.config.Settings`` by the CLI."""

    client: dict[str, Any]
    group_id: str
    state_dir: Path
    topics: dict[Target, str]
    partitions: int
    core: CoreSettings = field(default_factory=CoreSettings)
    guarantee: Guarantee = Guarantee.AT_LEAST_ONCE
    transactional_id: str | None = None
    # Records per loop iteration, at most (one commit each). Only a backlog fills a batch; a
    # worker that keeps up takes what arrived meanwhile. Larger batches mean fewer commit round
    # trips and more state writes coalesced per key (docs/benchmarks.md: 5,000 -> 20,000).
    batch_size: int = 20_000
    timer_batch: int = 10_000
    purge_interval_ms: int = 10_000
    poll_timeout: float = 0.1
    timer_interval_ms: int = 20
    # The most time one iteration spends applying its batch; the rest is read again by the
    # next one, so that no iteration nears ``max.poll.interval.ms`` whatever the records cost.
    apply_budget_ms: int = 1_000


class Worker:
    """A consumer-group member that correlates the partitions it is assigned."""

    def __init__(self, config: RuntimeConfig, core: Correlator | None = None) -> None:
        self.config = config
        self.core = core or Correlator(config.core)
        self.stores: dict[int, PartitionStore] = {}
        self.processed = 0
        self.restored = 0
        self._eos = config.guarantee is Guarantee.EXACTLY_ONCE
        self._sources = {
            config.topics[Target.EVENTS]: Source.EVENTS,
            config.topics[Target.WAIT_COMMANDS]: Source.WAIT_COMMANDS,
        }
        self._sent_timers: dict[int, set[bytes]] = {}
        # Per partition, timer commands sent and not yet seen resolving: command -> (when, it).
        self._unresolved: dict[int, dict[bytes, tuple[float, Emit]]] = {}
        self._next_resend_check = 0.0
        self._timer_mark: dict[int, int] = {}  # per partition: timers before it were sent
        self._last_purge = time.monotonic()
        self._next_timer_scan = 0.0
        self._group_offsets: dict[int, dict[str, int]] = {}
        self._next_group_commit = 0.0
        self._partition_of: dict[bytes, int] = {}
        self._topic_of = {source: topic for topic, source in self._sources.items()}
        self._gaps = OffsetGaps(self._seek)  # input partitions whose offsets jump: read again
        self._delivery_errors: list[str] = []
        self.refused_outputs = 0
        self.failed_records = 0
        self._changelog_next: dict[int, int] = {}
        self._consumer: Consumer | None = None
        # At-least-once: the worker's producer. Exactly-once: the producer of the partition
        # whose transaction is being written (one per partition: processors.transactions).
        self._producer: Producer | None = None
        self._txn: PartitionProducers | None = None
        self._emit_marks: list[tuple[int, int]] = []  # exactly-once: (first emit, partition)
        # Fault injection for the exactly-once chaos run (benchmarks/chaos.py) only: once this
        # file exists, SIGKILL the process inside its next batch transaction, its records
        # written and not committed.
        self._kill_trigger = os.environ.get(KILL_IN_TRANSACTION_ENV) or None
        self._restorer: Restorer | None = None
        self._restoring: dict[int, PartitionStore] = {}
        self._paused: dict[int, list[TopicPartition]] = {}
        self._restore_started = 0.0
        self.on_assigned: Callable[[list[int]], None] | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; then commit, close the stores and leave the group."""
        self._restorer = Restorer(self.config.client, self.config.topics[Target.CHANGELOG])
        if self._eos:
            prefix = self.config.transactional_id or self.config.group_id
            self._txn = PartitionProducers(self._producer_config(), prefix)
        else:
            self._producer = Producer(self._producer_config())
        self._consumer = Consumer(self._consumer_config())
        self._consumer.subscribe(
            list(self._sources), on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        log.info(
            "worker started group=%s topics=%s guarantee=%s",
            self.config.group_id,
            list(self._sources),
            self.config.guarantee.value,
        )
        try:
            while not stop.is_set():
                self.run_once()
        finally:
            self._shutdown()

    def run_once(self) -> int:
        """One loop iteration; returns the number of input records applied."""
        assert self._consumer is not None
        before = self.processed
        restoring = bool(self._restoring or self._paused)
        if restoring:
            self._restore_step()
        if not self._eos:
            self._fire_timers()  # no batch in progress (the last one is sealed or written)
        # While a restore runs, the poll only serves the group (rebalances): no waiting. An
        # idle poll waits no longer than the next timer scan.
        if restoring:
            timeout = 0.0
        else:
            timeout = min(self.config.poll_timeout, self._next_timer_scan - time.monotonic())
        messages = self._take_batch(self._consumer, max(timeout, 0.0))
        emits, offsets = self._apply(messages)
        if offsets:
            self._commit(emits, offsets)
        else:
            if not self._eos:
                self._settle()  # idle: nothing to overlap the last batch's changelog with
            if self._group_offsets:
                self._flush_group_offsets()  # idle: report what the last batches reached
        if self._eos:
            self._fire_timers()
        else:
            assert self._producer is not None
            self._producer.poll(0)  # timer commands' acks (after a batch, its flush served them)
        self._maybe_purge()
        return self.processed - before

    def _take_batch(self, consumer: Consumer, timeout: float) -> list[Message]:
        """What is already fetched, up to ``batch_size``; if nothing is, the first to arrive.

        ``consume(n, timeout)`` alone waits for ``n`` records or the whole timeout, which adds
        up to ``timeout`` of latency to every record under light load. Under heavy load
        librdkafka's prefetch queue holds full batches, so the first call returns one at once.
        """
        size = self.config.batch_size
        messages = consumer.consume(size, 0)
        if messages:
            return messages
        first = consumer.poll(timeout)
        if first is None:
            return []
        return [first, *consumer.consume(size - 1, 0)] if size > 1 else [first]

    def _shutdown(self) -> None:
        try:
            if not self._eos:
                self._settle_to_stop(10)  # before the revocation, bounded
            if self._consumer is not None:
                self._consumer.close()  # revokes: stores are closed in _on_revoke
            if self._txn is not None:
                self._txn.close_all()
            elif self._producer is not None:
                self._producer.flush(10)
        finally:
            for store in [*self.stores.values(), *self._restoring.values()]:
                store.close()
            self.stores.clear()
            self._restoring.clear()
            if self._restorer is not None:
                self._restorer.close()
            log.info("worker stopped after %d records", self.processed)

    # -- steps ---------------------------------------------------------------------------------

    def _apply(self, messages: list[Message]) -> tuple[list[Emit], dict[int, dict[str, int]]]:
        # The per-record loop of the worker: everything it needs is bound to locals first.
        emits: list[Emit] = []
        reached: dict[tuple[str, int], int] = {}  # (topic, partition) → last offset applied
        now_ms = int(time.time() * 1000)
        partitions = self.config.partitions
        sources = self._sources
        states = {number: store.state for number, store in self.stores.items()}
        partition_of = self._partition_of
        process = self.core.process
        extend = emits.extend
        gaps = self._gaps
        next_offset, checked, admit_at = gaps.next_offset, gaps.checked, gaps.admit_at
        rereading: set[tuple[str, int]] = set()
        skipped = 0
        # Exactly-once commits each partition's outputs in its own transaction: note where
        # each partition's run of outputs starts.
        marks: list[tuple[int, int]] | None = [] if self._eos else None
        current = -1
        max_bytes = self.config.core.max_record_bytes
        budget_end = time.monotonic() + self.config.apply_budget_ms / 1000
        for index, msg in enumerate(messages):
            if index and time.monotonic() > budget_end:
                skipped += self._read_again(messages[index:], rereading)
                break
            error = msg.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    continue
                if error.fatal():
                    raise WorkerError(f"fatal consumer error: {error.str()}")
                log.warning("consumer error: %s", error.str())
                continue
            topic = msg.topic() or ""
            partition, offset = msg.partition() or 0, msg.offset() or 0
            state = states.get(partition)
            if state is None:  # revoked while the batch was in flight
                continue
            if marks is not None and partition != current:
                current = partition
                marks.append((len(emits), partition))
            where = (topic, partition)
            # The offsets follow on (processors.gaps; its common case, taken inline) or not.
            if checked or next_offset.get(where, offset) != offset:
                if (rereading and where in rereading) or not admit_at(topic, partition, offset):
                    rereading.add(where)  # sought back: this partition's rest comes again
                    skipped += 1
                    continue
            elif rereading and where in rereading:
                skipped += 1
                continue
            else:
                next_offset[where] = offset + 1
            source = sources[topic]
            key = msg.key()
            headers = _headers(raw) if (raw := msg.headers()) else ()
            if key is None:
                target = partition
            else:
                target = partition_of.get(key, -1)
                if target < 0:
                    if len(partition_of) >= 200_000:
                        partition_of.clear()
                    target = partition_of[key] = partition_for(key, partitions)
            kind, ts = msg.timestamp()
            value = msg.value()
            if target != partition and record_size(key, value, headers) <= max_bytes:
                # Produced with another partitioner: forward to where the pair lives, as it
                # was, naming where it was written. (A record too large to copy is refused
                # here: the core dead-letters it.)
                back = Target.WAIT_COMMANDS if source is Source.WAIT_COMMANDS else Target.EVENTS
                here = f"{source.value}/{partition}/{offset}".encode()
                kept = tuple(h for h in headers if h[0] != HEADER_ORIGIN)
                forward = (*kept, (HEADER_ORIGIN, here))
                emits.append(Emit(back, key, value, forward, target, ts if ts > 0 else None))
            else:
                record = InputRecord(
                    source,
                    key,
                    value,
                    ts if ts > 0 else now_ms,
                    partition,
                    offset,
                    headers,
                    now_ms,
                    kind == TIMESTAMP_LOG_APPEND_TIME,
                )
                try:
                    extend(process(state, record))
                except Exception as exc:  # a defect, not bad input: the core refuses that
                    extend(self._failed(record, exc))
            reached[where] = offset
        offsets: dict[int, dict[str, int]] = {}
        for (topic, partition), offset in reached.items():
            offsets.setdefault(partition, {})[sources[topic].value] = offset + 1
        self.processed += len(messages) - skipped  # those come again
        self._emit_marks = marks or []
        return emits, offsets

    def _failed(self, record: InputRecord, exc: Exception) -> list[Emit]:
        """The last line of defence for a record the core raised on: it goes to the dead-letter
        topic with the error, and the partition moves on instead of failing on it for ever."""
        self.failed_records += 1
        log.error(
            "processing %s/%d/%d failed: it is dead-lettered",
            record.source.value,
            record.partition,
            record.offset,
            exc_info=exc,
        )
        return self.core.dead_letter(record, f"processing failed: {type(exc).__name__}: {exc}")

    def _read_again(self, rest: list[Message], rereading: set[tuple[str, int]]) -> int:
        """Seek each input partition of ``rest`` (records the batch's time budget left
        unapplied) back to the record after the last one applied, unless it is sought back
        already (``rereading``); returns how many of ``rest`` were records."""
        assert self._consumer is not None
        first: dict[tuple[str, int], int] = {}
        count = 0
        for msg in rest:
            if msg.error() is None:
                count += 1
                first.setdefault((msg.topic() or "", msg.partition() or 0), msg.offset() or 0)
        for where, offset in first.items():
            topic, partition = where
            if partition in self.stores and where not in rereading:
                offset = self._gaps.next_offset.get(where, offset)
                self._consumer.seek(TopicPartition(topic, partition, offset))
                self._gaps.expect(topic, partition, offset)
        log.info("batch over its time budget: %d records are read again", count)
        return count

    @property
    def input_gaps(self) -> int:
        """Offset gaps in an input partition, each read again once (``processors.gaps``)."""
        return self._gaps.reread

    @property
    def input_gaps_recovered(self) -> int:
        """Gaps whose records came on the second read: a fetch had skipped them."""
        return self._gaps.recovered

    def _seek(self, tp: TopicPartition) -> None:
        assert self._consumer is not None
        self._consumer.seek(tp)

    def _commit(self, emits: list[Emit], offsets: dict[int, dict[str, int]]) -> None:
        """Steps 3–8 of the commit protocol (module docstring) for the touched partitions."""
        if self._eos:
            self._commit_transaction(emits, offsets)
            return
        stores = {p: self.stores[p] for p in offsets if p in self.stores}
        try:
            self._produce(emits)
        except (KafkaException, WorkerError) as exc:
            self._abort({**self._sealed(), **stores}, exc)
            return
        # This batch's outputs, and the changelog of the batch sealed before.
        if not self._flush_and_write_sealed(stores):
            return
        for partition, store in stores.items():
            store.seal(offsets[partition])
        try:
            self._send_changelog(stores)  # acknowledged by the next batch's flush
        except KafkaException as exc:
            self._abort(stores, exc)
        except BaseException:
            # Whatever stopped it, a batch whose changelog was not all produced must never be
            # written (a settle at the stop would): the store is a cache of the changelog.
            for store in stores.values():
                store.rollback()
            raise

    def _commit_transaction(self, emits: list[Emit], offsets: dict[int, dict[str, int]]) -> None:
        """Exactly-once: each touched partition's outputs, changelog and input offsets in one
        transaction of the partition's own producer, then RocksDB. One after the other, so that
        each flush serves (and each failure names) one partition's records only; a partition
        whose transaction fails is aborted and read again, the others stand."""
        assert self._txn is not None
        outputs = _split(emits, self._emit_marks)
        self._emit_marks = []
        for partition, by_source in offsets.items():
            store = self.stores.get(partition)
            if store is not None:
                self._commit_partition(partition, store, outputs.get(partition, []), by_source)

    def _commit_partition(
        self,
        partition: int,
        store: PartitionStore,
        emits: list[Emit],
        by_source: dict[str, int],
    ) -> None:
        assert self._txn is not None and self._consumer is not None
        producer = self._producer = self._txn.get(partition)
        try:
            producer.begin_transaction()
            self._produce(emits)
            store.seal(by_source)
            self._send_changelog({partition: store})
            self._flush()  # serves the delivery callbacks: changelog position, errors
            if self._kill_trigger is not None and os.path.exists(self._kill_trigger):
                log.warning("fault injection: SIGKILL inside a transaction")
                os.kill(os.getpid(), signal.SIGKILL)
            positions = self._positions({partition: by_source})
            if positions:
                producer.send_offsets_to_transaction(
                    positions, self._consumer.consumer_group_metadata(), 30
                )
            producer.commit_transaction(30)
        except (KafkaException, WorkerError) as exc:
            self._abort({partition: store}, exc)
            return
        store.commit(changelog_position=self._changelog_next.get(partition))

    def _send_changelog(self, stores: dict[int, PartitionStore]) -> None:
        """Produce each store's sealed batch to its changelog partition, closing record last."""
        producer = self._producer
        assert producer is not None
        changelog = self.config.topics[Target.CHANGELOG]
        produce, send = producer.produce, self._send
        for partition, store in stores.items():
            for key, value in store.changelog_changes():
                try:  # inline: one call per state change is the changelog's hot path
                    produce(changelog, value, key, partition)
                except BufferError:
                    send(changelog, key, value, partition, None)
            # Only the closing record reports back: the idempotent producer delivers a
            # partition's records in order and without gaps, so its success (and its offset,
            # the new changelog position) vouches for the whole batch; a failure of any of them
            # fails it too. No callback per state change.
            closing_key, closing = store.closing_record()
            send(changelog, closing_key, closing, partition, self._on_changelog_delivery)

    def _sealed(self) -> dict[int, PartitionStore]:
        """The stores whose last batch waits for its changelog's acknowledgements."""
        return {p: s for p, s in self.stores.items() if s.sealed_offsets is not None}

    def _write_sealed(self, sealed: dict[int, PartitionStore]) -> None:
        """At-least-once, after a flush: the sealed batches' changelog is acknowledged, so they
        go to RocksDB, and their input offsets to the group."""
        reached: dict[int, dict[str, int]] = {}
        for partition, store in sealed.items():
            reached[partition] = store.sealed_offsets or {}
            store.commit(changelog_position=self._changelog_next.get(partition))
        if reached:
            self._commit_group_offsets(reached)

    def _settle(self) -> None:
        """At-least-once: wait for the sealed batches' changelog and write them (an idle loop, a
        revocation)."""
        if self._sealed():
            self._flush_and_write_sealed({})

    def _flush_and_write_sealed(self, in_progress: dict[int, PartitionStore]) -> bool:
        """At-least-once: flush, which acknowledges the sealed batches' changelog, then write
        them (``_write_sealed``). If the flush fails, they are rolled back with the stores of
        the batch ``in_progress`` (``_abort``) and the result is False."""
        sealed = self._sealed()
        try:
            self._flush()
        except (KafkaException, WorkerError) as exc:
            self._abort({**sealed, **in_progress}, exc)
            return False
        self._write_sealed(sealed)
        return True

    def _settle_to_stop(self, timeout: float) -> None:
        """``_settle`` for a stop, waiting at most ``timeout``: a sealed batch whose changelog
        is not acknowledged by then is dropped (its input is read again on the next start)."""
        sealed = self._sealed()
        producer = self._producer
        if not sealed or producer is None:
            return
        if producer.flush(timeout) == 0 and not self._delivery_errors:
            self._write_sealed(sealed)
            return
        log.warning("stopping without the last batch's changelog acknowledged: it is read again")
        self._delivery_errors = []
        for store in sealed.values():
            store.rollback()

    def _abort(self, stores: dict[int, PartitionStore], exc: Exception) -> None:
        """Forget the batch and read it again; a fatal producer error stops the worker."""
        error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
        log.warning("commit failed, the batch will be applied again: %s", exc)
        if self._eos and self._producer is not None:
            try:
                self._producer.abort_transaction(30)
            except KafkaException as abort_exc:
                raise WorkerError(f"cannot abort the transaction: {abort_exc}") from abort_exc
        for store in stores.values():
            store.rollback()
        self._rewind(stores)
        if error is not None and error.fatal():
            raise WorkerError(f"fatal producer error: {error.str()}") from exc
        if not self._eos:
            raise WorkerError(f"outputs were not delivered: {exc}") from exc

    def _rewind(self, stores: dict[int, PartitionStore]) -> None:
        assert self._consumer is not None
        for partition, store in stores.items():
            for topic, source in self._sources.items():
                offset = store.offsets.get(source.value, OFFSET_BEGINNING)
                self._consumer.seek(TopicPartition(topic, partition, offset))
                self._expect(partition, source, offset)

    def _expect(self, partition: int, source: Source, offset: int) -> None:
        """The next record of an input partition is at ``offset`` (a seek), if known."""
        self._gaps.expect(self._topic_of[source], partition, offset)

    def _fire_timers(self) -> None:
        # A scan per partition costs a RocksDB iterator each; once per interval keeps that off
        # the per-batch path and adds at most the interval to a timeout's lateness.
        tick = time.monotonic()
        if tick < self._next_timer_scan:
            return
        self._next_timer_scan = tick + self.config.timer_interval_ms / 1000
        now = int(time.time() * 1000)
        emits: list[Emit] = []
        limit = self.config.timer_batch
        for partition, store in self.stores.items():
            # Scan from where the last scan ended: the timers before it were sent, and those
            # already resolved are deleted entries RocksDB would step over on every scan until
            # a compaction (with 100k resolved timeouts that was most of the loop's time). A
            # timer written since with an earlier deadline (a late record) moves the start back.
            since = self._timer_mark.get(partition, 0)
            if store.earliest_new_timer is not None:
                since = min(since, store.earliest_new_timer)
                store.earliest_new_timer = None
            due = self.core.due_timers(store.state, now, partition, limit, since)
            # A timer command is sent once; it stays due until the worker reads it back.
            sent = self._sent_timers.get(partition, set())
            fresh = [emit for emit in due if emit.value not in sent]
            emits.extend(fresh)
            self._sent_timers[partition] = {emit.value or b"" for emit in due}
            unresolved = self._unresolved.setdefault(partition, {})
            for emit in fresh:
                unresolved[emit.value or b""] = (tick, emit)
            if len(due) < limit:
                self._timer_mark[partition] = now + 1
            else:  # more are due: the next scan starts at the last deadline seen
                self._timer_mark[partition] = _timer_deadline(due[-1].value, since)
        if tick >= self._next_resend_check:
            self._next_resend_check = tick + TIMER_RESEND_S / 4
            emits.extend(self._timers_to_resend(tick))
        if not emits:
            return
        if not self._eos:
            # No flush of their own: they leave with the linger while the loop goes on, and the
            # next flush or poll serves their acknowledgements (_on_timer_delivery).
            self._produce(emits, self._on_timer_delivery)
            return
        by_partition: dict[int, list[Emit]] = {}
        for emit in emits:  # each to the wait-commands partition of its own store
            by_partition.setdefault(emit.partition or 0, []).append(emit)
        for partition, commands in by_partition.items():
            if partition in self.stores:
                self._commit_timers(partition, commands)

    def _commit_timers(self, partition: int, commands: list[Emit]) -> None:
        """Exactly-once: a partition's timer commands in a transaction of its producer."""
        assert self._txn is not None
        producer = self._producer = self._txn.get(partition)
        try:
            producer.begin_transaction()
            self._produce(commands)
            self._flush()
            producer.commit_transaction(30)
        except (KafkaException, WorkerError) as exc:
            log.warning("timer commands not written, will retry: %s", exc)
            self._sent_timers.pop(partition, None)
            self._timer_mark.pop(partition, None)
            try:
                producer.abort_transaction(30)
            except KafkaException as abort_exc:
                raise WorkerError(f"cannot abort the transaction: {abort_exc}") from abort_exc

    def _timers_to_resend(self, tick: float) -> list[Emit]:
        """Timer commands sent ``TIMER_RESEND_S`` ago whose wait is still pending with their
        deadline: the core did not act on them (a broker's clock behind the worker's stamped
        them before the deadline, a failed transaction, a clock stepped back), so they go
        again. Those whose wait resolved are forgotten."""
        again: list[Emit] = []
        for partition, unresolved in self._unresolved.items():
            store = self.stores.get(partition)
            if store is None:
                continue
            for command, (sent, emit) in list(unresolved.items()):
                if tick - sent < TIMER_RESEND_S:
                    continue
                fields = json.loads(command)
                wait = store.state.get_wait(fields["waitId"])
                if wait is not None and wait.deadline == fields["deadline"]:
                    again.append(emit)
                    unresolved[command] = (tick, emit)
                else:
                    del unresolved[command]
        if again:
            log.info("%d timer commands were not acted on: sent again", len(again))
        return again

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if (now - self._last_purge) * 1000 < self.config.purge_interval_ms:
            return
        self._last_purge = now
        wall = int(time.time() * 1000)
        purged: dict[int, dict[str, int]] = {}
        for partition, store in self.stores.items():
            removed = self.core.purge(store.state, wall, 100_000)
            if removed:
                purged[partition] = {}
                log.info("purging %d expired entries from partition %d", removed, partition)
        if purged:
            self._commit([], purged)

    # -- producing -----------------------------------------------------------------------------

    def _produce(
        self,
        emits: list[Emit],
        on_delivery: Callable[[KafkaError | None, Message], None] | None = None,
    ) -> None:
        """Produce ``emits``; a failed delivery is reported to ``on_delivery`` (by default it
        fails the next flush: ``_on_delivery``)."""
        topics = self.config.topics
        report = on_delivery or self._on_delivery
        for emit in emits:
            self._send(
                topics[emit.target],
                emit.key,
                emit.value,
                emit.partition,
                report,
                emit.headers,
                emit.timestamp,
            )

    def _send(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None,
        headers: Headers = (),
        timestamp: int | None = None,
    ) -> None:
        producer = self._producer
        assert producer is not None
        # Positional, no kwargs dict: the common case. -1 is librdkafka's "unassigned
        # partition" (the partitioner decides); confluent-kafka takes headers and the
        # timestamp by keyword only.
        number = _UNASSIGNED if partition is None else partition
        while True:
            try:
                if headers or timestamp is not None:
                    producer.produce(
                        topic,
                        value,
                        key,
                        number,
                        on_delivery,
                        timestamp=timestamp or 0,
                        headers=list(headers),
                    )
                else:
                    producer.produce(topic, value, key, number, on_delivery)
                return
            except BufferError:
                producer.poll(0.05)
            except KafkaException as exc:
                # librdkafka refuses a record over message.max.bytes before it is queued (in a
                # transaction too, which it leaves unharmed): sent again, it fails again.
                dead_letters = self.config.topics[Target.DEAD_LETTERS]
                refused = exc.args[0].code() if exc.args else None
                if refused != KafkaError.MSG_SIZE_TOO_LARGE or topic == dead_letters:
                    raise
                self._refuse(topic, key, value, str(exc))
                return

    def _refuse(self, topic: str, key: bytes | None, value: bytes | None, why: str) -> None:
        """The last line of defence for an output too large for the producer: a reference to
        it (topic, key, size, digest) goes to the dead-letter topic and the batch goes on,
        rather than failing, being read again and failing again."""
        self.refused_outputs += 1
        log.error("an output to %s was refused (%s): it is dead-lettered by reference", topic, why)
        reason = (HEADER_REASON, f"output to {topic} refused: {why}"[:MAX_REASON_CHARS].encode())
        headers: Headers = (reason, *reference_headers(value or b""))
        dead_letters = self.config.topics[Target.DEAD_LETTERS]
        self._send(dead_letters, carried_key(key), None, None, self._on_delivery, headers)

    def _flush(self) -> None:
        producer = self._producer
        assert producer is not None
        while producer.flush(5.0) > 0:
            log.warning("waiting for the broker to acknowledge outputs")
        self._check_deliveries()

    def _check_deliveries(self) -> None:
        if self._delivery_errors:
            errors, self._delivery_errors = self._delivery_errors, []
            raise WorkerError(f"{len(errors)} records were not delivered: {errors[0]}")

    def _on_delivery(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{msg.topic()}: {error.str()}")

    def _on_timer_delivery(self, error: KafkaError | None, msg: Message) -> None:
        """A timer command that was not delivered goes again with its partition's next scan: the
        scan starts at its deadline at the latest, and it is no longer counted as sent."""
        if error is None:
            return
        log.warning("a timer command was not delivered, it will be sent again: %s", error.str())
        partition, value = msg.partition() or 0, msg.value() or b""  # produced to its partition
        self._sent_timers.get(partition, set()).discard(value)
        if partition in self._timer_mark:
            mark = self._timer_mark[partition]
            self._timer_mark[partition] = min(mark, _timer_deadline(value, mark))

    def _on_changelog_delivery(self, error: KafkaError | None, msg: Message) -> None:
        if error is not None:
            self._delivery_errors.append(f"{msg.topic()}: {error.str()}")
            return
        partition, offset = msg.partition() or 0, (msg.offset() or 0) + 1
        if offset > self._changelog_next.get(partition, 0):
            self._changelog_next[partition] = offset

    def _positions(self, offsets: dict[int, dict[str, int]]) -> list[TopicPartition]:
        return [
            TopicPartition(self.config.topics[Target(source)], partition, offset)
            for partition, by_source in offsets.items()
            for source, offset in by_source.items()
        ]

    def _commit_group_offsets(self, offsets: dict[int, dict[str, int]]) -> None:
        """Merge into the offsets to report; send them if the last report is 200 ms old."""
        for partition, by_source in offsets.items():
            self._group_offsets.setdefault(partition, {}).update(by_source)
        if time.monotonic() >= self._next_group_commit:
            self._flush_group_offsets()

    def _flush_group_offsets(self) -> None:
        assert self._consumer is not None
        positions = self._positions(self._group_offsets)
        self._group_offsets = {}
        self._next_group_commit = time.monotonic() + 0.2
        if not positions:
            return
        try:
            self._consumer.commit(offsets=positions, asynchronous=True)
        except KafkaException as exc:  # informational only, see the module docstring
            log.debug("group offset commit failed: %s", exc)

    # -- rebalancing ---------------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Open the stores and start restoring them; inputs stay paused until restored.

        The restore runs in the loop (``_restore_step``), between polls, so a long restore
        never holds up the group's rebalance or exceeds ``max.poll.interval.ms``.
        """
        numbers = sorted({tp.partition for tp in partitions})
        fresh = []
        for number in numbers:
            if number not in self.stores and number not in self._restoring:
                store = PartitionStore(self._store_path(number), number)
                store.open()
                fresh.append(store)
                self._restoring[number] = store
        assert self._restorer is not None
        committed = None
        if self._txn is not None:
            # Before anything is read: fence the partitions' previous owners, which aborts
            # a transaction a crashed one left open (its records block read_committed
            # readers, this worker included), and settles its pending offset commit.
            self._txn.open(numbers)
            committed = self._committed(consumer, [s.partition for s in fresh])
        self._restorer.begin(fresh, committed)
        for tp in partitions:
            store = self.stores.get(tp.partition) or self._restoring[tp.partition]
            tp.offset = store.offsets.get(self._sources[tp.topic].value, OFFSET_BEGINNING)
        consumer.assign(partitions)
        consumer.pause(partitions)
        for tp in partitions:
            self._paused.setdefault(tp.partition, []).append(tp)
        self._restore_started = time.monotonic()
        log.info("assigned partitions %s; restoring %s", numbers, [s.partition for s in fresh])

    def _restore_step(self) -> None:
        """Restore for a while; hand finished partitions to processing at their offsets."""
        assert self._restorer is not None and self._consumer is not None
        for stats in self._restorer.step(0.5):
            self.restored += stats.records
            store = self._restoring.pop(stats.partition)
            self._changelog_next[store.partition] = store.changelog_position
            self.stores[store.partition] = store
        if self._restoring:
            return
        ready = [tp for number in sorted(self._paused) for tp in self._paused[number]]
        self._paused = {}
        for tp in ready:
            # The restore may have moved the store past what the local copy said at assignment.
            store = self.stores[tp.partition]
            source = self._sources[tp.topic]
            offset = store.offsets.get(source.value, OFFSET_BEGINNING)
            if offset != tp.offset:
                self._consumer.seek(TopicPartition(tp.topic, tp.partition, offset))
            self._expect(tp.partition, source, offset)
        self._consumer.resume(ready)
        seconds = time.monotonic() - self._restore_started
        log.info(
            "ready: partitions %s after a restore of %.2fs (%d changelog records so far)",
            sorted({tp.partition for tp in ready}),
            seconds,
            self.restored,
        )
        if self.on_assigned is not None:
            self.on_assigned(sorted({tp.partition for tp in ready}))

    def _committed(self, consumer: Consumer, numbers: list[int]) -> dict[int, dict[str, int]]:
        wanted = [TopicPartition(topic, n) for n in numbers for topic in self._sources]
        out: dict[int, dict[str, int]] = {n: {} for n in numbers}
        if not wanted:
            return out
        for tp in consumer.committed(wanted, timeout=30):
            if tp.offset >= 0:
                out[tp.partition][self._sources[tp.topic].value] = tp.offset
        return out

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = sorted({tp.partition for tp in partitions})
        try:
            if not self._eos:
                self._settle()  # the sealed batches reach RocksDB before their stores close
                if self._group_offsets:
                    self._flush_group_offsets()  # while the partitions are still ours
        finally:  # a failed settle (rolled back, raised) still gives the partitions up
            self._release(consumer, numbers)

    def _release(self, consumer: Consumer, numbers: list[int]) -> None:
        assert self._restorer is not None
        self._restorer.cancel(numbers)
        for number in numbers:
            store = self.stores.pop(number, None) or self._restoring.pop(number, None)
            if store is not None:
                store.close()
            self._paused.pop(number, None)
            self._sent_timers.pop(number, None)
            self._unresolved.pop(number, None)
            self._timer_mark.pop(number, None)
            self._changelog_next.pop(number, None)
            for source in self._sources.values():
                self._expect(number, source, -1)
        if self._txn is not None:
            self._txn.close(numbers)
        consumer.unassign()
        log.info("revoked partitions %s", numbers)

    # -- configuration -------------------------------------------------------------------------

    def _store_path(self, partition: int) -> Path:
        return self.config.state_dir / self.config.group_id / f"partition-{partition}"

    def _consumer_config(self) -> dict[str, Any]:
        return {
            "group.id": self.config.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": "range",
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "max.poll.interval.ms": 30000,  # also the rebalance timeout: see docs/guarantees.md
            "isolation.level": "read_committed",
            # How long the broker may hold a fetch when nothing is new. Tansu does not answer
            # a held fetch when records arrive, so up to this much is added to a record's
            # latency under light load; shorter waits cost more fetches, which on Tansu made
            # latency worse under load (docs/benchmarks.md).
            "fetch.wait.max.ms": 50,
            **self.config.client,
        }

    def _producer_config(self) -> dict[str, Any]:
        config: dict[str, Any] = {
            "enable.idempotence": True,
            "linger.ms": 5,
            "partitioner": "murmur2_random",
            **self.config.client,
        }
        # Room for the largest record waitline writes (processors.limits), never less.
        config["message.max.bytes"] = max(
            int(config.get("message.max.bytes", 0)),
            producer_max_bytes(self.config.core.max_record_bytes),
        )
        return config  # exactly-once: each partition's transactional.id is added to it


def _split(emits: list[Emit], marks: list[tuple[int, int]]) -> dict[int, list[Emit]]:
    """A batch's outputs by the partition whose records produced them (``marks``: where each
    partition's run of outputs starts, in order)."""
    out: dict[int, list[Emit]] = {}
    for index, (start, partition) in enumerate(marks):
        end = marks[index + 1][0] if index + 1 < len(marks) else len(emits)
        if end > start:
            out.setdefault(partition, []).extend(emits[start:end])
    return out


def _timer_deadline(command: bytes | None, default: int) -> int:
    """The ``deadline`` of a timer command this worker wrote (``default`` if it names none)."""
    return int(json.loads(command or b"{}").get("deadline", default))


def _headers(raw: Any) -> Headers:
    """A record's headers (``Message.headers()``, a list or a dict) as (name, value) pairs; a
    header without a value stays without one."""
    items = raw.items() if isinstance(raw, dict) else raw
    return tuple(
        (name, value if value is None or isinstance(value, bytes) else value.encode())
        for name, value in items
    )
