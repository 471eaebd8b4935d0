"""The retention policy from the installation's settings, and its report."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from console.config import Config
from models.retention import DAY_S, PurgeReport, RetentionPolicy

GOOD = dict(fix_s=7 * DAY_S, usage_s=183 * DAY_S, access_s=730 * DAY_S, case_hold_s=90 * DAY_S)


def test_from_config_uses_the_settings_in_seconds(tmp_path: Path) -> None:
    policy = RetentionPolicy.from_config(Config(data_dir=tmp_path))
    assert (policy.fix_s, policy.usage_s, policy.access_s, policy.case_hold_s) == (
        7 * DAY_S, 183 * DAY_S, 730 * DAY_S, 90 * DAY_S)
    assert policy.case_lead_s == 1800.0
    assert policy.evidence_dir == tmp_path.resolve() / "evidence"
    assert policy.concerns() == []
    short = Config(data_dir=tmp_path, usage_keep_days=30, access_keep_days=90,
                   fix_retention_days=1.5)
    policy = RetentionPolicy.from_config(short)
    assert policy.fix_s == 1.5 * DAY_S
    assert [c.split(",")[0] for c in policy.concerns()] == [
        "the location-usage log is kept 30 days", "the access log is kept 90 days",
        "the bus tape keeps raw positions 7 days"]


@pytest.mark.parametrize("field, value", [
    ("fix_s", 0.0), ("usage_s", -1.0), ("access_s", math.nan), ("case_hold_s", math.inf),
    ("fix_s", "7"), ("case_lead_s", -1.0)])
def test_a_policy_that_would_delete_everything_is_refused(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        RetentionPolicy(**{**GOOD, field: value})  # type: ignore[arg-type]


def test_a_case_lead_of_zero_is_allowed() -> None:
    assert RetentionPolicy(**GOOD, case_lead_s=0.0).case_lead_s == 0.0  # type: ignore[arg-type]


def test_the_report_counts_and_says_what_went() -> None:
    assert PurgeReport().removed == 0
    report = PurgeReport(fixes=1200, events=30, access=4, evidence=1, evidence_files=2)
    assert report.removed == 1235
    assert report.detail() == ("fixes 1200, events 30, access 4, usage 0, evidence 1 "
                               "(2 files)")
    odd = PurgeReport(evidence=1, files_left=1, usage_error="usage log not purged: x")
    assert odd.detail().endswith("; 1 files outside the evidence folder left on disk; "
                                 "usage log not purged: x")
