"""Every example of README.md and docs/ runs against the test server, so none can rot.

An example is a fenced ``console`` block (its ``$ `` lines are commands, run in
order in one fresh folder by bash) or a ``python`` block. ``https://example.org``
(and ``https://mirror.example.net``) stand for the test server, which serves
``/a.iso``, ``/b.iso``, ``/c.iso`` and ``/big.iso``; the folder holds ``urls.txt``
(the three small ones), ``big-isos.txt``, ``bad-lines.txt``, ``SHA256SUMS`` (a
manifest of the three small ones) and ``mirrors.txt`` (a.iso behind a refused first
URL, b.iso behind a 404 with a ``mirror=``). A comment right
above a block changes what is expected of it:

- ``<!-- not-tested: REASON -->``: skipped, with REASON (an option not implemented
  yet, a remote cluster);
- ``<!-- exit: N -->``: every command of the block exits N instead of 0.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest

from tests.server import FaultServer

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
STAND_INS = ("https://example.org", "https://mirror.example.net")
BODIES = {
    "a.iso": bytes(range(256)) * 8,
    "b.iso": b"b" * 3000,
    "c.iso": b"c" * 5000,
    "big.iso": bytes(range(256)) * (3 * 4096),  # 3 MiB: worth splitting with -s
}
_MARKER = re.compile(r"^<!--\s*(not-tested|exit):\s*(.*?)\s*-->$")
_FENCE = re.compile(r"^```(\w*)\s*$")


class Example(NamedTuple):
    page: str
    line: int
    kind: str  # "console" or "python"
    text: str
    skip: str | None
    exit: int

    @property
    def commands(self) -> list[str]:
        return [line[2:] for line in self.text.splitlines() if line.startswith("$ ")]


def examples(path: Path) -> Iterator[Example]:
    """The runnable blocks of one page, with the markers right above each."""
    markers: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        marker = _MARKER.match(line)
        fence = _FENCE.match(line)
        if marker:
            markers[marker[1]] = marker[2]
        elif fence:
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            if fence[1] in ("console", "python"):
                yield Example(
                    page=path.relative_to(ROOT).as_posix(),
                    line=i + 1,
                    kind=fence[1],
                    text="\n".join(lines[i + 1 : end]),
                    skip=markers.get("not-tested"),
                    exit=int(markers.get("exit", "0")),
                )
            markers = {}
            i = end
        elif line and markers:  # a marker belongs to the block right below it only
            raise ValueError(f"{path.name}:{i + 1}: a marker that is not right above a block")
        i += 1


ALL = [example for page in PAGES for example in examples(page)]


def _setup(folder: Path, server: FaultServer) -> None:
    for name, body in BODIES.items():
        server.add(f"/{name}", body)
    small = "".join(f"{server.url('/' + n)}\n" for n in ("a.iso", "b.iso", "c.iso"))
    (folder / "urls.txt").write_text(small)
    (folder / "big-isos.txt").write_text(server.url("/big.iso") + "\n")
    (folder / "bad-lines.txt").write_text(f"{server.url('/a.iso')}\nftp://example.org/x.iso\n")
    sums = (f"{hashlib.sha256(BODIES[n]).hexdigest()}  {n}\n" for n in ("a.iso", "b.iso", "c.iso"))
    (folder / "SHA256SUMS").write_text("".join(sums))
    with socket.socket() as closed:  # a port that refuses connections: a mirror that is down
        closed.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{closed.getsockname()[1]}"
    (folder / "mirrors.txt").write_text(
        f"{down}/a.iso\t{server.url('/a.iso')}\n"
        f"{server.url('/moved/b.iso')}\n"
        f"  mirror={server.url('/b.iso')}\n"
        "  header=X-Token: demo\n"
    )


def _environ(folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PDL_")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["TMPDIR"] = str(folder)
    env["NO_PROXY"] = "*"
    return env


def _substitute(text: str, server: FaultServer) -> str:
    for stand_in in STAND_INS:
        text = text.replace(stand_in, server.base_url)
    return text


def _check_files(folder: Path) -> int:
    """Every downloaded file holds exactly the bytes served; how many there are."""
    found = 0
    for path in folder.rglob("*"):
        if path.is_file() and path.name in BODIES:
            assert path.read_bytes() == BODIES[path.name], path
            found += 1
    return found


def test_every_page_has_examples_and_markers_sit_on_blocks() -> None:
    pages = {example.page for example in ALL}
    assert "README.md" in pages and len(pages) >= 8
    for path in PAGES:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if line.startswith("<!--") and ("not-tested" in line or "exit" in line):
                assert _MARKER.match(line.strip()), f"{path.name}:{number}: {line}"


@pytest.mark.parametrize("example", ALL, ids=[f"{e.page}:{e.line}" for e in ALL])
def test_example(example: Example, server: FaultServer, tmp_path: Path) -> None:
    if example.skip is not None:
        pytest.skip(f"not tested ({example.page}:{example.line}): {example.skip}")
    _setup(tmp_path, server)
    env = _environ(tmp_path)
    if example.kind == "python":
        script = _substitute(example.text, server)
        done = subprocess.run(
            [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        assert _check_files(tmp_path) > 0
        return
    assert example.commands, f"{example.page}:{example.line}: a console block without '$ '"
    downloads = False
    for command in example.commands:
        done = subprocess.run(
            ["bash", "-o", "pipefail", "-c", _substitute(command, server)],
            cwd=tmp_path,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=90,
        )
        where = f"{example.page}:{example.line}: $ {command}\n{done.stdout}\n{done.stderr}"
        assert done.returncode == example.exit, where
        fetches = " fetch " in f" {command} " and "--dry-run" not in command
        downloads |= fetches and "--help" not in command and example.exit == 0
    if downloads:
        assert server.requests and _check_files(tmp_path) > 0
