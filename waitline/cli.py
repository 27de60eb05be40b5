"""The ``waitline`` command line. User mistakes print one line and exit non-zero, no traceback.

Exit codes: 0 success, 1 a runtime failure (broker gone, wait not resumed in time),
2 a usage, input or configuration mistake (bad JSON, bad duration, bad expression, a bad flag,
a bad ``WAITLINE_*`` variable, a missing or malformed topics file, client settings librdkafka
refuses), found before Kafka is contacted.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import itertools
import json
import logging
import os
import shlex
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

from confluent_kafka import KafkaException
from pydantic import ValidationError
from pydantic_settings import SettingsError

from waitline.config import Settings
from waitline.errors import ConfigError, WaitlineError, WaitTimeoutError
from waitline.logs import configure_logging, log_format_from
from waitline.schemas.durations import DurationError, parse_duration

__all__ = ["main"]

EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report a Ctrl-C


class UsageError(WaitlineError):
    """A mistake in what the user typed."""


def _json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not valid JSON: {exc.msg} at column {exc.colno}") from None


def _json_object(text: str, what: str) -> dict[str, Any]:
    value = _json(text, what)
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def _duration(text: str, what: str) -> str:
    try:
        parse_duration(text)
    except DurationError as exc:
        raise UsageError(f"{what}: {exc}") from None
    return text


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, Any] = {}
    named = ("bootstrap_servers", "topics_file", "topic_prefix", "group_id", "state_dir")
    for field in (*named, "processes"):
        value = getattr(args, field, None)
        if value is not None:
            overrides[field] = value
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc, flags=overrides)) from None
    except SettingsError as exc:  # a variable pydantic-settings could not decode
        raise ConfigError(str(exc)) from None


def _describe(exc: ValidationError, flags: Mapping[str, object] | None = None) -> str:
    """Every mistake of ``exc`` on one line, each named as the user gave it: ``--flag`` or
    ``WAITLINE_VARIABLE``. Inputs are not quoted (Settings hides them in its errors)."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    described = []
    for error in exc.errors():
        field = str(error["loc"][0]) if error["loc"] else ""
        if field in (flags or {}):
            where = "--" + field.replace("_", "-")
        elif field in Settings.model_fields:
            where = prefix + field.upper()
        else:
            where = ".".join(str(part) for part in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        described.append(f"{where}: {message}" if where else message)
    return "; ".join(described)


def _client(args: argparse.Namespace) -> Any:
    from waitline.broker import wait_for_broker
    from waitline.client import Client
    from waitline.topics import load_topics

    settings = _settings(args)
    topics = load_topics(settings.topics_file, settings.topic_prefix)  # before connecting
    wait_for_broker(settings.as_librdkafka_dict(), timeout=args.connect_timeout)
    return Client(settings, topics=topics)


# -- commands ----------------------------------------------------------------------------------


def cmd_send(args: argparse.Namespace) -> int:
    from waitline.client import new_event

    data = _json_object(args.data, "--data") if args.data else {}
    if args.ttl is not None:
        _duration(args.ttl, "--ttl")
    # Built (and so validated) before connecting: a bad name is the user's mistake, not the
    # broker's, whether or not the broker is up.
    event = new_event(
        args.name,
        args.correlation_key,
        data,
        event_id=args.event_id,
        idempotency_key=args.idempotency_key,
        ttl=args.ttl,
    )
    client = _client(args)
    client.send(event)
    client.flush()
    print(event.to_json().decode())
    return 0


def cmd_wait(args: argparse.Namespace) -> int:
    from waitline.schemas.models import WaitRegistration

    _duration(args.timeout, "--timeout")
    if args.lookback is not None:
        _duration(args.lookback, "--lookback")
    context = _json_object(args.context, "--context") if args.context else None
    metadata = _json(args.metadata, "--metadata") if args.metadata else None
    if args.if_ is not None:
        from waitline.processors.filters import FilterCache, FilterCompileError

        try:
            FilterCache().compile(args.if_)
        except FilterCompileError as exc:
            raise UsageError(f"--if does not compile: {exc}") from None
    run_id = args.run_id or f"cli-{uuid.uuid4().hex[:12]}"
    wait_id = args.wait_id or f"{run_id}/{args.name}"
    common: dict[str, Any] = {
        "run_id": run_id,
        "name": args.name,
        "correlation_key": args.correlation_key,
        "timeout": args.timeout,
        "on_timeout": args.on_timeout,
        "if_": args.if_,
        "context": context,
        "lookback": args.lookback,
        "metadata": metadata,
    }
    WaitRegistration(wait_id=wait_id, **common)  # validated before connecting, as for send
    client = _client(args)
    if args.no_follow:
        registration = client.register_wait(wait_id, **common)
        client.flush()
        print(registration.to_json().decode())
        return 0
    print(
        f"waiting: waitId={wait_id} runId={run_id} for {args.name}|{args.correlation_key}",
        file=sys.stderr,
    )
    try:
        resume = client.wait_for_event(wait_id, wait_timeout=args.wait_timeout, **common)
    except KeyboardInterrupt:  # Ctrl-C: the wait stays registered, as after --wait-timeout
        cancel = shlex.join(["waitline", "cancel", wait_id, args.name, args.correlation_key])
        print(
            f"waitline: interrupted; the wait stays registered ({cancel} cancels it)",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    print(resume.to_json().decode())
    return 0 if resume.outcome == "matched" or args.any_outcome else 3


def cmd_cancel(args: argparse.Namespace) -> int:
    from waitline.schemas.models import CancelWait

    CancelWait(
        type="cancel", wait_id=args.wait_id, name=args.name, correlation_key=args.correlation_key
    )
    client = _client(args)
    found = None
    if not args.no_lookup:  # what the changelog says of the wait, before the cancel
        from waitline.cmd_cluster import describe_cancel

        try:
            found = describe_cancel(
                args, client.settings, args.wait_id, args.name, args.correlation_key
            )
        except (WaitlineError, KafkaException) as exc:
            found = f"not looked up ({exc})"
    cancel = client.cancel_wait(args.wait_id, name=args.name, correlation_key=args.correlation_key)
    client.flush()
    if found is not None:
        print(f"waitline: {found}", file=sys.stderr)
    print(cancel.to_json().decode())
    return 0


def cmd_topics_create(args: argparse.Namespace) -> int:
    from confluent_kafka.admin import AdminClient

    from waitline.broker import wait_for_broker
    from waitline.topics import create_topics, load_topics

    settings = _settings(args)
    topics = load_topics(settings.topics_file, settings.topic_prefix)
    wait_for_broker(settings.as_librdkafka_dict(), timeout=args.connect_timeout)
    result = create_topics(AdminClient(settings.as_librdkafka_dict()), topics)
    for name, status in result.items():
        print(f"{name}: {status}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from waitline.processors.restore import RestoreError
    from waitline.processors.runtime import WorkerError
    from waitline.topics import load_topics
    from waitline.worker import run_workers

    settings = _settings(args)
    load_topics(settings.topics_file, settings.topic_prefix)  # its mistakes, before connecting
    try:
        run_workers(settings, own_process=True)  # this process is the worker's
    except (WorkerError, RestoreError) as exc:  # fatal: logged lines above say what led to it
        raise WaitlineError(f"worker stopped: {exc}") from None
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from waitline import inspect
    from waitline.worker import check_state_layout

    settings = _settings(args)
    check_state_layout(settings)
    if not inspect.store_paths(settings.state_dir, settings.group_id):
        raise UsageError(
            f"no state under {settings.state_dir / settings.group_id} "
            "(check --state-dir / --group-id, and run it where the worker keeps its state)"
        )
    if args.what == "summary":
        rows = inspect.summary(settings.state_dir, settings.group_id)
        print(f"{'partition':>9}  {'pending waits':>13}  {'buffered events':>15}  offsets")
        for row in rows:
            offsets = " ".join(f"{k}={v}" for k, v in sorted(row.offsets.items()))
            print(
                f"{row.partition:>9}  {row.pending_waits:>13}  {row.buffered_events:>15}  {offsets}"
            )
        total_waits = sum(r.pending_waits for r in rows)
        total_events = sum(r.buffered_events for r in rows)
        print(f"{'total':>9}  {total_waits:>13}  {total_events:>15}")
        return 0
    lister = inspect.pending_waits if args.what == "waits" else inspect.buffered_events
    items = lister(settings.state_dir, settings.group_id, args.name, args.key)
    for item in itertools.islice(items, args.limit):
        print(json.dumps(item, separators=(",", ":")))
    return 0


def cmd_dev(args: argparse.Namespace) -> int:
    from waitline.dev import run_dev

    _settings(argparse.Namespace())  # the environment's mistakes, before a broker starts
    return run_dev(port=args.port, state_dir=args.state_dir, workers=args.workers)


# -- parser ------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, with its mistakes on one line like every other (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"waitline: error: {message} (see {self.prog} --help)\n")


def _whole(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None


def _at_least(minimum: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _whole(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _port(text: str) -> int:
    value = _whole(text)
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number (1-65535), got {value}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds, got {text}")
    return value


def _add_connection(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("connection (defaults from WAITLINE_* environment)")
    group.add_argument("--bootstrap-servers", metavar="HOST:PORT", help="Kafka bootstrap servers")
    group.add_argument("--topics-file", metavar="PATH", help="topics.yaml to use")
    group.add_argument("--topic-prefix", metavar="PREFIX", help="prepended to every topic name")
    group.add_argument(
        "--connect-timeout",
        type=_seconds,
        default=10.0,
        metavar="SECONDS",
        help="how long to try reaching Kafka (default 10)",
    )


def _version() -> str:
    """The installed package's version (its metadata, as pip shows it)."""
    try:
        return importlib.metadata.version("waitline")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree not installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="waitline",
        description="Pause workflows until the right event arrives; resume the right run.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at debug level")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    dev = sub.add_parser("dev", help="embedded broker + topics + worker, for development")
    dev.add_argument("--port", type=_port, default=9092, help="broker port on 127.0.0.1 (9092)")
    dev.add_argument("--state-dir", default=None, help="RocksDB dir (default: a fresh temp dir)")
    dev.add_argument(
        "--workers", type=_at_least(0), default=1, help="worker processes to start (1)"
    )
    dev.set_defaults(func=cmd_dev)

    worker = sub.add_parser("worker", help="run a processor (a consumer-group member)")
    _add_connection(worker)
    worker.add_argument("--group-id", help="consumer group (default <topic prefix>waitline)")
    worker.add_argument("--state-dir", help="RocksDB directory (default .waitline/state)")
    worker.add_argument(
        "--processes",
        type=_whole,
        metavar="N",
        help="worker processes to run, each a group member (default 1; one per core)",
    )
    worker.set_defaults(func=cmd_worker)

    topics = sub.add_parser("topics", help="manage the topics in topics.yaml")
    topics_sub = topics.add_subparsers(dest="topics_command", metavar="ACTION", required=True)
    create = topics_sub.add_parser("create", help="create missing topics (idempotent)")
    _add_connection(create)
    create.set_defaults(func=cmd_topics_create)

    send = sub.add_parser("send", help="publish an event")
    send.add_argument("name", help="event name, e.g. email.verified")
    send.add_argument("correlation_key", metavar="correlation-key", help="e.g. user-42")
    send.add_argument("--data", metavar="JSON", help="event data, a JSON object")
    send.add_argument("--event-id", help="default: a new UUID")
    send.add_argument("--idempotency-key", help="drop repeats with this key in the dedup window")
    send.add_argument(
        "--ttl", metavar="DURATION", help="how long after its record time the event stays available"
    )
    _add_connection(send)
    send.set_defaults(func=cmd_send)

    wait = sub.add_parser("wait", help="register a wait and print its resume command")
    wait.add_argument("name", help="event name to wait for")
    wait.add_argument("correlation_key", metavar="correlation-key")
    wait.add_argument("--timeout", required=True, metavar="DURATION", help="e.g. 30s, 24h, PT1H")
    wait.add_argument("--on-timeout", choices=["fail", "continue", "cancel"], default="fail")
    wait.add_argument("--if", dest="if_", metavar="CEL", help="filter, e.g. async.data.ok == true")
    wait.add_argument("--context", metavar="JSON", help="JSON object the filter reads as `event`")
    wait.add_argument(
        "--lookback",
        metavar="DURATION",
        help="count only events appended at most this long before the wait, by Kafka record "
        "time (0: appended at or after it)",
    )
    wait.add_argument("--metadata", metavar="JSON", help="opaque JSON returned in the resume")
    wait.add_argument("--wait-id", help="default: <run-id>/<name>")
    wait.add_argument("--run-id", help="default: a new cli-… id")
    wait.add_argument(
        "--wait-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="give up following after this long (the wait stays registered)",
    )
    wait.add_argument("--no-follow", action="store_true", help="register only, do not wait")
    wait.add_argument(
        "--any-outcome", action="store_true", help="exit 0 for any outcome, not only matched"
    )
    _add_connection(wait)
    wait.set_defaults(func=cmd_wait)

    inspect = sub.add_parser(
        "inspect", help="show pending waits / buffered events from local state (read-only)"
    )
    inspect.add_argument("what", choices=["summary", "waits", "events"])
    inspect.add_argument("--name", help="only this event name")
    inspect.add_argument("--key", help="only this correlation key")
    inspect.add_argument(
        "--limit", type=_at_least(1), default=None, help="print at most this many (1 or more)"
    )
    inspect.add_argument("--state-dir", help="RocksDB directory (default .waitline/state)")
    inspect.add_argument("--group-id", help="consumer group (default <topic prefix>waitline)")
    inspect.set_defaults(func=cmd_inspect)

    cancel = sub.add_parser(
        "cancel", help="cancel a pending wait (and say whether the changelog shows it pending)"
    )
    cancel.add_argument("wait_id", metavar="wait-id")
    cancel.add_argument("name")
    cancel.add_argument("correlation_key", metavar="correlation-key")
    cancel.add_argument(
        "--no-lookup",
        action="store_true",
        help="do not read the changelog to say whether the wait is pending",
    )
    _add_connection(cancel)
    cancel.set_defaults(func=cmd_cancel)

    from waitline.opscli import add_commands  # replay, dead-letters, waits, status

    add_commands(sub)
    return parser


def _one_line(text: str) -> str:
    """A message that spans lines (a YAML parser's, say) on one."""
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    level = logging.DEBUG if args.verbose else logging.INFO
    configure_logging(level, log_format_from(os.environ))  # a wrong value: Settings says so
    func: Callable[[argparse.Namespace], int] = args.func
    try:
        return func(args)
    except (UsageError, ConfigError, DurationError) as exc:
        print(f"waitline: error: {_one_line(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except ValidationError as exc:
        print(f"waitline: error: {_one_line(_describe(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except WaitTimeoutError as exc:
        print(f"waitline: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except (WaitlineError, KafkaException) as exc:
        print(f"waitline: error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        print("waitline: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILURE
