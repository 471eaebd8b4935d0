"""The engine's command table: one entry per request type, one way through.

Every request is answered. For each, in order: find its handler (an unknown
type is refused), check the session and the role when the entry needs one
(``SessionBook.actor``), run the handler, stamp the reply with the request's
``seq`` as ``ref``. A ``Refused`` from any step becomes a refusal the sender
reads and the access log records; any other failure in a handler is logged
and answered as an internal error, and the engine goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from console.engine.desk import StoreBusy
from console.engine.sessions import SessionBook
from models.alerts import Actor, Refused
from models.messages import CommandReply, Reply

log = logging.getLogger(__name__)

Handler = Callable[[Any, Actor | None], Reply]


@dataclass(frozen=True, slots=True)
class Entry:
    handler: Handler
    signed_in: bool = True  # needs a session whose roles may send this schema


def schema_of(req: object) -> str:
    return str(type(req).__struct_config__.tag)  # type: ignore[attr-defined]


class CommandTable:
    def __init__(self, sessions: SessionBook, entries: dict[type, Entry]) -> None:
        self.sessions = sessions
        self.entries = entries
        self.refused = 0
        self.failed = 0

    def handle(self, req: object) -> Reply:
        schema = schema_of(req)
        ref = int(getattr(req, "seq", 0))
        entry = self.entries.get(type(req))
        try:
            if entry is None:
                raise Refused("unsupported", f"the engine does not take {schema}")
            actor = self.sessions.actor(req.token, schema) if entry.signed_in else None  # type: ignore[attr-defined]
            reply = entry.handler(req, actor)
        except StoreBusy:
            raise  # not an answer: the engine asks again in a moment
        except Refused as exc:
            self.refused += 1
            user = self.sessions.who(getattr(req, "token", ""))
            log.warning("refused %s from %s: %s", schema, user, exc)
            self.sessions.record(user, schema, False, f"{exc.code}: {exc}")
            return CommandReply(ok=False, error=str(exc), code=exc.code, ref=ref)
        except Exception:
            self.failed += 1
            log.exception("handling %s failed", schema)
            return CommandReply(ok=False, error=f"the engine failed on {schema}; it is logged",
                                code="internal", ref=ref)
        return msgspec.structs.replace(reply, ref=ref) if hasattr(reply, "ref") else reply
