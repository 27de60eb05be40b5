"""Signup with email verification: a webhook publishes ``email.verified``, a runner resumes.

    .venv/bin/python examples/email_verification.py           # against `make dev`: the demo
    .venv/bin/python examples/email_verification.py --serve   # wait for you to open the link

Three parts, as a real deployment splits them:

- the **signup workflow** registers a wait for the user's ``email.verified`` event (24 h) and
  sends the verification email (here: prints the link);
- the **webhook** behind the link (stdlib ``http.server``) publishes the event;
- the **runner** (``waitline.Runner``, a consumer group on ``resumes``) resumes the signup
  when its wait resolves: verified, or timed out after 24 h.

The demo "clicks" the link itself a moment after signing up and exits once the signup has
resumed; ``--serve`` leaves the clicking to you and runs until Ctrl-C. Broker and topics come
from the ``WAITLINE_*`` settings.
"""

from __future__ import annotations

import argparse
import threading
import urllib.parse
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, HTTPServer

from waitline import Client, ResumeCommand, Runner


class Webhook(BaseHTTPRequestHandler):
    """``GET /verify?user=ID``: the user clicked the link; publish ``email.verified``."""

    client: Client  # set before serving; HTTPServer handles one request at a time

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        user = urllib.parse.parse_qs(url.query).get("user", [""])[0]
        if url.path != "/verify" or not user:
            self.send_error(404)
            return
        self.client.send_event(
            "email.verified",
            f"user:{user}",
            {"userId": user},
            idempotency_key=f"email.verified:user:{user}",  # a second click is dropped
        )
        self.client.flush()
        body = b"Thanks, your email address is verified.\n"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        print(f"webhook: {format % args}", flush=True)


def signup(client: Client, user: str, base_url: str) -> str:
    """The signup workflow up to its wait: register it, send the email; returns the link."""
    run_id = f"signup-{user}"
    client.register_wait(
        f"{run_id}/verify-email",
        run_id=run_id,
        name="email.verified",
        correlation_key=f"user:{user}",
        timeout="24h",
        on_timeout="fail",
        metadata={"user": user},
    )
    client.flush()
    link = f"{base_url}/verify?user={user}"
    print(f"{run_id}: waiting for the email to be verified; the link: {link}", flush=True)
    return link


def main() -> None:
    parser = argparse.ArgumentParser(description="signup with email verification")
    parser.add_argument("--serve", action="store_true", help="wait for a real click")
    parser.add_argument("--port", type=int, default=0, help="webhook port (default: any free)")
    args = parser.parse_args()

    client = Client()
    Webhook.client = Client(client.settings)  # the webhook's thread has a client of its own
    server = HTTPServer(("127.0.0.1", args.port), Webhook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base_url = f"http://127.0.0.1:{server.server_port}"

    user = uuid.uuid4().hex[:8]
    mine = f"signup-{user}"
    link = signup(client, user, base_url)

    def resume_signup(resume: ResumeCommand) -> None:
        if not resume.run_id.startswith("signup-") or (resume.run_id != mine and not args.serve):
            return  # not a signup, or (in the demo) another start's signup
        if resume.outcome == "matched":
            print(f"{resume.run_id}: email verified, account activated", flush=True)
        else:
            print(f"{resume.run_id}: {resume.outcome} ({resume.error}), signup fails", flush=True)
        if not args.serve:
            runner.stop()

    runner = Runner(resume_signup, group_id="waitline-example-signups")
    if not args.serve:  # the user clicks a second later
        threading.Timer(1.0, lambda: urllib.request.urlopen(link, timeout=10).read()).start()
    runner.run()  # until the signup resumed (the demo) or Ctrl-C
    server.shutdown()
    print("stopped", flush=True)


if __name__ == "__main__":
    main()
