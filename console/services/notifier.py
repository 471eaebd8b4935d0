"""The notifier: delivers guardians' routine notices from the outbox in the
store (``db.outbox``) through the configured adapter (``console.notify``),
writes each outcome back, and tells the consoles (``notice.status``).

Why it is shaped like this:

- The store is the truth. A notice is claimed (for a lease), sent, then
  marked in one transaction per batch of outcomes; the bus message follows
  the commit. A notice marked sent is never sent again; one in flight when
  the process died comes due again when its claim lapses and is sent again
  (at least once; the e-mail's Message-ID is the same).
- Sending runs on one thread of its own, the store and the bus on the main
  loop: a slow mail server (every step has a timeout) delays notices, never
  the heartbeat, so the supervisor never kills a healthy notifier for a
  sick mail server.
- One bad notice costs only itself: an adapter's surprise is a transient
  failure of that notice (retried, then dead-lettered), and an error in a
  turn is logged, counted and the loop goes on.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import zmq
from sqlalchemy.exc import OperationalError

from console.bus import Publisher
from console.notify.adapters import Adapter, DeliveryError, adapter_for
from console.security import Security
from console.services.runtime import Runtime, start
from db import outbox
from db.store import open_store
from models import health
from models.messages import NoticeState, NoticeStatus
from models.notices import Outgoing

BATCH = 10  # notices claimed at a time
POLL_S = 0.5  # the outbox is read this often when nothing was due
WAIT_S = 0.25  # longest the loop sleeps (it wakes at once for a result)
BEAT_S = 1.0
RETRY_S = 1.0  # after the store refused or a turn failed
STORE_WAIT_S = 5.0  # a locked store is waited for this long, well under the hung limit
STOP_WAIT_S = 5.0  # a send in progress at a stop gets this long to finish
# A batch still unsent by then is given back: its claim must never lapse
# while this process still means to send it.
BATCH_BUDGET_S = outbox.LEASE_S / 2


@dataclass(frozen=True, slots=True)
class Result:
    """How sending one notice went; ``tried`` False: it was never offered
    (the batch ran out of time, or the notifier is stopping)."""

    notice: Outgoing
    error: DeliveryError | None
    tried: bool = True


class Sender:
    """The sending thread: takes batches, sends them one by one through the
    adapter, and hands back one ``Result`` per notice."""

    def __init__(self, adapter: Adapter, log_error: Callable[[str, Outgoing], None]) -> None:
        self.adapter = adapter
        self.log_error = log_error
        self.inbox: queue.SimpleQueue[tuple[list[Outgoing], float] | None] = queue.SimpleQueue()
        self.results: queue.SimpleQueue[Result] = queue.SimpleQueue()
        self.stopping = threading.Event()
        # Daemon: a send stuck past every timeout must not keep the process
        # alive; its notice comes due again after the lease.
        self.thread = threading.Thread(target=self._run, name="notifier-send", daemon=True)
        self.thread.start()

    def submit(self, batch: list[Outgoing], deadline: float) -> None:
        """Send ``batch``; what is not started by ``deadline`` (monotonic)
        comes back untried."""
        self.inbox.put((batch, deadline))

    def take(self, wait_s: float) -> list[Result]:
        """Results so far, waiting up to ``wait_s`` for the first."""
        out: list[Result] = []
        try:
            out.append(self.results.get(timeout=wait_s) if wait_s > 0
                       else self.results.get_nowait())
            while True:
                out.append(self.results.get_nowait())
        except queue.Empty:
            return out

    def stop(self, wait_s: float) -> bool:
        """Finish the notice being sent (at most ``wait_s``); the rest of the
        batch comes back untried. True when the thread ended."""
        self.stopping.set()
        self.inbox.put(None)
        self.thread.join(wait_s)
        return not self.thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self.inbox.get()
            if item is None:
                return
            batch, deadline = item
            for notice in batch:
                if self.stopping.is_set() or time.monotonic() > deadline:
                    self.results.put(Result(notice, None, tried=False))
                    continue
                self.results.put(Result(notice, self._send(notice)))

    def _send(self, notice: Outgoing) -> DeliveryError | None:
        try:
            self.adapter.send(notice)
        except DeliveryError as exc:
            return exc
        except Exception as exc:  # a bug or a surprise: this notice's failure, retried
            self.log_error(f"adapter failed on notice {notice.id}: {exc!r}", notice)
            return DeliveryError(f"adapter failed: {exc!r}"[:300], permanent=False)
        return None


class Notifier:
    def __init__(self, rt: Runtime, adapter: Adapter | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        cfg = rt.config
        self.rt = rt
        self.clock = clock
        self.max_attempts = cfg.notice_max_attempts
        self.engine, self.sessions = open_store(cfg.db_url, busy_timeout_s=STORE_WAIT_S)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.pub = Publisher(self.ctx, cfg.bus_pub, origin="notifier", source=cfg.bus_source,
                             security=Security.of(cfg, "notifier"))
        self.sender = Sender(adapter or adapter_for(cfg), self._adapter_bug)
        self.in_flight: dict[int, Outgoing] = {}  # claimed, handed to the sender
        self.done: list[Result] = []  # outcomes not yet written to the store
        self.poll_at = 0.0  # monotonic
        self.retry_at = 0.0
        self.count: Counter[str] = Counter()  # sent, retried, dead, failures, store_failures
        self.pending = 0
        self.store_error = ""
        self.last_error = ""
        self.last_error_at = 0.0

    # ------------------------------------------------------------------ loop
    def run(self) -> None:
        next_beat = 0.0
        try:
            while not self.rt.should_stop():
                self.turn(self.sender.take(WAIT_S))
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + BEAT_S
                    self.beat()
        finally:
            self.close()

    def turn(self, results: list[Result]) -> None:
        """Write what came back; claim more once the sender is idle. Nothing
        raised here ends the loop."""
        for result in results:
            self.in_flight.pop(result.notice.id, None)
        self.done += results
        if time.monotonic() < self.retry_at:
            return
        try:
            if self.done:
                self.settle()
            if not self.in_flight and not self.done and time.monotonic() >= self.poll_at:
                self.claim()
        except OperationalError as exc:  # locked, full, gone: it will come back
            self.count["store_failures"] += 1
            self.store_error = str(exc.orig)
            self._error(f"store refused: {exc.orig}")
            self.retry_at = time.monotonic() + RETRY_S
        except Exception as exc:
            self.count["failures"] += 1
            self._error(f"turn failed: {exc!r}")
            self.rt.log.exception("turn failed; going on")
            self.retry_at = time.monotonic() + RETRY_S

    def claim(self) -> None:
        now = self.clock()
        with self.sessions() as session:
            rows = outbox.claim_due(session, now, BATCH)
            pairs = list(zip(outbox.outgoing(session, rows), rows, strict=True))
            live = [n for n, r in pairs if r.state == "pending"]
            statuses = [self._status(n, "dead", r.attempts, r.last_error)
                        for n, r in pairs if r.state == "dead"]  # consent withdrawn since
            session.commit()
        self.store_error = ""
        self.count["dead"] += len(statuses)
        self.poll_at = time.monotonic() + (0.0 if len(rows) >= BATCH else POLL_S)
        self._publish(statuses)
        if live:
            self.in_flight = {n.id: n for n in live}
            self.sender.submit(live, time.monotonic() + BATCH_BUDGET_S)

    def settle(self) -> None:
        """Write every outcome waiting, in one transaction, then tell the
        consoles. A refusal keeps what is not written for the next turn; an
        outcome the store rejects for itself is written alone, so it loses
        only itself (its notice comes due again after the lease)."""
        statuses: list[NoticeStatus] = []
        try:
            try:
                statuses = self._settle(self.done)
                self.done = []
            except OperationalError:
                raise
            except Exception:
                self.rt.log.exception("writing %d outcomes failed; one by one",
                                      len(self.done))
                while self.done:
                    try:
                        statuses += self._settle(self.done[:1])
                    except OperationalError:
                        raise
                    except Exception as exc:
                        self.count["failures"] += 1
                        self._error(f"cannot record notice {self.done[0].notice.id}: {exc!r}")
                    self.done.pop(0)
        finally:
            self._publish(statuses)  # what was committed, whatever came after

    def _settle(self, results: list[Result]) -> list[NoticeStatus]:
        now = self.clock()
        statuses: list[NoticeStatus] = []
        outcomes: Counter[str] = Counter()
        errors: list[str] = []
        with self.sessions() as session:
            rows = outbox.by_ids(session, (r.notice.id for r in results))
            outbox.release(session, (r.notice.id for r in results if not r.tried), now)
            for result in results:
                row = rows.get(result.notice.id)
                if row is None or not result.tried:
                    continue
                state: NoticeState
                if result.error is None:
                    outbox.mark_sent(row, now)
                    state = "sent"
                else:
                    state = outbox.mark_failed(row, result.error.message,
                                               result.error.permanent, now, self.max_attempts)
                    errors.append(f"notice {row.id} {state}: {result.error.message}")
                outcomes["retried" if state == "retrying" else state] += 1
                statuses.append(self._status(result.notice, state, row.attempts,
                                             "" if state == "sent" else row.last_error))
            session.commit()
        self.store_error = ""
        self.count.update(outcomes)
        for text in errors:
            self._error(text)
        return statuses

    def beat(self) -> None:
        try:
            with self.sessions() as session:
                self.pending = outbox.pending_count(session)
        except OperationalError as exc:
            self.store_error = str(exc.orig)
        except Exception:
            self.rt.log.exception("cannot count pending notices")
        self.pub.heartbeat(self.stats())

    def stats(self) -> dict[str, float]:
        """What the heartbeat carries (the error's words are in the log and
        on each ``notice.status``)."""
        return {"sent": self.count["sent"], "retried": self.count["retried"],
                "dead": self.count["dead"], "pending": self.pending,
                "in_flight": len(self.in_flight), "failures": self.count["failures"],
                "store_failures": self.count["store_failures"],
                "store_state": health.store_state(self.store_error),
                "last_error_at": self.last_error_at}

    def close(self) -> None:
        """Let the send in progress finish, write what came back (the rest of
        the batch is given back at once), close the sockets."""
        if not self.sender.stop(STOP_WAIT_S):
            self.rt.log.warning("a send did not finish; its notice is sent again later")
        results = self.sender.take(0)
        for result in results:
            self.in_flight.pop(result.notice.id, None)
        self.done += results
        try:
            if self.done:
                self.settle()
        except Exception as exc:
            self.rt.log.warning("%d outcomes not written (%s); those notices are sent "
                                "again", len(self.done), exc)
        self.pub.close()
        self.ctx.term()
        self.engine.dispose()
        self.rt.log.info("sent %d, retried %d, dead %d", self.count["sent"],
                         self.count["retried"], self.count["dead"])

    # --------------------------------------------------------------- helpers
    @staticmethod
    def _status(notice: Outgoing, state: NoticeState, attempts: int,
                error: str) -> NoticeStatus:
        return NoticeStatus(notice_id=notice.id, child_token=notice.child_token,
                            kind=notice.kind, zone=notice.zone, state=state,
                            attempts=attempts, error=error)

    def _publish(self, statuses: list[NoticeStatus]) -> None:
        for status in statuses:
            self.pub.send(status)

    def _error(self, text: str) -> None:
        self.last_error, self.last_error_at = text, time.time()
        self.rt.log.warning("%s", text)

    def _adapter_bug(self, text: str, _notice: Outgoing) -> None:
        self.rt.log.error("%s", text)


def main(argv: list[str] | None = None) -> int:
    rt = start("notifier", argv)
    Notifier(rt).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
