"""Tests of downloader.results: redaction, the JSON object, the Tally, Report and summary."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from downloader.naming import RelPath
from downloader.options import OnExist, Options
from downloader.results import (
    FIRST_FAILURES,
    SCREENFUL,
    Counts,
    HashSet64,
    Report,
    Result,
    Status,
    Tally,
    failure_text,
    headline,
    redact,
    redact_text,
    rerun_command,
    shown_url,
    summary_lines,
)
from tests.conftest import JSON_KEYS

SECRET_URL = "https://alice:s3cret@example.org/private/a.iso"


def ok(url: str = "https://example.org/a.iso", **kw: object) -> Result:
    return Result(url=url, source="urls.txt:1", status=Status.OK, **kw)  # type: ignore[arg-type]


def skipped(url: str = "https://example.org/s.iso") -> Result:
    return Result(url=url, source="urls.txt:2", status=Status.SKIPPED, path="s.iso")


def failed(url: str = "https://example.org/f.iso", error: str = "HTTP 404 Not Found") -> Result:
    return Result(url=url, source="urls.txt:3", status=Status.FAILED, error=error, attempts=1)


# --------------------------------------------------------------------------------------------
# redact / redact_text
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://user:pass@example.org/", "https://***@example.org/"),
        ("https://user:pass@example.org/a.iso?x=1#f", "https://***@example.org/a.iso?x=1#f"),
        ("http://user@example.org:8080/a", "http://***@example.org:8080/a"),
        ("https://u:p%40ss@example.org/a", "https://***@example.org/a"),
        ("https://u:p@ss@example.org/a", "https://***@example.org/a"),
        ("https://:token@example.org/", "https://***@example.org/"),
    ],
)
def test_redact_hides_credentials(url: str, expected: str) -> None:
    assert redact(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/",
        "https://example.org/a.iso?user=me&pass=x",
        "https://example.org/mail/to@someone",
        "http://127.0.0.1:8080/a?b=c@d",
        "https://[::1]:8443/x",
        "not a url",
        "",
    ],
)
def test_redact_leaves_urls_without_credentials_alone(url: str) -> None:
    assert redact(url) == url


def test_redact_text_hides_the_url_and_bare_userinfo() -> None:
    text = f"GET {SECRET_URL} failed; retried with alice:s3cret@example.org"
    redacted = redact_text(text, SECRET_URL)
    assert "s3cret" not in redacted
    assert "alice" not in redacted
    assert "https://***@example.org/private/a.iso" in redacted


def test_redact_text_without_credentials_is_unchanged() -> None:
    text = "HTTP 500 from https://example.org/a.iso"
    assert redact_text(text, "https://example.org/a.iso") == text


# --------------------------------------------------------------------------------------------
# Result.to_json
# --------------------------------------------------------------------------------------------


def test_to_json_has_exactly_the_spec_keys() -> None:
    obj = ok(path="a.iso", bytes=10, elapsed=0.5, attempts=2, http_status=200).to_json()
    assert set(obj) == JSON_KEYS


def test_to_json_values() -> None:
    result = Result(
        url="https://example.org/a.iso",
        source="urls.txt:7",
        status=Status.OK,
        path="out/a.iso",
        bytes=1234,
        elapsed=1.5,
        attempts=2,
        http_status=206,
        resumed_from=1000,
    )
    obj = json.loads(json.dumps(result.to_json()))
    assert obj == {
        "url": "https://example.org/a.iso",
        "source": "urls.txt:7",
        "path": "out/a.iso",
        "status": "ok",
        "bytes": 1234,
        "elapsed": 1.5,
        "attempts": 2,
        "http_status": 206,
        "resumed_from": 1000,
        "error": None,
        "http_version": None,
        "mirror": None,
    }


@pytest.mark.parametrize(
    ("status", "text"), [(Status.OK, "ok"), (Status.SKIPPED, "skipped"), (Status.FAILED, "failed")]
)
def test_to_json_status_strings(status: Status, text: str) -> None:
    result = Result(url="https://example.org/", source="-:1", status=status)
    assert result.to_json()["status"] == text


def test_to_json_redacts_url_and_error() -> None:
    result = failed(url=SECRET_URL, error=f"HTTP 401 for {SECRET_URL}")
    line = json.dumps(result.to_json())
    assert "s3cret" not in line
    assert "alice" not in line
    assert result.to_json()["url"] == "https://***@example.org/private/a.iso"


def test_result_is_frozen() -> None:
    result = ok()
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.status = Status.FAILED  # type: ignore[misc]


# --------------------------------------------------------------------------------------------
# Tally.claim: name, name.1.ext, name.2.ext in the order asked
# --------------------------------------------------------------------------------------------


def test_claim_numbers_repeats_in_order() -> None:
    tally = Tally()
    claims = [tally.claim(("a.iso",)) for _ in range(4)]
    assert claims == [("a.iso",), ("a.1.iso",), ("a.2.iso",), ("a.3.iso",)]


def test_claim_numbers_before_the_last_extension_inside_a_folder() -> None:
    tally = Tally()
    assert tally.claim(("sub", "a.tar.gz")) == ("sub", "a.tar.gz")
    assert tally.claim(("sub", "a.tar.gz")) == ("sub", "a.tar.1.gz")
    assert tally.claim(("other", "a.tar.gz")) == ("other", "a.tar.gz")


def test_claim_different_names_do_not_interfere() -> None:
    tally = Tally()
    assert tally.claim(("a.iso",)) == ("a.iso",)
    assert tally.claim(("b.iso",)) == ("b.iso",)
    assert tally.claim(("a.iso",)) == ("a.1.iso",)


def test_claim_skips_names_taken_outside_the_run() -> None:
    on_disk = {("a.iso",), ("a.1.iso",)}

    def taken(rel: RelPath) -> bool:
        return rel in on_disk

    tally = Tally()
    assert tally.claim(("a.iso",), taken) == ("a.2.iso",)
    assert tally.claim(("a.iso",), taken) == ("a.3.iso",)
    assert tally.claim(("b.iso",), taken) == ("b.iso",)


def test_claim_checks_the_run_before_the_disk() -> None:
    asked: list[RelPath] = []

    def taken(rel: RelPath) -> bool:
        asked.append(rel)
        return False

    tally = Tally()
    tally.claim(("a.iso",))
    assert tally.claim(("a.iso",), taken) == ("a.1.iso",)
    assert ("a.1.iso",) in asked


# --------------------------------------------------------------------------------------------
# Tally.record / report
# --------------------------------------------------------------------------------------------


def test_record_counts_each_status_bytes_and_retries() -> None:
    tally = Tally()
    tally.record(ok(bytes=100, attempts=1))
    tally.record(ok(url="https://example.org/b", bytes=50, attempts=3, resumed_from=20))
    tally.record(skipped())
    counts = tally.record(failed())
    assert (counts.ok, counts.skipped, counts.failed) == (2, 1, 1)
    assert counts.done == 4
    assert counts.bytes == 150
    assert counts.resumed_bytes == 20
    assert counts.retries == 2
    assert tally.counts() == counts


def test_report_keeps_every_result_in_record_order() -> None:
    tally = Tally()
    results = [ok(), skipped(), failed(), ok(url="https://example.org/z")]
    for r in results:
        tally.record(r)
    report = tally.report(elapsed=2.0)
    assert report.results == tuple(results)
    assert report.ok == [results[0], results[3]]
    assert report.skipped == [results[1]]
    assert report.failed == [results[2]]
    assert report.elapsed == 2.0


def test_keep_results_false_keeps_only_failures_but_counts_all() -> None:
    tally = Tally(keep_results=False)
    tally.record(ok())
    tally.record(skipped())
    bad = failed()
    tally.record(bad)
    report = tally.report(elapsed=1.0)
    assert report.results == (bad,)
    assert report.failed == [bad]
    assert (report.counts.ok, report.counts.skipped, report.counts.failed) == (1, 1, 1)


# --------------------------------------------------------------------------------------------
# Report.exit_code (docs/output.md, "Exit status": 0 / 1 / 130)
# --------------------------------------------------------------------------------------------


def _report(*results: Result, interrupted: bool = False) -> Report:
    tally = Tally()
    for r in results:
        tally.record(r)
    return tally.report(elapsed=1.0, interrupted=interrupted)


@pytest.mark.parametrize(
    ("results", "interrupted", "code"),
    [
        ((), False, 0),
        ((ok(),), False, 0),
        ((ok(), skipped()), False, 0),
        ((skipped(),), False, 0),
        ((ok(), failed()), False, 1),
        ((failed(),), False, 1),
        ((ok(),), True, 130),
        ((ok(), failed()), True, 130),
    ],
)
def test_exit_code(results: tuple[Result, ...], interrupted: bool, code: int) -> None:
    assert _report(*results, interrupted=interrupted).exit_code == code


def test_exit_code_counts_failures_not_kept_results() -> None:
    tally = Tally(keep_results=False)
    tally.record(failed())
    assert tally.report(elapsed=0.1).exit_code == 1


# --------------------------------------------------------------------------------------------
# HashSet64
# --------------------------------------------------------------------------------------------


def test_hashset_add_contains_len() -> None:
    s = HashSet64()
    assert len(s) == 0
    assert "a" not in s
    assert s.add("a") is True
    assert s.add("a") is False
    assert s.add("b") is True
    assert "a" in s
    assert "b" in s
    assert "c" not in s
    assert len(s) == 2


def test_hashset_empty_and_unicode_keys() -> None:
    s = HashSet64()
    assert s.add("")
    assert s.add("ünïcödé/名前")
    assert "" in s
    assert "ünïcödé/名前" in s
    assert "unicode/名前" not in s


def test_hashset_grows_past_its_initial_size() -> None:
    s = HashSet64()
    keys = [f"https://example.org/{n}.iso" for n in range(5000)]
    assert all(s.add(k) for k in keys)
    assert len(s) == 5000
    assert all(k in s for k in keys)
    assert not any(s.add(k) for k in keys)
    assert len(s) == 5000
    assert not any(f"https://example.org/{n}.iso" in s for n in range(5000, 10_000))


# --------------------------------------------------------------------------------------------
# summary_lines
# --------------------------------------------------------------------------------------------


def test_summary_counts_failures_that_are_still_in_view_above() -> None:
    """Each failure was printed as it happened (docs/output.md): up to a screenful, the
    summary does not print it again."""
    report = _report(
        ok(bytes=2048),
        ok(url="https://example.org/b"),
        ok(url="https://example.org/c"),
        skipped(),
        failed(url=SECRET_URL, error=f"HTTP 403 Forbidden at {SECRET_URL}"),
        failed(url="https://example.org/missing.iso", error="HTTP 404 Not Found"),
    )
    lines = list(summary_lines(report))
    assert lines[0] == "pdl: done: 3 ok, 1 skipped, 2 failed"
    assert "  failed   2, each shown above as it happened" in lines
    assert "example.org" not in "\n".join(lines)


def test_summary_past_a_screenful_lists_the_first_failures_and_where_the_rest_are() -> None:
    failures = [failed(url=f"https://example.org/{n}.iso") for n in range(SCREENFUL + 5)]
    report = _report(failed(url=SECRET_URL, error=f"HTTP 403 at {SECRET_URL}"), *failures)
    lines = list(summary_lines(report, failed_file="again.txt"))
    assert f"  failed   {SCREENFUL + 6}; the first {FIRST_FAILURES}:" in lines
    listed = [line for line in lines if "(urls.txt:3)" in line]
    assert len(listed) == FIRST_FAILURES
    assert (
        listed[0]
        == "           https://***@example.org/private/a.iso (urls.txt:3): HTTP 403 at https://***@example.org/private/a.iso"
    )
    assert f"           ... and {SCREENFUL + 6 - FIRST_FAILURES} more (all in again.txt)" in lines
    assert "s3cret" not in "\n".join(lines) and "alice" not in "\n".join(lines)
    without = "\n".join(summary_lines(report))
    assert "(--failed FILE or --json lists them all)" in without


def test_summary_of_a_clean_run_lists_no_failures() -> None:
    report = _report(ok(), skipped())
    text = "\n".join(summary_lines(report))
    assert re.search(r"\b0 failed\b", text)
    assert "example.org" not in text


def test_summary_is_an_aligned_block() -> None:
    report = Report(
        results=(failed(url=SECRET_URL, error="HTTP 404 Not Found"),),
        counts=Counts(ok=3, failed=1, bytes=3 * 1024 * 1024, retries=2, resumed_bytes=2048),
        elapsed=2.0,
    )
    assert list(summary_lines(report, failed_file="my failed.txt")) == [
        "pdl: done: 3 ok, 0 skipped, 1 failed",
        "  received 3.0 MiB in 2.00 s (1.5 MiB/s average)",
        "  retries  2",
        "  resumed  2.0 KiB",
        "  failed   1, each shown above as it happened",
        "  re-run   pdl fetch 'my failed.txt' --failed 'my failed.txt'",
    ]


@pytest.mark.parametrize(
    ("options", "command"),
    [
        (None, "pdl fetch again.txt --failed again.txt"),
        (Options(), "pdl fetch again.txt --failed again.txt"),
        (
            Options(dest=Path("some where")),
            "pdl fetch again.txt -d 'some where' --failed again.txt",
        ),
        (
            Options(dest=Path("d"), on_exist=OnExist.RENAME, content_disposition=True),
            "pdl fetch again.txt -d d --on-exist rename --content-disposition --failed again.txt",
        ),
        (
            Options(ca_bundle=Path("ca.pem"), jobs=4, retries=1),  # -j, --retries: not needed
            "pdl fetch again.txt --ca-bundle ca.pem --failed again.txt",
        ),
        (Options(insecure=True), "pdl fetch again.txt --insecure --failed again.txt"),
    ],
)
def test_rerun_command_keeps_the_destination_and_what_changes_names_or_checks(
    options: Options | None, command: str
) -> None:
    assert rerun_command("again.txt", options) == command


def test_summary_rerun_hint_uses_the_reports_options() -> None:
    report = Report(
        results=(failed(),), counts=Counts(failed=1), elapsed=1.0, options=Options(dest=Path("d"))
    )
    lines = list(summary_lines(report, failed_file="again2.txt"))
    assert lines[-1] == "  re-run   pdl fetch again2.txt -d d --failed again2.txt"


def test_summary_names_the_failed_file_only_when_something_failed() -> None:
    text = "\n".join(summary_lines(_report(ok()), failed_file="failed.txt"))
    assert "failed.txt" not in text


def test_summary_says_when_interrupted() -> None:
    text = "\n".join(summary_lines(_report(ok(), interrupted=True)))
    assert "interrupt" in text.lower()


def test_interrupted_headline_says_what_is_not_finished_and_how_to_resume() -> None:
    stopped = Result(url="https://example.org/i.iso", source="u:9", status=Status.INTERRUPTED)
    report = _report(*[ok()] * 103, *[stopped] * 16, interrupted=True)
    assert headline(report) == (
        "pdl: interrupted: 103 ok, 16 not finished; partial files kept,"
        " run the same command to resume"
    )
    assert report.counts.interrupted == 16 and report.counts.failed == 0
    assert len(report.unfinished) == 16 and report.failed == []
    mixed = _report(ok(), skipped(), failed(), stopped, interrupted=True)
    assert headline(mixed) == (
        "pdl: interrupted: 1 ok, 1 skipped, 1 failed, 1 not finished; partial files kept,"
        " run the same command to resume"
    )
    assert headline(_report(ok(), interrupted=True)) == (
        "pdl: interrupted: 1 ok; run the same command to resume"
    )


def test_interrupted_status_in_json_and_the_tally() -> None:
    stopped = Result(url="https://example.org/i.iso", source="u:9", status=Status.INTERRUPTED)
    assert stopped.to_json()["status"] == "interrupted"
    tally = Tally()
    counts = tally.record(stopped)
    assert (counts.interrupted, counts.failed, counts.done) == (1, 0, 1)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://example.org/a.iso", "https://example.org/a.iso"),
        ("https://example.org/a b.iso", "'https://example.org/a b.iso'"),
        ("https://u:p@example.org/my file.iso", "'https://***@example.org/my file.iso'"),
        ("https://example.org/x\x07y", "'https://example.org/x\\x07y'"),
        ("https://example.org/it's", '"https://example.org/it\'s"'),
    ],
)
def test_a_url_is_shown_whole_and_quoted_when_it_holds_a_space(url: str, shown: str) -> None:
    assert shown_url(url) == shown


def test_failure_text_of_a_url_with_a_space_is_whole() -> None:
    r = failed(url="https://example.org/a b.iso")
    assert failure_text(r) == "'https://example.org/a b.iso' (urls.txt:3): HTTP 404 Not Found"


def test_claim_keeps_names_clear_of_each_others_partials() -> None:
    tally = Tally()
    assert tally.claim(("a.bin",)) == ("a.bin",)
    assert tally.claim(("a.bin.part",)) == ("a.bin.1.part",)  # would be a.bin's partial
    other = Tally()
    assert other.claim(("b.iso.part",)) == ("b.iso.part",)
    assert other.claim(("b.iso",)) == ("b.1.iso",)  # its partial would overwrite b.iso.part
    assert other.claim(("c.part.pdl",)) == ("c.part.pdl",)
    assert other.claim(("c",)) == ("c.1",)
