"""Receivers steer delivery (SPEC §7) as tables: 410 deactivates, 429/503 with
Retry-After pause the webhook (clamped), nothing else steers."""

import pytest

from soapservice.steering import GONE_REASON, Steer, Steering, retry_after, steering

NOW = 1_767_225_600.0  # 2026-01-01 00:00:00 UTC


@pytest.mark.parametrize("header, expected", [
    ("3", NOW + 3), (" 120 ", NOW + 120), ("0", NOW),
    ("Thu, 01 Jan 2026 00:00:30 GMT", NOW + 30),
    ("Wed, 31 Dec 2025 23:00:00 GMT", NOW),     # in the past: now
    ("Thursday, 01-Jan-26 00:01:00 GMT", NOW + 60),  # the obsolete RFC 850 form too
    (None, None), ("", None), ("soon", None), ("-5", None), ("1.5", None),
    ("\u0663", None),                            # a non-ASCII digit
])
def test_retry_after_reads_seconds_and_http_dates(header, expected):
    assert retry_after(header, NOW) == expected


@pytest.mark.parametrize("status, header, max_sec, expected", [
    (410, None, 3600, Steering(Steer.GONE, reason=GONE_REASON)),
    (410, "3", 3600, Steering(Steer.GONE, reason=GONE_REASON)),
    (429, "3", 3600, Steering(Steer.PAUSE, until=NOW + 3)),
    (503, "Thu, 01 Jan 2026 00:00:30 GMT", 3600, Steering(Steer.PAUSE, until=NOW + 30)),
    (429, "86400", 3600, Steering(Steer.PAUSE, until=NOW + 3600)),  # clamped
    (503, "86400", 60, Steering(Steer.PAUSE, until=NOW + 60)),
    (429, None, 3600, Steering(Steer.NONE)),     # no Retry-After: a plain failure
    (503, "later", 3600, Steering(Steer.NONE)),
    (500, "3", 3600, Steering(Steer.NONE)),      # only 429 and 503 pause
    (404, None, 3600, Steering(Steer.NONE)),
    (200, "3", 3600, Steering(Steer.NONE)),
    (None, None, 3600, Steering(Steer.NONE)),    # no answer at all
])
def test_what_an_answer_asks_for(status, header, max_sec, expected):
    assert steering(status, header, NOW, max_sec) == expected
