"""The delivery policy as tables: no I/O."""

import pytest

from soapservice import policy
from soapservice.policy import Admission, Candidate

SCHEDULE = (10.0, 60.0, 300.0)


@pytest.mark.parametrize("failed, rand, expected", [
    (1, 0.5, 10.0), (2, 0.5, 60.0), (3, 0.5, 300.0),
    (1, 0.0, 9.0), (1, 0.999999, 11.0), (3, 0.0, 270.0),
])
def test_retry_delay_follows_schedule_with_bounded_jitter(failed, rand, expected):
    assert policy.retry_delay(failed, SCHEDULE, lambda: rand) == pytest.approx(expected, abs=1e-3)


@pytest.mark.parametrize("failed, exhausted", [(1, False), (3, False), (4, True), (9, True)])
def test_deactivation_after_the_whole_schedule(failed, exhausted):
    assert policy.schedule_exhausted(failed, SCHEDULE) is exhausted


@pytest.mark.parametrize("status, success", [
    (200, True), (204, True), (299, True), (199, False), (301, False), (302, False),
    (404, False), (410, False), (500, False), (503, False), (None, False),
])
def test_only_2xx_is_success(status, success):
    assert policy.is_success(status) is success


def test_redirect_failure_says_redirects_are_not_followed():
    assert "redirect" in policy.describe_failure(302, None)
    assert policy.describe_failure(None, "connection refused") == "connection refused"
    assert policy.describe_failure(503, None) == "HTTP 503"


@pytest.mark.parametrize("previous, success, expected", [
    (0, True, 0), (5, True, 0), (0, False, 1), (6, False, 7)])
def test_failure_count_is_consecutive_failures(previous, success, expected):
    assert policy.failure_count_after(previous, success) == expected


DAY = 86400.0


@pytest.mark.parametrize("active, deactivated_at, now, expected", [
    (True, None, 100.0, Admission.DUE),
    (False, 0.0, 4.9 * DAY, Admission.BUFFER),
    (False, 0.0, 5 * DAY, Admission.BUFFER),
    (False, 0.0, 5 * DAY + 1, Admission.DROP),
    (False, None, 1.0, Admission.DROP),
])
def test_buffer_window(active, deactivated_at, now, expected):
    assert policy.admit(active, deactivated_at, now, 5 * DAY) is expected


@pytest.mark.parametrize("data, subscriber", [
    ({"subscriber_id": 6049065}, "6049065"), ({"subscriber_id": "a-1"}, "a-1"),
    ({}, None), ({"subscriber_id": None}, None), ({"subscriber_id": {"x": 1}}, None),
    ({"subscriber_id": True}, None),
])
def test_subscriber_of(data, subscriber):
    assert policy.subscriber_of(data) == subscriber


def test_order_key_groups_account_url_and_subscriber():
    key = policy.order_key(1, "http://a/", "7")
    assert key == policy.order_key(1, "http://a/", "7")
    assert key != policy.order_key(2, "http://a/", "7")
    assert key != policy.order_key(1, "http://b/", "7")
    assert key != policy.order_key(1, "http://a/", "8")
    assert policy.order_key(1, "http://a/", None) is None


def cands(*specs):
    return [Candidate(i, hook, attempts, failing) for i, (hook, attempts, failing)
            in enumerate(specs, 1)]


def test_choose_limits_per_webhook_and_capacity():
    many = cands(*[(1, 0, False)] * 5, *[(2, 0, False)] * 5)
    chosen = policy.choose(many, {1: 1}, capacity=10, per_webhook=3)
    assert [c.webhook_id for c in chosen] == [1, 1, 2, 2, 2]
    assert len(policy.choose(many, {}, capacity=4, per_webhook=8)) == 4


def test_failing_webhook_gets_one_probe_for_a_failed_delivery_only():
    mixed = cands((1, 0, True), (1, 2, True), (1, 3, True), (2, 0, False))
    chosen = policy.choose(mixed, {}, capacity=10, per_webhook=8)
    assert [(c.webhook_id, c.attempts) for c in chosen] == [(1, 2), (2, 0)]
    # A probe already in flight: nothing more for that webhook.
    assert [c.webhook_id for c in policy.choose(mixed, {1: 1}, 10, 8)] == [2]
