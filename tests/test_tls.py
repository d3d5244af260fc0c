"""TLS against a local HTTPS server with a self-signed certificate made by ``openssl``."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from downloader import Status, cli, fetch
from tests.server import FaultServer, self_signed_cert, tls_context

pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return self_signed_cert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https(cert: tuple[Path, Path]) -> Iterator[FaultServer]:
    srv = FaultServer(tls=tls_context(*cert))
    try:
        yield srv
    finally:
        srv.stop()


def pdl(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli.main, ["fetch", "--retry-wait", "0", *args])
    return result.exit_code, result.stdout, result.stderr


def test_verification_is_on_by_default_and_fails_clearly(https: FaultServer, dest: Path) -> None:
    https.add("/a.bin", b"secret")
    result = fetch([https.url("/a.bin")], dest=dest, retry_wait=0).results[0]
    assert result.status is Status.FAILED
    assert result.error and result.error.startswith("TLS error:")
    assert "certificate verify failed" in result.error
    assert result.attempts == 1  # a bad certificate does not get better by retrying
    assert list(dest.iterdir()) == [] and https.requests == []  # no request was sent


def test_ca_bundle_verifies_the_server(
    https: FaultServer, dest: Path, cert: tuple[Path, Path]
) -> None:
    https.add("/a.bin", b"trusted")
    code, _out, err = pdl("--ca-bundle", str(cert[0]), "-d", str(dest), https.url("/a.bin"))
    assert code == 0, err
    assert (dest / "a.bin").read_bytes() == b"trusted"
    assert "warning" not in err.lower()


def test_insecure_works_and_warns_once(https: FaultServer, dest: Path) -> None:
    urls = []
    for i in range(6):
        https.add(f"/f{i}.bin", b"x" * i)
        urls.append(https.url(f"/f{i}.bin"))
    code, _out, err = pdl("--insecure", "-j", "3", "-d", str(dest), *urls)
    assert code == 0, err
    assert all((dest / f"f{i}.bin").read_bytes() == b"x" * i for i in range(6))
    assert err.lower().count("warning") == 1 and "--insecure" in err
    assert "InsecureRequestWarning" not in err and "Unverified HTTPS" not in err


def test_insecure_from_the_api_raises_no_warning(https: FaultServer, dest: Path) -> None:
    # pytest turns warnings into errors here: urllib3's per-request warning would fail this
    https.add("/a.bin", b"a")
    report = fetch([https.url("/a.bin")] * 1, dest=dest, insecure=True, retry_wait=0)
    assert report.counts.ok == 1
    assert (dest / "a.bin").read_bytes() == b"a" and len(https.requests_for("/a.bin")) == 1
