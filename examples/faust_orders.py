"""A Faust runner: each order waits for its payment; paid orders ship, the others are cancelled.

    .venv/bin/python examples/faust_orders.py          # against `make dev`; Ctrl-C stops it
    .venv/bin/python examples/faust_orders.py --once   # stop after the demo's three orders

Needs the ``faust`` extra (``pip install 'waitline[faust]'``; ``make install`` has it). One
agent takes orders (from an in-memory channel here; a Kafka topic in a real app) and registers
a wait for each order's ``payment.received`` event; another reads ``resumes`` as a typed stream
of ``ResumeCommand``\\s, ships the paid orders (publishing ``order.shipped``) and cancels the
orders whose payment did not come in time. On start, a task places three orders and pays two.
Broker and topics come from the ``WAITLINE_*`` settings, as for every example.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import uuid

import faust

from waitline import ResumeCommand, Settings
from waitline.faust import FaustClient
from waitline.resumes import SeenResumes

settings = Settings()
APP_ID = f"{settings.topic_prefix}waitline-example-orders"  # the consumer group, too
app = faust.App(
    APP_ID,
    broker=f"kafka://{settings.bootstrap_servers}",
    datadir=os.path.join(tempfile.gettempdir(), APP_ID),
    web_enabled=False,
    consumer_auto_offset_reset="earliest",
    # The embedded broker is slow to settle a group with Kafka's default timeouts.
    broker_session_timeout=6.0,
    broker_heartbeat_interval=1.0,
)
waitline = FaustClient(app, settings)

RUN = uuid.uuid4().hex[:8]  # this start's orders, so that a second start ignores the first's
ONCE = "--once" in sys.argv


class Order(faust.Record):
    order_id: str
    amount: int


orders = app.channel(value_type=Order)


@app.agent(orders)
async def place_orders(stream: faust.StreamT[Order]) -> None:
    async for order in stream:
        await waitline.register_wait(
            f"{order.order_id}/payment",
            run_id=order.order_id,
            name="payment.received",
            correlation_key=order.order_id,
            timeout="5s",
            on_timeout="cancel",
            metadata={"amount": order.amount},
        )
        print(f"{order.order_id}: placed, waiting for its payment", flush=True)


seen = SeenResumes()
finished: set[str] = set()


@app.agent(waitline.resumes_topic())
async def resume_orders(resumes: faust.StreamT[ResumeCommand]) -> None:
    async for resume in resumes:
        if not resume.run_id.startswith(f"order-{RUN}-") or resume.resume_id in seen:
            continue  # another start's order, or a repeat
        seen.add(resume.resume_id)
        if resume.outcome == "matched" and resume.event is not None:
            await waitline.send_event("order.shipped", resume.run_id, resume.event.data)
            print(f"{resume.run_id}: paid {resume.event.data['amount']}, shipped", flush=True)
        else:
            print(f"{resume.run_id}: {resume.outcome}, cancelled", flush=True)
        finished.add(resume.run_id)
        if ONCE and len(finished) == 3:
            print("demo done", flush=True)
            os.kill(os.getpid(), signal.SIGTERM)  # the worker stops as on Ctrl-C


@app.task
async def demo() -> None:
    for i, amount in enumerate((30, 12, 99), start=1):
        await orders.send(value=Order(order_id=f"order-{RUN}-{i}", amount=amount))
    for i, amount in ((1, 30), (2, 12)):  # order 3 is never paid
        await waitline.send_event("payment.received", f"order-{RUN}-{i}", {"amount": amount})


if __name__ == "__main__":
    sys.argv = [sys.argv[0], "worker", "--loglevel", "warn"]
    app.main()
