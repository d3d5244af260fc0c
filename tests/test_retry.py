"""Tests of downloader.retry: what is retried, how long to wait, and Retry-After."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from downloader.errors import (
    ChecksumMismatch,
    ConnectionFailed,
    HTTPStatusError,
    LocalFileError,
    RangeMismatch,
    ShortBody,
    TransferError,
)
from downloader.retry import RetryPolicy, RetryState, parse_retry_after

BACKOFF_CAP = 60.0  # docs/options.md: --retry-wait "capped at 60 s"
RETRY_AFTER_CAP = 300.0  # docs/reliability.md: Retry-After "capped at 300 s"


def jitter_low() -> float:
    return 0.0


def jitter_high() -> float:
    return 1.0


# --------------------------------------------------------------------------------------------
# RetryPolicy.backoff: exponential from wait, capped, equal jitter in [d/2, d]
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("wait", "retry_number", "nominal"),
    [
        (1.0, 1, 1.0),
        (1.0, 2, 2.0),
        (1.0, 3, 4.0),
        (1.0, 6, 32.0),
        (0.5, 4, 4.0),
        (2.0, 5, 32.0),
        (1.0, 7, BACKOFF_CAP),  # 64 s capped
        (1.0, 40, BACKOFF_CAP),
        (100.0, 1, BACKOFF_CAP),
        (0.0, 3, 0.0),
    ],
)
def test_backoff_is_exponential_capped_and_jittered(
    wait: float, retry_number: int, nominal: float
) -> None:
    policy = RetryPolicy(wait=wait)
    assert policy.backoff(retry_number, rand=jitter_high) == pytest.approx(nominal)
    assert policy.backoff(retry_number, rand=jitter_low) == pytest.approx(nominal / 2)
    assert policy.backoff(retry_number, rand=lambda: 0.5) == pytest.approx(nominal * 3 / 4)


@pytest.mark.parametrize("retry_number", range(1, 12))
def test_backoff_with_real_randomness_stays_in_the_jitter_window(retry_number: int) -> None:
    policy = RetryPolicy(wait=1.0)
    nominal = min(BACKOFF_CAP, 2 ** (retry_number - 1))
    for _ in range(50):
        assert nominal / 2 <= policy.backoff(retry_number) <= nominal


def test_policy_is_frozen() -> None:
    policy = RetryPolicy(retries=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.retries = 10  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# RetryState: increment returns a new value; exhausted; delay
# --------------------------------------------------------------------------------------------


def test_increment_returns_a_new_state_and_leaves_the_old_one() -> None:
    state = RetryState(policy=RetryPolicy(retries=2))
    error = ConnectionFailed("connection reset")
    after = state.increment(error)
    assert after is not state
    assert (state.attempts, state.error) == (0, None)
    assert (after.attempts, after.error) == (1, error)
    assert after.policy == state.policy
    second = after.increment(ShortBody("short"))
    assert second.attempts == 2
    assert after.attempts == 1


def test_state_is_frozen() -> None:
    state = RetryState(policy=RetryPolicy())
    with pytest.raises(dataclasses.FrozenInstanceError):
        state.attempts = 3  # type: ignore[misc]


def test_fresh_state_is_not_exhausted() -> None:
    assert not RetryState(policy=RetryPolicy(retries=0)).exhausted


@pytest.mark.parametrize("retries", [0, 1, 2, 5])
def test_exhausted_after_the_first_attempt_plus_retries(retries: int) -> None:
    """docs/options.md: --retries N is the number of retries *after* the first attempt."""
    state = RetryState(policy=RetryPolicy(retries=retries))
    attempts = 0
    while True:
        state = state.increment(ConnectionFailed("timed out"))
        attempts += 1
        if state.exhausted:
            break
        assert attempts <= retries + 1
    assert attempts == retries + 1


@pytest.mark.parametrize(
    "error",
    [
        HTTPStatusError(404),
        HTTPStatusError(403, "Forbidden"),
        LocalFileError("disk full"),
        TransferError("unknown"),
    ],
)
def test_exhausted_at_once_for_non_retryable_errors(error: TransferError) -> None:
    state = RetryState(policy=RetryPolicy(retries=5)).increment(error)
    assert state.exhausted


@pytest.mark.parametrize(
    "error",
    [
        ConnectionFailed("refused"),
        ShortBody("short body"),
        ChecksumMismatch("sha-256 mismatch"),
        HTTPStatusError(503),
        TransferError("flaky", retryable=True),
    ],
)
def test_retryable_errors_are_retried(error: TransferError) -> None:
    state = RetryState(policy=RetryPolicy(retries=5)).increment(error)
    assert not state.exhausted


def test_delay_grows_with_attempts() -> None:
    state = RetryState(policy=RetryPolicy(wait=1.0))
    delays = []
    for _ in range(4):
        state = state.increment(ConnectionFailed("reset"))
        delays.append(state.delay(rand=jitter_high))
    assert delays == pytest.approx([1.0, 2.0, 4.0, 8.0])


@pytest.mark.parametrize(
    ("retry_after", "expected"),
    [
        (0.0, 0.0),
        (7.0, 7.0),
        (120.0, 120.0),
        (RETRY_AFTER_CAP, RETRY_AFTER_CAP),
        (3600.0, RETRY_AFTER_CAP),
    ],
)
def test_delay_honours_retry_after_capped(retry_after: float, expected: float) -> None:
    state = RetryState(policy=RetryPolicy(wait=1.0)).increment(
        HTTPStatusError(503, retry_after=retry_after)
    )
    assert state.delay(rand=jitter_high) == pytest.approx(expected)
    assert state.delay(rand=jitter_low) == pytest.approx(expected)


def test_delay_without_retry_after_uses_backoff() -> None:
    state = RetryState(policy=RetryPolicy(wait=2.0)).increment(HTTPStatusError(502))
    assert state.delay(rand=jitter_high) == pytest.approx(2.0)
    assert state.delay(rand=jitter_low) == pytest.approx(1.0)


# --------------------------------------------------------------------------------------------
# Which HTTP statuses are retried (docs/reliability.md)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503, 504])
def test_retryable_statuses(status: int) -> None:
    error = HTTPStatusError(status)
    assert error.retryable
    assert str(status) in str(error)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 405, 410, 416, 501, 505])
def test_other_statuses_fail_at_once_with_the_status(status: int) -> None:
    error = HTTPStatusError(status, "Reason")
    assert not error.retryable
    assert str(status) in str(error)


# --------------------------------------------------------------------------------------------
# parse_retry_after
# --------------------------------------------------------------------------------------------

NOW = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", 0.0),
        ("1", 1.0),
        ("120", 120.0),
        (" 30 ", 30.0),
        ("86400", 86400.0),  # parsed as given; the cap is the policy's business
    ],
)
def test_parse_retry_after_seconds(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 08:28:00 GMT", 3600.0),
        ("Wednesday, 21-Oct-15 07:29:00 GMT", 60.0),  # RFC 850 form
        ("Wed Oct 21 07:28:10 2015", 10.0),  # asctime form, no zone: GMT
        ("Wed, 21 Oct 2015 09:28:05 +0200", 5.0),
    ],
)
def test_parse_retry_after_http_date(value: str, expected: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "value",
    ["Wed, 21 Oct 2015 07:27:59 GMT", "Thu, 01 Jan 1970 00:00:00 GMT"],
)
def test_parse_retry_after_past_date_is_zero(value: str) -> None:
    assert parse_retry_after(value, now=NOW) == 0.0


def test_parse_retry_after_date_uses_the_real_clock_by_default() -> None:
    future = datetime.now(UTC) + timedelta(hours=1)
    value = future.strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert 3500 <= (parse_retry_after(value) or 0) <= 3600


@pytest.mark.parametrize(
    "value",
    [None, "", "soon", "-5", "1.5", "12s", "0x10", "Wed, 99 Foo 2015 07:28:30 GMT"],
)
def test_parse_retry_after_garbage_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


@pytest.mark.parametrize("value", ["\u00b2", "1\u00b3"])
def test_parse_retry_after_non_ascii_digits_are_garbage(value: str) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_a_range_mismatch_restarts_at_once() -> None:
    state = RetryState(policy=RetryPolicy(retries=3, wait=10.0)).increment(RangeMismatch("x"))
    assert state.delay(rand=lambda: 1.0) == 0.0 and not state.exhausted
