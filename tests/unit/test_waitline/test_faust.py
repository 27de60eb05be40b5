"""waitline.faust without a broker: the codec, and what FaustClient hands Faust's topics."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from kafkafakes import resume

pytest.importorskip("faust", reason="the faust extra is not installed")

from faust.serializers import codecs

from waitline.config import Settings
from waitline.errors import InvalidRecordError
from waitline.faust import CODEC, FaustClient
from waitline.schemas.keys import make_key, partition_for
from waitline.schemas.models import ResumeCommand
from waitline.topics import load_topics

REPO = Path(__file__).resolve().parents[3]


class FakeTopic:
    def __init__(self, name: str, options: dict[str, Any], sent: list[dict[str, Any]]) -> None:
        self.name, self.options, self.sent = name, options, sent

    async def send(self, **kwargs: Any) -> None:
        self.sent.append({"topic": self.name, **kwargs})


class FakeApp:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.topics: list[FakeTopic] = []

    def topic(self, name: str, **options: Any) -> FakeTopic:
        topic = FakeTopic(name, options, self.sent)
        self.topics.append(topic)
        return topic


def _client() -> tuple[FaustClient, FakeApp]:
    app = FakeApp()
    topics = load_topics(REPO / "topics.yaml", "test.")
    return FaustClient(app, Settings(), topics=topics), app  # type: ignore[arg-type]


def test_the_codec_decodes_resume_commands() -> None:
    raw = resume("run-1/w", "run-1")
    decoded = codecs.loads(CODEC, raw)
    assert isinstance(decoded, ResumeCommand) and decoded.wait_id == "run-1/w"
    assert codecs.dumps(CODEC, decoded) == raw
    with pytest.raises(ValueError):
        codecs.loads(CODEC, b'{"waitId": "run-1/w"}')


def test_the_resumes_topic_is_typed() -> None:
    client, app = _client()
    topic = client.resumes_topic()
    assert topic.name == "test.resumes"  # type: ignore[attr-defined]
    assert app.topics[0].options["value_serializer"] == CODEC


def test_records_go_to_the_murmur2_partition_of_their_key() -> None:
    client, app = _client()

    async def main() -> None:
        await client.send_event("payment.received", "order-ü", {"amount": 3})
        await client.register_wait(
            "order-1/payment", run_id="order-1", name="payment.received",
            correlation_key="order-1", timeout="1h",
        )  # fmt: skip
        await client.cancel_wait("order-1/payment", name="payment.received", correlation_key="o|1")

    asyncio.run(main())
    keys = [make_key("payment.received", k) for k in ("order-ü", "order-1", "o|1")]
    assert [(m["topic"], m["key"], m["partition"]) for m in app.sent] == [
        ("test.events", keys[0], partition_for(keys[0], 8)),
        ("test.wait-commands", keys[1], partition_for(keys[1], 8)),
        ("test.wait-commands", keys[2], partition_for(keys[2], 8)),
    ]
    assert json.loads(app.sent[1]["value"])["waitId"] == "order-1/payment"
    assert json.loads(app.sent[2]["value"])["type"] == "cancel"
    assert {t.options["value_serializer"] for t in app.topics} == {"raw"}
    assert len(app.topics) == 2  # one Faust topic per waitline topic, reused


def test_an_oversized_record_is_not_sent() -> None:
    client, app = _client()
    with pytest.raises(InvalidRecordError):
        asyncio.run(client.send_event("n", "k", {"blob": "x" * client.settings.max_record_bytes}))
    assert app.sent == []
