"""The command line: in-process with CliRunner, and as a real process for signals."""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from downloader import cli
from tests.conftest import JSON_KEYS
from tests.server import Fault, FaultServer, wait_until


def pdl(*args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(cli.main, list(args), input=input, catch_exceptions=False)


def test_help_shows_options_with_defaults() -> None:
    result = pdl("fetch", "--help")
    assert result.exit_code == 0
    text = result.output
    for option in (
        "--jobs",
        "--dir",
        "--retries",
        "--retry-wait",
        "--timeout",
        "--on-exist",
        "--no-resume",
        "--content-disposition",
        "--header",
        "--user-agent",
        "--insecure",
        "--ca-bundle",
        "--json",
        "--dry-run",
        "--failed",
        "--quiet",
        "--progress",
        "--verbose",
        "--limit-rate",
        "--per-host",
        "--split",
        "--split-min-size",
    ):
        assert option in text, option
    assert "default: 8" in text and "default: skip" in text
    assert "default: 32M" in text and "default: 1" in text


@pytest.mark.parametrize(
    "args",
    [
        ["--limit-rate", "0"],
        ["--limit-rate", "fast"],
        ["--per-host", "0"],
        ["-s", "17"],
        ["--split-min-size", "-1M"],
    ],
)
def test_bad_speed_options_are_usage_errors(args: list[str]) -> None:
    result = pdl("fetch", *args, "http://127.0.0.1:9/a")
    assert result.exit_code == 2


def test_version() -> None:
    result = pdl("--version")
    assert result.exit_code == 0 and "0.1.0" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["-j", "0"],
        ["-j", "1025"],
        ["--on-exist", "clobber"],
        ["--timeout", "0"],
        ["--retries", "-1"],
        ["-H", "no colon here"],
        ["--insecure", "--ca-bundle", __file__],
        ["missing-list.txt"],
    ],
)
def test_usage_errors_exit_2(args: list[str], dest: Path) -> None:
    result = pdl("fetch", "-d", str(dest), *args, "-")
    assert result.exit_code == 2, result.output
    assert result.stdout == ""


def test_a_folder_is_not_a_list(tmp_path: Path) -> None:
    result = pdl("fetch", str(tmp_path))
    assert result.exit_code == 2 and "folder" in result.stderr


def test_no_source_on_a_terminal_is_a_usage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty:
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(cli, "_stdin", Tty)
    result = pdl("fetch")
    assert result.exit_code == 2 and "no SOURCE" in result.stderr


def test_paths_on_stdout_summary_on_stderr(server: FaultServer, dest: Path, tmp_path: Path) -> None:
    server.add("/a.txt", b"a")
    server.add("/b.txt", b"b")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"# two files\n{server.url('/a.txt')}\n\n{server.url('/b.txt')}\n")
    result = pdl("fetch", str(listing), "-d", str(dest))
    assert result.exit_code == 0
    assert sorted(result.stdout.splitlines()) == [str(dest / "a.txt"), str(dest / "b.txt")]
    assert "2 ok, 0 skipped, 0 failed" in result.stderr
    # a re-run skips both, still listing the paths, still exit 0
    again = pdl("fetch", str(listing), "-d", str(dest))
    assert again.exit_code == 0 and "0 ok, 2 skipped" in again.stderr
    assert sorted(again.stdout.splitlines()) == sorted(result.stdout.splitlines())


