"""E-mail to guardians through an SMTP server (smtplib).

Why these choices:

- Every network step has a timeout, so a mail server that hangs costs the
  notifier seconds, never its loop.
- The Message-ID is derived from the notice (its id and key), so the copy
  a restart may send again (delivery is at least once) carries the same id
  and a mail system or a guardian's client can fold it.
- Failures are classified where the reason is known: a 5xx refusal of this
  message (recipient, sender, content) is permanent and dead-letters the
  notice; 4xx replies, refused connections, timeouts and dropped lines are
  transient. Trouble before the message is offered (greeting, STARTTLS,
  login) is the server's or the configuration's, not the notice's, so it
  is transient whatever its code: fixing the server must not leave a
  morning's notices dead.
"""

from __future__ import annotations

import hashlib
import smtplib
import socket
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import TYPE_CHECKING

from console.notify.adapters import DeliveryError
from models.notices import Outgoing, address_problem, smtp_code_is_permanent

if TYPE_CHECKING:
    from console.config import Config

SMTP_TIMEOUT_S = 10.0  # per network step (connect, each command)


class SmtpAdapter:
    channels: frozenset[str] = frozenset({"email"})

    def __init__(self, host: str, port: int, sender: str, *, user: str = "",
                 password: str = "", starttls: bool = False,
                 timeout_s: float = SMTP_TIMEOUT_S) -> None:
        self.host = host
        self.port = port
        self.sender = sender
        self.user = user
        self.password = password
        self.starttls = starttls
        self.timeout_s = timeout_s
        domain = parseaddr(sender)[1].rpartition("@")[2].strip()
        self.domain = domain or "childsafe.invalid"
        # smtplib would otherwise ask DNS for our name on every connection.
        self.helo_name = socket.gethostname() or "localhost"

    @classmethod
    def from_config(cls, config: Config) -> SmtpAdapter:
        return cls(config.smtp_host, config.smtp_port, config.smtp_from,
                   user=config.smtp_user, password=config.smtp_password,
                   starttls=config.smtp_starttls)

    def message_id(self, notice: Outgoing) -> str:
        """Stable per notice: the id, and a digest of its key so that ids
        from a rebuilt store never collide with old ones."""
        digest = hashlib.sha256(notice.key.encode("utf-8")).hexdigest()[:12]
        return f"<notice-{notice.id}-{digest}@{self.domain}>"

    def message(self, notice: Outgoing) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.sender
        msg["To"] = notice.address
        msg["Subject"] = notice.subject
        msg["Date"] = formatdate(time.time(), usegmt=True)
        msg["Message-ID"] = self.message_id(notice)
        msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies, please
        msg["Content-Language"] = "ko, en"
        msg.set_content(notice.body, charset="utf-8")
        return msg

    def send(self, notice: Outgoing) -> None:
        problem = address_problem("email", notice.address)
        if problem:
            raise DeliveryError(problem, permanent=True)
        msg = self.message(notice)
        smtp = smtplib.SMTP(local_hostname=self.helo_name, timeout=self.timeout_s)
        offered = False  # the message was offered: its refusals are about it
        try:
            smtp.connect(self.host, self.port)
            self._session(smtp)
            offered = True
            smtp.send_message(msg, from_addr=parseaddr(self.sender)[1] or self.sender,
                              to_addrs=[notice.address])
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()), (None, b""))
            raise _refused("recipient refused", code, text) from exc
        except smtplib.SMTPNotSupportedError as exc:  # no AUTH; no SMTPUTF8 for this address
            what = "cannot take this message" if offered else "refused the session"
            raise DeliveryError(f"server {what}: {exc}", permanent=offered) from exc
        except smtplib.SMTPResponseException as exc:
            if offered:
                raise _refused("refused", exc.smtp_code, exc.smtp_error) from exc
            raise DeliveryError(f"server refused the session: {exc.smtp_code} "
                                f"{_text(exc.smtp_error)}", permanent=False) from exc
        except smtplib.SMTPServerDisconnected as exc:
            raise DeliveryError(f"server hung up: {exc}", permanent=False) from exc
        except (OSError, smtplib.SMTPException) as exc:  # refused, timeout, TLS, DNS
            what = "timed out" if isinstance(exc, TimeoutError) else str(exc) or type(exc).__name__
            raise DeliveryError(f"cannot reach {self.host}:{self.port}: {what}",
                                permanent=False) from exc
        finally:
            _close(smtp, quit_first=offered)

    def _session(self, smtp: smtplib.SMTP) -> None:
        smtp.ehlo_or_helo_if_needed()
        if self.starttls:
            if not smtp.has_extn("starttls"):
                raise DeliveryError(f"{self.host}:{self.port} offers no STARTTLS",
                                    permanent=False)
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()
        if self.user:
            smtp.login(self.user, self.password)


def _text(raw: bytes | str) -> str:
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return " ".join(text.split())


def _refused(what: str, code: int | None, text: bytes | str) -> DeliveryError:
    return DeliveryError(f"{what}: {code} {_text(text)}".strip(),
                         permanent=smtp_code_is_permanent(code))


def _close(smtp: smtplib.SMTP, quit_first: bool) -> None:
    """QUIT politely when the session got that far; its answer no longer
    matters (the message was accepted or refused already)."""
    try:
        if quit_first:
            smtp.quit()
    except (OSError, smtplib.SMTPException):
        pass
    finally:
        smtp.close()
