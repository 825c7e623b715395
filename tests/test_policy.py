"""The delivery policy as tables: no I/O."""

import pytest

from soapservice import policy
from soapservice.policy import Admission

SCHEDULE = (10.0, 60.0, 300.0)


@pytest.mark.parametrize("failed, rand, expected", [
    (1, 0.5, 10.0), (2, 0.5, 60.0), (3, 0.5, 300.0),
    (1, 0.0, 9.0), (1, 0.999999, 11.0), (3, 0.0, 270.0),
])
def test_retry_delay_follows_schedule_with_bounded_jitter(failed, rand, expected):
    assert policy.retry_delay(failed, SCHEDULE, lambda: rand) == pytest.approx(expected, abs=1e-3)


QUICK = policy.QUICK_RETRY_SEC
DOWN = policy.PROBE_AFTER_FAILURES


@pytest.mark.parametrize("failed, failure_count, rand, expected", [
    # an isolated failure (the receiver does not look down): the quick retries
    (1, 1, 0.5, QUICK[0]), (2, 2, 0.5, QUICK[1]), (3, 1, 0.5, QUICK[2]),
    (1, 1, 0.0, QUICK[0] * 0.5), (1, 1, 0.999999, QUICK[0] * 1.5),
    # past the quick retries: the schedule
    (len(QUICK) + 1, 1, 0.5, 7200.0),
    # the receiver looks down (the run is complete with this failure): the schedule
    (1, DOWN, 0.5, 10.0), (2, DOWN + 7, 0.5, 60.0), (1, DOWN, 0.0, 9.0),
    # never later than the schedule: a short schedule stays as it is
    (1, 1, 0.5, 0.2),
    # unknown run: the schedule
    (1, None, 0.5, 10.0),
])
def test_retry_delay_quick_for_an_isolated_failure(failed, failure_count, rand, expected):
    schedule = (0.2,) if expected == 0.2 else (10.0, 60.0, 300.0, 1800.0, 3600.0, 7200.0)
    assert policy.retry_delay(failed, schedule, lambda: rand, failure_count) == \
        pytest.approx(expected, abs=1e-3)


def test_quick_retries_keep_about_a_day_of_schedule_for_a_receiver_that_stays_down():
    """The default schedule less what the quick retries can replace: still most of a
    day before a delivery that keeps failing deactivates its webhook."""
    from soapservice.config import DEFAULT_RETRY_SCHEDULE_SEC as schedule
    shortest = sum(min(q, s) for q, s in zip(QUICK, schedule, strict=False)) + sum(
        schedule[len(QUICK):])
    assert shortest >= 0.85 * sum(schedule)


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


@pytest.mark.parametrize("fronts, in_flight, capacity, per_webhook, expected", [
    # round-robin: one each per round, the longest-waiting webhook first
    ([(1, False), (2, False), (3, False)], {}, 5, 8, {1: 2, 2: 2, 3: 1}),
    # a webhook at its limit (a hanging receiver) takes nothing and hides nobody
    ([(1, False), (2, False)], {1: 8}, 4, 8, {2: 4}),
    ([(h, False) for h in range(1, 51)] + [(99, False)], {h: 8 for h in range(1, 51)},
     10, 8, {99: 8}),
    # free slots only: 3 running of 8 leaves 5
    ([(1, False)], {1: 3}, 100, 8, {1: 5}),
    # capacity below the number of webhooks: one each, oldest first
    ([(1, False), (2, False), (3, False)], {}, 2, 8, {1: 1, 2: 1}),
    # probing: one request at a time, none while its probe runs
    ([(1, True), (2, False)], {}, 10, 8, {1: 1, 2: 8}),
    ([(1, True), (2, False)], {1: 1}, 10, 8, {2: 8}),
    ([], {}, 10, 8, {}),
    ([(1, False)], {}, 0, 8, {}),
])
def test_fair_share(fronts, in_flight, capacity, per_webhook, expected):
    assert policy.fair_share(fronts, in_flight, capacity, per_webhook) == expected


@pytest.mark.parametrize("demands, total, idle, expected", [
    ([8] * 60, 256, 0, 4),             # 60 webhooks at 8 each do not fit 256: 4 each
    ([8] * 20, 256, 0, 8),             # they fit: no cap
    ([4] * 50 + [8] * 10, 256, 0, 5),  # 50 hold 4 (hanging), the rest split what is left
    ([1] * 100 + [8] * 2, 110, 0, 5),  # the small demands fit whole, the big split 10
    ([8] * 10, 256, 50, 4),            # 50 more waiting (active, nothing due this instant)
    ([8], 4, 10, 0),                   # fewer slots than contenders
    ([], 256, 0, 256),
])
def test_share_of_is_max_min_fair(demands, total, idle, expected):
    assert policy.share_of(demands, total, idle, 8) == expected


