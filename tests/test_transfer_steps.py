"""A transfer's attempt logic without a server or a clock: feed it made-up outcomes.

:func:`downloader.transfer.download` is a generator of effects (``Fetch``, ``Body``,
``Discard``, ``Wait``); these tests play the lane's part by hand, so every edge
case of resume, retry and verification is one short script of answers.
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from downloader.cancel import CancelToken
from downloader.effects import Body, Discard, Fetch, Wait
from downloader.errors import ConnectionFailed
from downloader.options import Options
from downloader.progress import NULL_PROGRESS
from downloader.ratelimit import HostGate
from downloader.results import Result, Status
from downloader.resume import Continue, Mismatch, Plan, Restart, judge
from downloader.sink import BodyTooLong
from downloader.storage import ResumeRecord
from downloader.transfer import Context, Job, download
from downloader.urllist import Entry
from downloader.wire import Headers, Response

URL = "http://files.example/a.bin"
ETAG = '"v1"'


def context(
    dest: Path, *, gate: HostGate | None = None, cancel: CancelToken | None = None
) -> Context:
    return Context(
        options=Options(dest=dest, retry_wait=1.0),
        cancel=cancel or CancelToken(),
        progress=NULL_PROGRESS,
        claim=lambda rel: rel,
        notify=lambda text: None,
        event=lambda event: None,
        gate=gate or HostGate(None),
        limiter=None,
    )


def start(dest: Path, url: str = URL, **kw: Any) -> Generator[Any, Any, Result]:
    name = url.rsplit("/", 1)[1]
    job = Job(entry=Entry(url=url), rel=(name,), fallback=(name,))
    return download(job, context(dest, **kw))


def head(status: int, **fields: str) -> Response:
    names = {"etag": "ETag", "content_length": "Content-Length", "content_range": "Content-Range"}
    headers = Headers((names.get(k, k), v) for k, v in fields.items())
    return Response(status=status, headers=headers)


def finish(gen: Generator[Any, Any, Result], value: Any) -> Result:
    with pytest.raises(StopIteration) as stop:
        gen.send(value)
    result: Result = stop.value.value
    return result


def test_a_whole_body_is_published(tmp_path: Path) -> None:
    gen = start(tmp_path)
    assert next(gen) == Fetch(URL, ())
    body = gen.send(head(200, etag=ETAG, content_length="5"))
    assert isinstance(body, Body)
    assert body.sink.write(b"hello")
    result = finish(gen, None)
    assert result.status is Status.OK and result.bytes == 5 and result.attempts == 1
    assert (tmp_path / "a.bin").read_bytes() == b"hello"
    assert not (tmp_path / "a.bin.part").exists()


def test_a_short_body_is_resumed_with_range_and_if_range(tmp_path: Path) -> None:
    gen = start(tmp_path)
    next(gen)
    body = gen.send(head(200, etag=ETAG, content_length="5"))
    body.sink.write(b"hel")
    assert isinstance(gen.send(None), Wait)  # ShortBody: retried after the back-off
    assert not (tmp_path / "a.bin").exists()
    again = gen.send(None)
    assert again == Fetch(URL, (("Range", "bytes=3-"), ("If-Range", ETAG)))
    body = gen.send(head(206, etag=ETAG, content_range="bytes 3-4/5", content_length="2"))
    body.sink.write(b"lo")
    result = finish(gen, None)
    assert result.status is Status.OK and result.resumed_from == 3 and result.attempts == 2
    assert (tmp_path / "a.bin").read_bytes() == b"hello"


def test_the_announced_length_binds_a_206_of_unknown_total(tmp_path: Path) -> None:
    gen = start(tmp_path)
    next(gen)
    gen.send(head(200, etag=ETAG, content_length="10")).sink.write(b"01234")
    gen.send(None)  # the Wait
    gen.send(None)  # the ranged Fetch
    body = gen.send(head(206, etag=ETAG, content_range="bytes 5-6/*"))
    body.sink.write(b"56")
    assert isinstance(gen.send(None), Wait)  # 7 of 10 bytes is short, whatever the 206 says
    assert not (tmp_path / "a.bin").exists()


def test_a_206_of_another_version_starts_over(tmp_path: Path) -> None:
    gen = start(tmp_path)
    next(gen)
    gen.send(head(200, etag=ETAG, content_length="10")).sink.write(b"01234")
    gen.send(None)
    gen.send(None)
    assert isinstance(gen.send(head(206, etag='"v2"', content_range="bytes 5-9/10")), Discard)
    assert isinstance(gen.send(None), Wait)  # RangeMismatch: the partial is dropped
    assert not (tmp_path / "a.bin.part").exists()
    assert gen.send(None) == Fetch(URL, ())  # from byte 0


def test_a_body_past_its_length_is_cut_and_never_published(tmp_path: Path) -> None:
    gen = start(tmp_path)
    next(gen)
    body = gen.send(head(200, etag=ETAG, content_length="3"))
    assert not body.sink.write(b"abcdef")
    assert isinstance(body.sink.error, BodyTooLong)
    result = finish(gen, body.sink.error)
    assert result.status is Status.FAILED and "more than the 3 bytes" in (result.error or "")
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_a_retried_status_waits_its_retry_after_and_holds_the_host(tmp_path: Path) -> None:
    gate = HostGate(None)
    gen = start(tmp_path, gate=gate)
    next(gen)
    assert isinstance(gen.send(head(503, **{"Retry-After": "7"})), Discard)
    assert gen.send(None) == Wait(7.0)
    assert gate.delay("files.example") > 6


def test_a_404_fails_at_once_and_holds_nothing(tmp_path: Path) -> None:
    gate = HostGate(None)
    gen = start(tmp_path, gate=gate)
    next(gen)
    assert isinstance(gen.send(head(404, **{"Retry-After": "7"})), Discard)
    result = finish(gen, None)
    assert result.status is Status.FAILED and result.attempts == 1
    assert result.error == "HTTP 404" and gate.delay("files.example") == 0


def test_a_host_that_refuses_every_connection_is_given_up(tmp_path: Path) -> None:
    gate = HostGate(None)
    gens = [start(tmp_path, f"http://dead.example/f{i}", gate=gate) for i in range(4)]
    for gen in gens[:3]:
        next(gen)
        assert isinstance(gen.send(ConnectionFailed("refused", unreachable=True)), Wait)
    with pytest.raises(StopIteration) as stop:
        next(gens[3])  # never asks
    result: Result = stop.value.value
    assert result.status is Status.FAILED and "gave up on dead.example" in (result.error or "")


def test_an_interrupt_during_a_wait_ends_as_interrupted(tmp_path: Path) -> None:
    cancel = CancelToken()
    gen = start(tmp_path, cancel=cancel)
    next(gen)
    gen.send(ConnectionFailed("reset"))  # a Wait
    cancel.cancel()
    result = finish(gen, None)
    assert result.status is Status.INTERRUPTED and result.error is None


@pytest.mark.parametrize(
    ("status", "fields", "plan", "length", "verdict"),
    [
        (200, {"Content-Length": "9"}, Plan(0, None), None, Continue(0, 9, 9)),
        (200, {}, Plan(0, None), None, Continue(0, None, None)),
        (200, {"Content-Length": "²"}, Plan(0, None), None, Continue(0, None, None)),
        (206, {"Content-Range": "bytes 0-4/5"}, Plan(0, None), None, Mismatch),
        (206, {"Content-Range": "bytes 4-9/10"}, Plan(4, None), None, Continue(4, 10, 10)),
        (206, {"Content-Range": "bytes 4-5/*"}, Plan(4, None), 10, Continue(4, 10, 6)),
        (206, {"Content-Range": "bytes 3-9/10"}, Plan(4, None), None, Restart),
        (206, {"Content-Range": "bytes 4-9/12"}, Plan(4, None), 10, Restart),
        (
            206,
            {"Content-Range": "bytes 4-9/10", "Content-Length": "99"},
            Plan(4, None),
            10,
            Restart,
        ),
        (416, {"Content-Range": "bytes */4"}, Plan(4, None), None, Continue(4, 4, 4)),
        (416, {"Content-Range": "bytes */9"}, Plan(4, None), None, Restart),
        (200, {"Content-Length": "10"}, Plan(4, None), 10, Continue(0, 10, 10, restarted=True)),
    ],
)
def test_judge(
    status: int, fields: dict[str, str], plan: Plan, length: int | None, verdict: Any
) -> None:
    got = judge(status, Headers(fields.items()), plan, length)
    if isinstance(verdict, type):
        assert isinstance(got, verdict)
    else:
        assert got == verdict


def test_judge_sees_another_version_in_a_206() -> None:
    record = ResumeRecord(ResumeRecord.url_hash(URL), ETAG, 10)
    headers = Headers({"Content-Range": "bytes 4-9/10", "ETag": '"v2"'}.items())
    assert isinstance(judge(206, headers, Plan(4, record), 10), Restart)
