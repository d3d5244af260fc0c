"""``--failed FILE``: the failed entries as a private URL list that re-runs them."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

from click.testing import CliRunner, Result

from downloader import cli, fetch
from downloader.failed import entry_lines
from downloader.results import Result as Outcome
from downloader.results import Status
from tests.server import FaultServer


def pdl(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def test_failed_entries_re_run_with_their_options_and_credentials(
    server: FaultServer, tmp_path: Path
) -> None:
    dest = tmp_path / "dest"
    body = b"the real thing" * 100
    digest = hashlib.sha256(body).hexdigest()
    secret = server.url("/secret.bin").replace("http://", "http://user:hunter2@")
    server.add("/ok.bin", b"fine")
    listing = tmp_path / "urls.txt"
    listing.write_text(
        f"{server.url('/ok.bin')}\n"
        f"{server.url('/later.bin')} out=named.bin dir=sub\n"
        f"  checksum=sha-256={digest}\n"
        f"{secret}\n"
        "ftp://example.org/bad\n"
    )
    failed = tmp_path / "failed.txt"
    first = pdl("fetch", "--retries", "0", "-d", str(dest), "--failed", str(failed), str(listing))
    assert first.exit_code == 1
    assert stat.S_IMODE(failed.stat().st_mode) == 0o600
    text = failed.read_text()
    assert "hunter2" in text  # kept, so that the file re-runs
    assert "hunter2" not in first.stdout + first.stderr
    assert server.url("/ok.bin") not in text
    assert "  out=named.bin\n" in text and "  dir=sub\n" in text and digest in text
    assert f"# {listing}:5: bad line, not re-run" in text and "ftp://example.org/bad" in text

    server.add("/later.bin", body)
    server.add("/secret.bin", b"private")
    again = pdl("fetch", "-d", str(dest), "--failed", str(failed), str(failed))
    assert again.exit_code == 0, again.stderr + failed.read_text()
    assert (dest / "sub" / "named.bin").read_bytes() == body
    assert (dest / "secret.bin").read_bytes() == b"private"
    assert server.requests_for("/secret.bin")[-1].header("authorization", "").startswith("Basic ")
    assert [line for line in failed.read_text().splitlines() if not line.startswith("#")] == []


def test_an_existing_file_or_link_is_replaced_by_a_new_private_file(
    server: FaultServer, tmp_path: Path
) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    link = tmp_path / "failed-link.txt"
    link.symlink_to(victim)
    old = tmp_path / "failed-old.txt"
    old.write_text("stale\n")
    old.chmod(0o644)
    for path in (link, old):
        report = fetch([server.url("/missing")], dest=tmp_path / "d", retries=0, failed=path)
        assert report.counts.failed == 1
        assert not path.is_symlink() and stat.S_IMODE(path.stat().st_mode) == 0o600
        assert server.url("/missing") in path.read_text() and "stale" not in path.read_text()
    assert victim.read_text() == "precious"


def test_nothing_failed_leaves_a_file_without_entries(server: FaultServer, tmp_path: Path) -> None:
    server.add("/a", b"a")
    failed = tmp_path / "failed.txt"
    failed.write_text("http://127.0.0.1:9/from-an-older-run\n")
    assert fetch([server.url("/a")], dest=tmp_path / "d", failed=failed).counts.ok == 1
    assert (tmp_path / "d" / "a").read_bytes() == b"a"
    assert [ln for ln in failed.read_text().splitlines() if not ln.startswith("#")] == []


def test_a_failed_file_that_cannot_be_created_is_a_usage_error(tmp_path: Path) -> None:
    result = pdl(
        "fetch", "--failed", str(tmp_path / "no" / "such" / "f.txt"), "http://127.0.0.1:9/"
    )
    assert result.exit_code == 2 and "--failed" in result.stderr


def test_a_bad_line_is_written_as_a_comment_on_one_line() -> None:
    bad = Outcome(
        url="http://x/a\x1b[2Jb\nhttp://evil/",
        source="l.txt:3",
        status=Status.FAILED,
        error="URL contains whitespace or control characters",
        bad_line=True,
    )
    text = entry_lines(bad)
    assert text.startswith("# l.txt:3: bad line") and text.count("\n") == 1
    assert "\\x1b" in text and "\\x0a" in text


def test_a_run_that_cannot_start_leaves_the_old_file_alone(tmp_path: Path) -> None:
    failed = tmp_path / "failed.txt"
    failed.write_text("http://127.0.0.1:9/from-an-older-run\n")
    in_the_way = tmp_path / "file"
    in_the_way.write_text("")
    result = pdl("fetch", "-d", str(in_the_way), "--failed", str(failed), "http://127.0.0.1:9/")
    assert result.exit_code == 2
    assert failed.read_text() == "http://127.0.0.1:9/from-an-older-run\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["failed.txt", "file"]
