"""The relay's tokens on their own: what the engine issues, the relay
accepts, and everything else it must refuse with the right reason."""

from __future__ import annotations

import base64
import secrets
from urllib.parse import quote

import pytest

from console.media import tokens
from console.media.tokens import BadToken

SECRET = secrets.token_bytes(32)
NOW = 1_750_000_000.0


def reason(token: object, scope: str = "view", now: float = NOW,
           secret: bytes = SECRET) -> str:
    with pytest.raises(BadToken) as caught:
        tokens.check(secret, token, scope, now)  # type: ignore[arg-type]
    if isinstance(token, str) and len(token) > 3:
        assert token not in str(caught.value)  # messages are logged: never the token
    return caught.value.reason


def test_round_trip_gives_the_subject_back() -> None:
    token = tokens.issue(SECRET, "operator1", "view", NOW + 3600)
    assert tokens.check(SECRET, token, "view", NOW) == "operator1"
    grant = tokens.grant(SECRET, token, "view", NOW + 3599)
    assert grant == tokens.Grant("operator1", "view", NOW + 3600)
    control = tokens.issue(SECRET, "engine", "control", NOW + 60)
    assert tokens.check(SECRET, control, "control", NOW) == "engine"


def test_a_token_is_compact_and_url_safe() -> None:
    token = tokens.issue(SECRET, "supervisor.kim-2", "view", NOW + 12 * 3600)
    assert quote(token, safe="") == token  # nothing to escape in ?t=
    assert len(token) < 100
    assert tokens.check(SECRET, token, "view", NOW) == "supervisor.kim-2"


def test_expiry_is_rounded_down_and_exclusive() -> None:
    token = tokens.issue(SECRET, "operator1", "view", NOW + 10.9)
    assert tokens.check(SECRET, token, "view", NOW + 9.99) == "operator1"
    assert reason(token, now=NOW + 10) == "expired"  # never later than asked
    assert reason(token, now=NOW + 10 ** 6) == "expired"


def test_scopes_do_not_stand_in_for_each_other() -> None:
    view = tokens.issue(SECRET, "operator1", "view", NOW + 60)
    control = tokens.issue(SECRET, "engine", "control", NOW + 60)
    assert reason(view, "control") == "scope"
    assert reason(control, "view") == "scope"


def test_another_secret_or_any_change_breaks_the_signature() -> None:
    token = tokens.issue(SECRET, "operator1", "view", NOW + 60)
    assert reason(token, secret=secrets.token_bytes(32)) == "signature"
    _, sig = token.split(".")
    # A payload that says more (another user, a later expiry, another scope)
    # with the old signature.
    for forged in ("2:view:9999999999::operator1", "2:view:1750000060::admin1",
                   "2:control:1750000060::operator1"):
        body = base64.urlsafe_b64encode(forged.encode()).rstrip(b"=").decode()
        assert reason(f"{body}.{sig}") == "signature"
    # One character changed anywhere.
    for i in range(0, len(token), 7):
        if token[i] == ".":
            continue
        flipped = token[:i] + ("A" if token[i] != "A" else "B") + token[i + 1:]
        assert reason(flipped) in ("signature", "malformed"), i


@pytest.mark.parametrize("garbage", [
    "", ".", "abc", "a.b.c", "not a token", "..", "%%%.%%%", "a" * 1000,
    "bm9uZQ.", ".c2ln", "YQ.YQ", "1:view:1:x", "\x00.\x00", "ü.ü",
])
def test_garbage_is_malformed(garbage: str) -> None:
    assert reason(garbage) == "malformed"


def test_non_strings_and_non_canonical_spellings_are_malformed() -> None:
    assert reason(None) == "malformed"
    assert reason(b"x.y") == "malformed"
    token = tokens.issue(SECRET, "operator1", "view", NOW + 60)
    assert reason(token + "=") == "malformed"  # padding is not ours
    payload, sig = token.split(".")
    # The signature's last character carries unused bits: another letter
    # that decodes to the same bytes is still not the token issued.
    last = sig[-1]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    twin = alphabet[alphabet.index(last) ^ 1]
    assert reason(f"{payload}.{sig[:-1]}{twin}") == "malformed"