def test_bad_line_is_reported_with_file_and_line_and_the_rest_runs(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    server.add("/a.txt", b"a")
    listing = tmp_path / "urls.txt"
    listing.write_text(f"{server.url('/a.txt')}\nftp://host/x\n{server.url('/a.txt')} out=../x\n")
    result = pdl("fetch", str(listing), "-d", str(dest))
    assert result.exit_code == 1
    assert f"{listing}:2: unsupported scheme" in result.stderr
    assert f"{listing}:3: out may not contain '..'" in result.stderr
    assert result.stdout.splitlines() == [str(dest / "a.txt")]
    assert (dest / "a.txt").read_bytes() == b"a"


def test_reads_stdin_with_dash_and_without_source(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"a")
    server.add("/b.txt", b"b")
    result = pdl("fetch", "-d", str(dest), "-", input=server.url("/a.txt") + "\n")
    assert result.exit_code == 0 and (dest / "a.txt").exists()
    result = pdl("fetch", "-d", str(dest), input=server.url("/b.txt") + "\n")
    assert result.exit_code == 0 and (dest / "b.txt").exists()


def test_sources_in_order_list_stdin_and_url(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    for name in ("a", "b", "c"):
        server.add(f"/{name}/f.txt", name.encode())
    listing = tmp_path / "l.txt"
    listing.write_text(server.url("/a/f.txt") + "\n")
    result = pdl(
        "fetch",
        "-j",
        "1",
        "-d",
        str(dest),
        str(listing),
        "-",
        server.url("/c/f.txt"),
        input=server.url("/b/f.txt") + "\n",
    )
    assert result.exit_code == 0
    # names are given in source order: a keeps f.txt, b gets f.1.txt, c gets f.2.txt
    assert [(dest / n).read_bytes() for n in ("f.txt", "f.1.txt", "f.2.txt")] == [b"a", b"b", b"c"]


def test_json_lines(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"abc")
    server.add("/gone", b"", faults=[Fault.status(404)])
    result = pdl("fetch", "--json", "-d", str(dest), server.url("/a.txt"), server.url("/gone"))
    assert result.exit_code == 1
    rows = {r["status"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert set(rows) == {"ok", "failed"}
    assert all(set(r) == JSON_KEYS for r in rows.values())
    assert rows["ok"]["bytes"] == 3 and rows["ok"]["path"] == str(dest / "a.txt")
    assert rows["ok"]["source"] == "<args>:1" and rows["ok"]["attempts"] == 1
    assert rows["failed"]["http_status"] == 404 and "HTTP 404" in rows["failed"]["error"]


def test_dry_run(server: FaultServer, tmp_path: Path) -> None:
    dest = tmp_path / "d"
    url = server.url("/x/a.iso")
    result = pdl("fetch", "--dry-run", "-d", str(dest), url, url + " out=b.iso")
    assert result.exit_code == 0
    assert result.stdout.splitlines() == [f"{url} -> {dest}/a.iso", f"{url} -> {dest}/b.iso"]
    assert server.requests == [] and not dest.exists()


def test_quiet_keeps_errors_only(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"a")
    result = pdl("fetch", "-q", "-d", str(dest), server.url("/a.txt"), server.url("/none"))
    assert result.exit_code == 1
    assert "summary" not in result.stderr and "ok," not in result.stderr
    assert "HTTP 404" in result.stderr


def test_credentials_are_redacted_in_output(server: FaultServer, dest: Path) -> None:
    server.add_faults("/secret", Fault.status(503))  # a retry message, then a 404
    url = server.url("/secret").replace("http://", "http://user:hunter2@")
    result = pdl("fetch", "--json", "-v", "--retry-wait", "0", "-d", str(dest), url)
    assert result.exit_code == 1
    assert "retry 1/5" in result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "***@127.0.0.1" in result.stdout and "***@127.0.0.1" in result.stderr


def test_verbose_reports_retries(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"a", faults=[Fault.status(503)])
    result = pdl("fetch", "-v", "--retry-wait", "0", "-d", str(dest), server.url("/a.txt"))
    assert result.exit_code == 0
    assert "retry 1/5" in result.stderr and "HTTP 503" in result.stderr
    quiet = pdl("fetch", "--retry-wait", "0", "-d", str(dest / "q"), server.url("/a.txt"))
    assert "retry" not in quiet.stderr


def test_progress_forced_on_writes_bars_to_stderr_only(server: FaultServer, dest: Path) -> None:
    server.add("/a.txt", b"a" * 100_000)
    result = pdl("fetch", "--progress", "-d", str(dest), server.url("/a.txt"))
    assert result.exit_code == 0
    assert result.stdout == f"{dest / 'a.txt'}\n"
    assert (dest / "a.txt").read_bytes() == b"a" * 100_000
    assert "total" in result.stderr and "files" in result.stderr


def _spawn(args: list[str], cwd: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_PROXY": "*", "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "downloader", "fetch", *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_interrupt_stops_quickly_keeps_parts_and_summarises(
    server: FaultServer, dest: Path, signum: int, code: int
) -> None:
    big = b"p" * (4 << 20)
    for i in range(2):
        server.add(f"/f{i}.bin", big, faults=[Fault.stall(1 << 20)])
    urls = [server.url(f"/f{i}.bin") for i in range(2)] + [server.url("/later")]
    proc = _spawn(["-j", "2", "--timeout", "60", "-d", str(dest), *urls], dest)
    try:
        parts = [dest / f"f{i}.bin.part" for i in range(2)]
        wait_until(lambda: all(p.exists() and p.stat().st_size == 1 << 20 for p in parts), 20)
        proc.send_signal(signum)
        out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == code, err
    assert "interrupted" in err and "0 ok" in err
    assert out == ""
    assert all(p.stat().st_size == 1 << 20 for p in parts)
    assert not (dest / "f0.bin").exists() and server.requests_for("/later") == []


def test_python_dash_m_runs_the_cli(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "downloader", "--version"], capture_output=True, text=True
    )
    assert done.returncode == 0 and "pdl" in done.stdout


def test_closed_stdout_does_not_stop_the_downloads(server: FaultServer, dest: Path) -> None:
    for i in range(20):
        server.add(f"/f{i}.txt", b"x" * 1000)
    urls = [server.url(f"/f{i}.txt") for i in range(20)] + [server.url("/gone")]
    proc = _spawn(["--json", "-j", "1", "-d", str(dest), *urls], dest)
    assert proc.stdout is not None
    first = json.loads(proc.stdout.readline())["path"]  # like `| head -1`
    proc.stdout.close()
    _out, err = proc.communicate(timeout=30)
    assert first == str(dest / "f0.txt")
    assert proc.returncode == 1, err  # the last URL is missing
    assert "Traceback" not in err and "Exception ignored" not in err
    assert "pdl: failed:" in err and "20 ok, 0 skipped, 1 failed" in err  # still told
    assert len(list(dest.iterdir())) == 20


def test_destination_that_is_a_file_is_a_usage_error(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    result = pdl("fetch", "-d", str(target), "http://127.0.0.1:9/a")
    assert result.exit_code == 2 and result.stdout == ""


def test_interrupt_while_reading_a_pipe_that_stays_open(server: FaultServer, dest: Path) -> None:
    server.add("/slow.bin", b"s" * (1 << 20), faults=[Fault.stall(1000)])
    env = {**os.environ, "NO_PROXY": "*"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "downloader", "fetch", "-d", str(dest), "-"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None
    try:
        # the second line releases the first entry (it might have had option lines)
        proc.stdin.write(f"{server.url('/slow.bin')}\n{server.url('/next.bin')}\n")
        proc.stdin.flush()
        part = dest / "slow.bin.part"
        # downloading (its first bytes are on disk), stdin still open
        wait_until(lambda: part.exists() and part.stat().st_size == 1000, 20)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=10)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted" in err and (dest / "slow.bin.part").exists()


def test_a_piped_url_starts_before_the_next_line_arrives(server: FaultServer, dest: Path) -> None:
    server.add("/first.bin", b"1")
    env = {**os.environ, "NO_PROXY": "*"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "downloader", "fetch", "-d", str(dest)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdin is not None and proc.stdout is not None
    try:
        proc.stdin.write(server.url("/first.bin") + "\n")
        proc.stdin.flush()
        # the path comes while stdin is still open (no next line, no end of the list)
        assert select.select([proc.stdout], [], [], 10)[0], "the URL did not start"
        assert proc.stdout.readline() == f"{dest / 'first.bin'}\n"
        proc.communicate(timeout=10)  # closes stdin: the end of the list
    finally:
        proc.kill()
    assert proc.returncode == 0
    assert (dest / "first.bin").read_bytes() == b"1"


# -- shell habits: environment variables, completion, examples -------------------------------


@pytest.mark.parametrize("command", ["fetch", "tune"])
def test_every_option_can_come_from_the_environment(command: str) -> None:
    params = cli.main.commands[command].params  # type: ignore[attr-defined]
    options = [p for p in params if isinstance(p, click.Option) and p.name != "help"]
    assert options
    text = pdl(command, "--help").output
    for option in options:
        assert isinstance(option.envvar, str) and option.envvar.startswith("PDL_"), option.name
        assert option.show_envvar and option.envvar in text, option.envvar
    names = [o.envvar for o in options]
    assert len(names) == len(set(names))


def test_options_from_the_environment_apply(server: FaultServer, tmp_path: Path) -> None:
    server.add("/a.txt", b"a")
    env = {"PDL_DIR": str(tmp_path / "from-env"), "PDL_HEADER": "X-One: 1\nX-Two: 2"}
    result = CliRunner().invoke(cli.main, ["fetch", server.url("/a.txt")], env=env)
    assert result.exit_code == 0 and (tmp_path / "from-env" / "a.txt").read_bytes() == b"a"
    request = server.requests_for("/a.txt")[0]
    assert (request.header("X-One"), request.header("X-Two")) == ("1", "2")
    # a flag on the command line still wins over the environment
    again = CliRunner().invoke(
        cli.main, ["fetch", "-d", str(tmp_path / "flag"), server.url("/a.txt")], env=env
    )
    assert again.exit_code == 0 and (tmp_path / "flag" / "a.txt").exists()


def test_a_bad_value_in_the_environment_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.main, ["fetch", "http://127.0.0.1:9/x"], env={"PDL_JOBS": "0"})
    assert result.exit_code == 2 and "--jobs" in result.stderr


@pytest.mark.parametrize(
    ("shell", "marker"),
    [
        ("bash", "complete -o nosort -F _pdl_completion pdl"),
        ("zsh", "#compdef pdl"),
        ("fish", "complete --no-files --command pdl"),
    ],
)
def test_completion_scripts(shell: str, marker: str) -> None:
    result = CliRunner().invoke(
        cli.main, [], prog_name="pdl", env={"_PDL_COMPLETE": f"{shell}_source"}
    )
    assert result.exit_code == 0 and marker in result.output


def _complete(words: str) -> list[str]:
    """What bash completion offers for the command line ``words`` (the last one is being typed)."""
    cword = len(words.split()) - (0 if words.endswith(" ") else 1)
    env = {"_PDL_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": str(cword)}
    result = CliRunner().invoke(cli.main, [], prog_name="pdl", env=env)
    assert result.exit_code == 0
    return result.output.splitlines()


def test_completion_of_commands_options_and_choices() -> None:
    assert "plain,fetch" in _complete("pdl fe")
    assert "plain,--on-exist" in _complete("pdl fetch --on-")
    assert _complete("pdl fetch --on-exist ") == ["plain,skip", "plain,overwrite", "plain,rename"]
    assert _complete("pdl fetch ur") == ["file,ur"]  # a SOURCE completes as a file name


@pytest.mark.parametrize("args", [[], ["fetch"], ["tune"]])
def test_help_has_examples(args: list[str]) -> None:
    text = pdl(*args, "--help").output
    assert "Examples:" in text and "pdl " in text.split("Examples:")[1]


def test_the_completion_script_comes_from_the_installed_command() -> None:
    exe = Path(sys.executable).with_name("pdl")
    if not exe.exists():
        pytest.skip("pdl is not installed beside this interpreter")
    done = subprocess.run(
        [str(exe)],
        env={**os.environ, "_PDL_COMPLETE": "bash_source"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0 and "_pdl_completion" in done.stdout


def test_summary_names_the_failed_file_to_rerun(server: FaultServer, tmp_path: Path) -> None:
    failed = tmp_path / "failed.txt"
    result = pdl("fetch", "-d", str(tmp_path / "d"), "--failed", str(failed), server.url("/none"))
    assert result.exit_code == 1
    assert (
        f"  re-run   pdl fetch {failed} -d {tmp_path / 'd'} --failed {failed}"
        in result.stderr.splitlines()
    )
    assert server.url("/none") in failed.read_text().splitlines()