def test_a_webhook_limit_shrinks_to_its_share_of_the_process_limit_while_others_wait():
    """50 webhooks whose receivers hang and 10 healthy ones, 8 per webhook, 256 in
    all: none may take more than 4 (60 x 4 <= 256), so however long the 50 hang, the
    10 keep room; the healthy ones count as waiting even when, this instant, nothing of
    theirs is due (``active``)."""
    hanging, healthy = list(range(1, 51)), list(range(100, 110))
    limits = policy.Limits(8, 256, frozenset(hanging + healthy))
    fronts = [(h, False) for h in hanging]
    first = policy.fair_share(fronts, {}, 256, limits)
    assert first == {h: 4 for h in hanging}
    held = {h: 4 for h in hanging}
    assert policy.fair_share(fronts, held, 56, limits) == {}  # none takes a fifth
    later = policy.fair_share(fronts + [(h, False) for h in healthy], held, 56, limits)
    assert later == {h: 4 for h in healthy}
    # once the loop sees them hang (limit 1 each), they want no more than they hold:
    # the healthy ones split the rest, (256 - 200) // 10
    learned = policy.Limits(8, 256, limits.active, {h: 1 for h in hanging})
    later = policy.fair_share(fronts + [(h, False) for h in healthy], held, 56, learned)
    assert later == {h: 5 for h in healthy}
    # without the process limit (or when all fit) the per-webhook limit alone counts
    assert policy.fair_share(fronts, {}, 1000, 8) == {h: 8 for h in hanging}
    few = policy.Limits(8, 256, frozenset(range(1, 11)))
    assert policy.fair_share([(h, False) for h in range(1, 11)], {}, 256, few) == {
        h: 8 for h in range(1, 11)}


def test_fair_share_honours_learned_limits_and_probing():
    limits = policy.Limits(8, 256, frozenset(), {1: 1, 2: 3})
    fronts = [(1, False), (2, False), (3, False), (4, True)]
    assert policy.fair_share(fronts, {1: 1}, 100, limits) == {2: 3, 3: 8, 4: 1}


@pytest.mark.parametrize("previous, timed_out, expected", [
    (8, True, 4), (4, True, 2), (1, True, 1), (1, False, 2), (7, False, 8), (8, False, 8)])
def test_limit_after_answer_halves_at_a_timeout_and_grows_by_one(previous, timed_out,
                                                                 expected):
    assert policy.limit_after_answer(previous, 8, timed_out) == expected


def test_a_request_unanswered_past_its_receivers_usual_time_makes_its_webhook_hanging():
    now = 1000.0
    limits = policy.learned_limits(
        {5: 2},
        {1: now - 1.5, 2: now - 0.5, 3: now - 3.0, 4: now - 9.0},
        {3: 1.0, 4: 2.0}, now)
    # 1: 1.5 s unanswered (usual unknown: 1 s); 2: 0.5 s is not long; 3: usually 1 s,
    # so 4 s is long, 3 s not yet; 4: usually 2 s, 9 s is long; 5: learned from timeouts
    assert limits == {1: 1, 4: 1, 5: 2}
    assert policy.stale_after(None) == policy.STALE_SEC
    assert policy.stale_after(0.01) == policy.STALE_SEC
    assert policy.stale_after(2.0) == 2.0 * policy.STALE_FACTOR


@pytest.mark.parametrize("failure_count, probing", [
    (0, False), (1, False), (policy.PROBE_AFTER_FAILURES - 1, False),
    (policy.PROBE_AFTER_FAILURES, True), (100, True)])
def test_probing_only_after_a_run_of_failures(failure_count, probing):
    assert policy.probing(failure_count) is probing


@pytest.mark.parametrize("rate", [0.1, 0.3])
def test_a_receiver_failing_now_and_then_at_random_rarely_looks_down(rate):
    """A run of PROBE_AFTER_FAILURES (10) failures at 10 % random failures happens about
    once in 10^10 attempts, at 30 % once in 240,000: such a receiver keeps its full load
    (and its failures get the quick retries)."""
    import random
    rng = random.Random(7)
    count, trips = 0, 0
    for _ in range(100_000):
        count = policy.failure_count_after(count, rng.random() >= rate)
        trips += count == policy.PROBE_AFTER_FAILURES
    assert trips <= 2


def test_while_the_total_is_shared_a_receiver_not_heard_from_gets_one_at_a_time():
    """60 webhooks at 8 do not fit 256: the 50 whose receivers have not answered lately
    get one request each until they do; the 10 that answered share the rest (all 8)."""
    fronts = [(h, False) for h in range(1, 61)]
    limits = policy.Limits(8, 256, frozenset(), {}, frozenset(range(51, 61)))
    assert policy.fair_share(fronts, {}, 256, limits) == {
        **{h: 1 for h in range(1, 51)}, **{h: 8 for h in range(51, 61)}}
    # when all fit at their limit, nobody waits for a slot: no slow start
    assert policy.fair_share(fronts[:10], {}, 256, limits) == {h: 8 for h in range(1, 11)}


def test_receivers_not_heard_from_leave_a_reserve_however_many_hang():
    """300 webhooks whose receivers never answered (one request each would take all
    256 slots) beside 10 that answer: the 300 hold at most 256 - 256/8 = 224, so the
    10 always find room."""
    hanging, healthy = list(range(1, 301)), list(range(1000, 1010))
    limits = policy.Limits(8, 256, frozenset(), {}, frozenset(healthy))
    fronts = [(h, False) for h in hanging]
    first = policy.fair_share(fronts, {}, 256, limits)
    assert sum(first.values()) == 224 and set(first.values()) == {1}
    held = dict.fromkeys(first, 1)
    assert policy.fair_share(fronts, held, 32, limits) == {}
    later = policy.fair_share(fronts + [(h, False) for h in healthy], held, 32, limits)
    assert later == dict.fromkeys(healthy, 1)  # their share: 310 webhooks want 256 slots
