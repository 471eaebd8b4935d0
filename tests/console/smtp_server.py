"""A real SMTP server for tests (aiosmtpd on 127.0.0.1, a free port) whose
answers a test can script: refuse a recipient (5xx), ask to try later
(4xx), or accept and keep the parsed message."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.services import free_tcp_port


@dataclass
class Mailbox:
    """The server's handler. ``data_replies`` are given, in order, instead of
    accepting the next messages; ``rcpt_reply`` refuses every recipient."""

    messages: list[EmailMessage] = field(default_factory=list)
    data_replies: list[str] = field(default_factory=list)
    rcpt_reply: str = ""

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_replies:
            return self.data_replies.pop(0)
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.messages.append(msg)  # type: ignore[arg-type]
        return "250 Message accepted for delivery"


@contextmanager
def smtp_server(mailbox: Mailbox | None = None) -> Iterator[tuple[Mailbox, int]]:
    """The mailbox and the port; the server stops on leaving. A port taken
    in the moment between choosing and binding it is chosen again."""
    box = mailbox or Mailbox()
    for attempt in range(3):
        port = free_tcp_port()
        controller = Controller(box, hostname="127.0.0.1", port=port, ready_timeout=5.0)
        try:
            controller.start()
            break
        except OSError:
            if attempt == 2:
                raise
    try:
        yield box, port
    finally:
        controller.stop()