def test_a_genuine_payload_of_the_wrong_shape_is_malformed() -> None:
    """Only the engine can sign; if it ever signed nonsense, the relay still
    refuses it instead of failing."""
    for payload in (b"2:view:9999999999:operator1", b"2:view:9999999999:ABC:operator1",
                    b"2:view:9999999999:0123456789abcdef0:operator1",
                    b"1:view:9999999999:operator1"):  # the first version had no session
        sig = base64.urlsafe_b64encode(tokens._sign(SECRET, payload)).rstrip(b"=").decode()
        body = base64.urlsafe_b64encode(payload).rstrip(b"=").decode()
        assert reason(f"{body}.{sig}") == "malformed", payload


def test_a_view_token_names_its_session_and_a_revocation_catches_only_that() -> None:
    sid = tokens.session_id("AB" * 32)
    assert sid == "ab" * 8
    token = tokens.issue(SECRET, "operator1", "view", NOW + 60, sid)
    grant = tokens.grant(SECRET, token, "view", NOW)
    assert grant == tokens.Grant("operator1", "view", NOW + 60, sid)
    other = tokens.grant(SECRET, tokens.issue(SECRET, "operator1", "view", NOW + 60,
                                              tokens.session_id("cd" * 32)), "view", NOW)
    engine = tokens.grant(SECRET, tokens.issue(SECRET, "engine", "control", NOW + 60),
                          "control", NOW)
    clock = [NOW]
    revoked = tokens.Revocations(clock=lambda: clock[0])
    assert not revoked.revoked(grant) and not revoked.revoked(None)
    assert revoked.replace({sid: NOW + 60, "ef" * 8: NOW - 1}) == 1  # the past is dropped
    assert revoked.revoked(grant) and len(revoked) == 1
    assert not revoked.revoked(other) and not revoked.revoked(engine)
    assert revoked.replace({}) == 0 and not revoked.revoked(grant)
    for bad in ("", "ab", "zz" * 32, "ab" * 7):
        with pytest.raises(ValueError):
            tokens.session_id(bad)
    for session in ("ab", "AB" * 8, "ab" * 8 + ":x", "ab" * 9):
        with pytest.raises(ValueError):
            tokens.issue(SECRET, "operator1", "view", NOW + 60, session)


@pytest.mark.parametrize(("subject", "scope", "expires_at"), [
    ("", "view", NOW), ("x" * 65, "view", NOW), ("line\nbreak", "view", NOW),
    ("operator1", "admin", NOW), ("operator1", "view", float("nan")),
    ("operator1", "view", float("inf")), ("operator1", "view", -1.0),
])
def test_issue_refuses_what_it_must_not_sign(subject: str, scope: str,
                                              expires_at: float) -> None:
    with pytest.raises(ValueError):
        tokens.issue(SECRET, subject, scope, expires_at)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError):
        tokens.issue(b"short", "operator1", "view", NOW)
    with pytest.raises(ValueError):
        tokens.check_secret(b"")
    assert tokens.check_secret(SECRET) is SECRET


def test_renewing_keeps_one_token_until_near_its_end() -> None:
    clock = [NOW]
    provider = tokens.renewing(SECRET, "engine", "control", ttl_s=3600, margin_s=300,
                               clock=lambda: clock[0])
    first = provider()
    assert tokens.check(SECRET, first, "control", NOW) == "engine"
    clock[0] = NOW + 3000  # 600 s left: kept
    assert provider() == first
    clock[0] = NOW + 3301  # under 300 s left: a new one, valid for an hour
    second = provider()
    assert second != first
    assert tokens.check(SECRET, second, "control", NOW + 3301 + 3500) == "engine"
    with pytest.raises(ValueError):
        tokens.renewing(SECRET, "engine", "control", ttl_s=60, margin_s=60)
