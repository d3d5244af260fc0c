"""Tests of downloader.options: the value parsers behind the flags and the frozen Options."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest

from downloader import __version__
from downloader.errors import UsageError
from downloader.options import (
    Checksum,
    OnExist,
    Options,
    parse_checksum,
    parse_header,
    parse_rate,
    parse_size,
)

KIB = 1024
MIB = 1024**2
GIB = 1024**3

# --------------------------------------------------------------------------------------------
# parse_size / parse_rate: K, M, G are powers of 1024 (docs/options.md: K=1024)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("1", 1),
        ("123456", 123456),
        ("1K", KIB),
        ("1k", KIB),
        ("500K", 500 * KIB),
        ("32M", 32 * MIB),
        ("10m", 10 * MIB),
        ("1G", GIB),
        ("2T", 2 * 1024**4),
        ("1.5K", 1536),
        (" 32M ", 32 * MIB),
        ("32MiB", 32 * MIB),
        ("32MB", 32 * MIB),
    ],
)
def test_parse_size_accepts(text: str, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", " ", "M", "abc", "-1", "-1K", "1X", "1 2", "1e3", "10KK", "1.2.3", "0x10"],
)
def test_parse_size_rejects_with_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        parse_size(text)


def test_parse_size_absurdly_long_number_is_a_usage_error() -> None:
    with pytest.raises(UsageError):
        parse_size("9" * 400)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", 1),
        ("500K", 500 * KIB),
        ("500k", 500 * KIB),
        ("10M", 10 * MIB),
        ("1G", GIB),
        ("500K/s", 500 * KIB),
    ],
)
def test_parse_rate_accepts(text: str, expected: int) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize("text", ["0", "0K", "0.1", "", "fast", "-5K", "10M/min"])
def test_parse_rate_rejects_zero_and_garbage(text: str) -> None:
    with pytest.raises(UsageError):
        parse_rate(text)


# --------------------------------------------------------------------------------------------
# parse_header: -H 'Name: value'
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("X-Token: abc", ("X-Token", "abc")),
        ("Accept:text/plain", ("Accept", "text/plain")),
        ("  Authorization:   Bearer a:b:c  ", ("Authorization", "Bearer a:b:c")),
        ("X-Odd_chars.1~: v", ("X-Odd_chars.1~", "v")),
    ],
)
def test_parse_header_accepts(text: str, expected: tuple[str, str]) -> None:
    assert parse_header(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "no colon here",
        "",
        ": value without a name",
        "Bad Name: v",
        "Bad(name): v",
        "Bad\tName: v",
        "X-Evil: a\r\nHost: attacker",
        "X-Evil: a\nHost: attacker",
        "X-Evil: a\rb",
        "X-Nul: a\0b",
        "Ünïcode: v",
    ],
)
def test_parse_header_rejects_bad_names_and_injection(text: str) -> None:
    with pytest.raises(UsageError):
        parse_header(text)


# --------------------------------------------------------------------------------------------
# parse_checksum: ALGO=HEX with ALGO one of sha-256, sha-512, sha-1, md5
# --------------------------------------------------------------------------------------------

DIGESTS = {
    "sha-256": hashlib.sha256(b"pdl").hexdigest(),
    "sha-512": hashlib.sha512(b"pdl").hexdigest(),
    "sha-1": hashlib.sha1(b"pdl").hexdigest(),
    "md5": hashlib.md5(b"pdl").hexdigest(),
}


@pytest.mark.parametrize("algorithm", sorted(DIGESTS))
def test_parse_checksum_each_algorithm(algorithm: str) -> None:
    checksum = parse_checksum(f"{algorithm}={DIGESTS[algorithm]}")
    assert checksum == Checksum(algorithm, DIGESTS[algorithm])
    hasher = checksum.new_hasher()
    hasher.update(b"pdl")
    assert hasher.hexdigest() == DIGESTS[algorithm]


@pytest.mark.parametrize("algorithm", sorted(DIGESTS))
def test_parse_checksum_is_case_insensitive(algorithm: str) -> None:
    checksum = parse_checksum(f"{algorithm.upper()}={DIGESTS[algorithm].upper()}")
    assert checksum.algorithm == algorithm
    assert checksum.hexdigest == DIGESTS[algorithm]


def test_checksum_str_is_the_list_form() -> None:
    text = f"sha-256={DIGESTS['sha-256']}"
    assert str(parse_checksum(text)) == text


@pytest.mark.parametrize(
    "text",
    [
        f"sha-256={DIGESTS['sha-256'][:-1]}",  # one digit short
        f"sha-256={DIGESTS['sha-256']}0",  # one digit long
        f"sha-256={DIGESTS['md5']}",  # md5 length under the sha-256 name
        f"md5={DIGESTS['sha-1']}",
        f"sha-1={DIGESTS['sha-1'][:-1]}g",  # not hex
        f"sha-512={DIGESTS['sha-256']}",
        f"sha256={DIGESTS['sha-256']}",  # hashlib spelling, not the list's
        f"crc32={DIGESTS['md5']}",
        f"blake2b={DIGESTS['sha-512']}",
        DIGESTS["sha-256"],  # no algorithm
        "sha-256=",
        "sha-256",
        "",
    ],
)
def test_parse_checksum_rejects(text: str) -> None:
    with pytest.raises(UsageError):
        parse_checksum(text)


# --------------------------------------------------------------------------------------------
# Options: validated once, frozen
# --------------------------------------------------------------------------------------------


def test_options_defaults_follow_the_spec_table() -> None:
    options = Options()
    assert options.dest == Path()
    assert options.jobs == 8
    assert options.retries == 5
    assert options.retry_wait == 1.0
    assert options.timeout == 30
    assert options.on_exist is OnExist.SKIP
    assert options.resume is True
    assert options.content_disposition is False
    assert options.user_agent == f"pdl/{__version__}"
    assert options.headers == ()
    assert (options.insecure, options.ca_bundle) == (False, None)
    assert (options.limit_rate, options.per_host, options.split) == (None, None, 1)
    assert options.split_min_size == 32 * 1024 * 1024


@pytest.mark.parametrize("jobs", [1, 2, 8, 255, 256])
def test_options_jobs_in_range(jobs: int) -> None:
    assert Options(jobs=jobs).jobs == jobs


@pytest.mark.parametrize("jobs", [0, -1, 1025, 10_000])
def test_options_jobs_out_of_range(jobs: int) -> None:
    with pytest.raises(UsageError):
        Options(jobs=jobs)


def test_options_zero_retries_allowed() -> None:
    assert Options(retries=0).retries == 0


def test_options_negative_retries_rejected() -> None:
    with pytest.raises(UsageError):
        Options(retries=-1)


@pytest.mark.parametrize("retry_wait", [-0.5, float("nan"), float("inf")])
def test_options_bad_retry_wait_rejected(retry_wait: float) -> None:
    with pytest.raises(UsageError):
        Options(retry_wait=retry_wait)


@pytest.mark.parametrize("timeout", [0, 0.0, -1.0, float("nan"), float("inf")])
def test_options_bad_timeout_rejected(timeout: float) -> None:
    with pytest.raises(UsageError):
        Options(timeout=timeout)


def test_options_small_positive_timeout_allowed() -> None:
    assert Options(timeout=0.5).timeout == 0.5


def test_options_insecure_and_ca_bundle_are_exclusive(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        Options(insecure=True, ca_bundle=tmp_path / "ca.pem")


@pytest.mark.parametrize(
    "bad",
    [
        {"limit_rate": 0},
        {"limit_rate": -5},
        {"per_host": 0},
        {"per_host": 1025},
        {"split": 0},
        {"split": 17},
        {"split_min_size": -1},
    ],
)
def test_options_reject_bad_speed_settings(bad: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        Options(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("skip", OnExist.SKIP),
        ("overwrite", OnExist.OVERWRITE),
        ("rename", OnExist.RENAME),
        (OnExist.RENAME, OnExist.RENAME),
    ],
)
def test_options_on_exist_strings_become_the_enum(text: str, expected: OnExist) -> None:
    on_exist = Options(on_exist=text).on_exist  # type: ignore[arg-type]
    assert on_exist is expected


@pytest.mark.parametrize("text", ["", "SKIP-IT", "replace", "unique", "ask"])
def test_options_bad_on_exist_is_a_usage_error(text: str) -> None:
    with pytest.raises(UsageError):
        Options(on_exist=text)  # type: ignore[arg-type]


def test_options_is_frozen() -> None:
    options = Options()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.jobs = 64  # type: ignore[misc]
    assert options.jobs == 8


def test_options_replace_validates_again() -> None:
    options = Options(jobs=4)
    assert dataclasses.replace(options, jobs=16).jobs == 16
    with pytest.raises(UsageError):
        dataclasses.replace(options, jobs=0)


@pytest.mark.parametrize("user_agent", ["pdl\r\nX-Evil: 1", "pdl\nX-Evil: 1", "pdl\0"])
def test_options_user_agent_with_line_breaks_is_a_usage_error(user_agent: str) -> None:
    with pytest.raises(UsageError):
        Options(user_agent=user_agent)


@pytest.mark.parametrize(
    "header", [("X-Evil", "a\r\nHost: attacker"), ("Bad Name", "v"), ("", "v")]
)
def test_options_header_tuples_are_validated_like_parse_header(header: tuple[str, str]) -> None:
    with pytest.raises(UsageError):
        Options(headers=(header,))


def test_size_units_say_they_are_powers_of_1024() -> None:
    """``2MB`` is taken deliberately as 2 MiB (docs/options.md: K=1024); a bad size says so."""
    assert parse_size("2MB") == parse_size("2MiB") == parse_size("2M") == 2 * MIB
    with pytest.raises(UsageError, match="powers of 1024"):
        parse_rate("2 megabytes")
