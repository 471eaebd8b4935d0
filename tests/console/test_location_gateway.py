"""Service 5 through the running gateway: a guardian's token on the feeds
port locates their own child (from the fix the recorder stored), nobody
else's; a wrong token is a 401, the limit a 429; every answer is recorded."""

from __future__ import annotations

import http.client
import json

from sqlalchemy import func, select

from db import consent as db_consent
from db import guardian_tokens
from db.store import open_store
from db.tables import Child, LocationCheck, UsageRecord
from tests.console.conftest import Backend, wait_for

SINDORIM = (37.5085, 126.8875)


def get(b: Backend, token: str, query: str = "") -> tuple[int, dict[str, str], object]:
    conn = http.client.HTTPConnection("127.0.0.1", b.config.feeds_port, timeout=5)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", "/v1/location" + query, headers=headers)
        resp = conn.getresponse()
        body = resp.read().decode()
        return resp.status, dict(resp.getheaders()), json.loads(body) if body else None
    finally:
        conn.close()


def test_a_guardian_locates_their_own_child_only(backend: Backend) -> None:
    mine, theirs = backend.roster[0], backend.roster[1]
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            guardian = db_consent.guardians(s, mine.token)[0]
            token = guardian_tokens.issue(s, guardian.id)
            s.commit()
        assert backend.fix(mine.device_id, *SINDORIM)[0] == 200

        def answered() -> bool:
            status, _, body = get(backend, token)
            return status == 200 and any(c["outcome"] == "answered" for c in body["children"])

        wait_for(answered, 10, "the stored fix answered")
        status, _, body = get(backend, token, f"?child={mine.token}")
        child = body["children"][0]
        assert status == 200 and child["child"] == mine.token
        assert child["place"].startswith("구로구") and child["fix_age_s"] >= 0
        # someone else's child: answered like an unknown one, nothing about them
        status, _, body = get(backend, token, f"?child={theirs.token}")
        assert status == 404 and theirs.token not in json.dumps(body)
        assert get(backend, "not-a-token")[0] == 401
        assert get(backend, "")[0] == 401
        # the limit (6 a minute): answered checks count
        codes = [get(backend, token)[0] for _ in range(8)]
        assert 429 in codes
        status, headers, _ = get(backend, token)
        assert status == 429 and int(headers["Retry-After"]) > 0
        with sessions() as s:
            answers = s.scalar(select(func.count()).select_from(LocationCheck).where(
                LocationCheck.guardian_id == guardian.id, LocationCheck.outcome == "answered"))
            # every check of the child is one use, answered or not (the polls
            # above may have come before the recorder stored the fix: no_fix)
            mine_id = s.scalar(select(Child.id).where(Child.token == mine.token))
            checks = s.scalar(select(func.count()).select_from(LocationCheck).where(
                LocationCheck.guardian_id == guardian.id, LocationCheck.child_id == mine_id))
            used = s.scalar(select(func.count()).select_from(UsageRecord).where(
                UsageRecord.action == "location_check", UsageRecord.subject == mine.token))
        assert answers >= 3 and used == checks >= answers
    finally:
        engine.dispose()
