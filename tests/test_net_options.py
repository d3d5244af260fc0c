"""--cookies, --netrc, --resolve, -4 / -6: the pure values, and what the server sees.

Requests are asserted at the FaultServer (a second FaultServer is the other origin
of a redirect) and downloads by their bytes on disk.
"""

from __future__ import annotations

import base64
import pickle
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from downloader import cli
from downloader.api import fetch
from downloader.cookies import CookieJar, load_cookies, parse_cookie_line, parse_cookies
from downloader.credentials import load_netrc, netrc_path
from downloader.errors import UsageError
from downloader.options import Options, Resolve, parse_resolve
from tests.conftest import RecordingReporter
from tests.server import FaultServer, self_signed_cert, tls_context

NOW = 1_800_000_000
FUTURE = NOW + 10**6


def pdl(*args: str) -> Result:
    return CliRunner().invoke(cli.main, list(args), catch_exceptions=False)


def basic(credentials: str) -> str:
    return "Basic " + base64.b64encode(credentials.encode()).decode()


def cookie_line(
    domain: str,
    name: str,
    value: str = "v",
    *,
    subdomains: bool = False,
    path: str = "/",
    secure: bool = False,
    expires: int = 0,
) -> str:
    flags = ["TRUE" if subdomains else "FALSE", path, "TRUE" if secure else "FALSE"]
    return "\t".join([domain, flags[0], flags[1], flags[2], str(expires), name, value]) + "\n"


@pytest.fixture
def other() -> Iterator[FaultServer]:
    """A second server: another origin (another port of 127.0.0.1)."""
    srv = FaultServer()
    try:
        yield srv
    finally:
        srv.stop()


def port_of(server: FaultServer) -> int:
    return int(server.base_url.rsplit(":", 1)[1])


# -- cookies.txt, pure -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "url", "sent"),
    [
        (cookie_line("example.org", "a"), "http://example.org/x", True),
        (cookie_line("example.org", "a"), "http://www.example.org/x", False),  # host-only
        (cookie_line(".example.org", "a", subdomains=True), "http://www.example.org/", True),
        (cookie_line("example.org", "a", subdomains=True), "http://example.org/", True),
        (cookie_line("example.org", "a", subdomains=True), "http://badexample.org/", False),
        (cookie_line("example.org", "a", path="/docs"), "http://example.org/docs", True),
        (cookie_line("example.org", "a", path="/docs"), "http://example.org/docs/a", True),
        (cookie_line("example.org", "a", path="/docs"), "http://example.org/docsx", False),
        (cookie_line("example.org", "a", path="/docs/"), "http://example.org/docs/a", True),
        (cookie_line("example.org", "a", path="/docs"), "http://example.org/", False),
        (cookie_line("example.org", "a", secure=True), "http://example.org/", False),
        (cookie_line("example.org", "a", secure=True), "https://example.org/", True),
        (cookie_line("example.org", "a", expires=NOW - 1), "http://example.org/", False),
        (cookie_line("example.org", "a", expires=FUTURE), "http://example.org/", True),
        (cookie_line("example.org", "a", expires=0), "http://example.org/", True),  # session
        (cookie_line("EXAMPLE.org", "a"), "http://example.ORG:8080/", True),  # ports: any
        ("#HttpOnly_" + cookie_line("example.org", "a"), "http://example.org/", True),
    ],
)
def test_a_cookie_goes_only_where_it_belongs(line: str, url: str, sent: bool) -> None:
    jar = parse_cookies([line], "c.txt")
    assert not jar.warnings
    assert jar.header_for(url, now=NOW) == ("a=v" if sent else None)


def test_cookies_longer_paths_first_and_a_later_duplicate_replaces() -> None:
    jar = parse_cookies(
        [
            cookie_line("h.test", "root", "1"),
            cookie_line("h.test", "deep", "2", path="/a/b"),
            cookie_line("h.test", "root", "3"),
            "# Netscape HTTP Cookie File\n",
            "\n",
        ],
        "c.txt",
    )
    assert jar.header_for("http://h.test/a/b/c", now=NOW) == "deep=2; root=3"


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("example.org\tFALSE\t/\tFALSE\t0\n", "7 TAB-separated fields, found 5"),
        ("example.org FALSE / FALSE 0 a b\n", "found 1"),
        ("example.org\tYES\t/\tFALSE\t0\ta\tb\n", "TRUE or FALSE"),
        ("example.org\tFALSE\tdocs\tFALSE\t0\ta\tb\n", "must begin with '/'"),
        ("example.org\tFALSE\t/\tFALSE\tsoon\ta\tb\n", "expiry"),
        ("\tFALSE\t/\tFALSE\t0\ta\tb\n", "not a domain"),
        ("example.org\tFALSE\t/\tFALSE\t0\ta b\tc\n", "not a cookie name"),
        ("example.org\tFALSE\t/\tFALSE\t0\ta\tb;c=d\n", "value"),
    ],
)
def test_a_malformed_cookies_line_is_named_and_skipped(line: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse_cookie_line(line)
    jar = parse_cookies([cookie_line("h.test", "ok"), line], "jar.txt")
    assert [c.name for c in jar.cookies] == ["ok"]
    (warning,) = jar.warnings
    assert warning.startswith("jar.txt:2: bad cookies line, skipped: ")


def test_an_unreadable_cookies_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--cookies: cannot read"):
        load_cookies(tmp_path / "missing.txt")
    result = pdl("fetch", "--cookies", str(tmp_path / "missing.txt"), "http://127.0.0.1:9/a")
    assert result.exit_code == 2 and "--cookies" in result.output


def test_cookie_values_are_not_in_a_repr() -> None:
    jar = parse_cookies([cookie_line("h.test", "session", "SECRET")], "c.txt")
    assert "SECRET" not in repr(jar) and "SECRET" not in repr(Options(cookies=jar))


# -- cookies, against the server -----------------------------------------------------------


def test_cookies_reach_only_their_own_domain_path_and_scheme(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    port = port_of(server)
    for path in ("/docs/a", "/b"):
        server.add(path, path.encode() * 100)
    jar = tmp_path / "cookies.txt"
    jar.write_text(
        cookie_line("127.0.0.1", "host")
        + cookie_line(".example.test", "dom", subdomains=True)
        + cookie_line("files.example.test", "exact")
        + cookie_line("other.example.test", "elsewhere")
        + cookie_line("127.0.0.1", "docs", path="/docs")
        + cookie_line("127.0.0.1", "secure", secure=True)
        + cookie_line("127.0.0.1", "old", expires=NOW - 10**9)
        + cookie_line("127.0.0.1", "later", expires=FUTURE + 10**9)
    )
    named = f"http://files.example.test:{port}"
    urls = [server.url("/docs/a"), server.url("/b"), f"{named}/docs/a out=named"]
    report = fetch(
        urls, dest=dest, cookies=jar, resolve=[f"files.example.test:{port}:127.0.0.1"], jobs=1
    )
    assert report.exit_code == 0
    assert (dest / "a").read_bytes() == b"/docs/a" * 100
    assert (dest / "named").read_bytes() == b"/docs/a" * 100
    assert (dest / "b").read_bytes() == b"/b" * 100
    seen = {(r.path, r.header("host")): r.header("cookie") for r in server.requests}
    assert seen == {
        ("/docs/a", f"127.0.0.1:{port}"): "docs=v; host=v; later=v",
        ("/b", f"127.0.0.1:{port}"): "host=v; later=v",
        ("/docs/a", f"files.example.test:{port}"): "dom=v; exact=v",
    }


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI")
def test_a_secure_cookie_goes_over_https_only(
    server: FaultServer, dest: Path, tmp_path: Path
) -> None:
    crt, key = self_signed_cert(tmp_path)
    jar = tmp_path / "cookies.txt"
    jar.write_text(cookie_line("127.0.0.1", "s", "1", secure=True) + cookie_line("127.0.0.1", "p"))
    server.add("/plain", b"p" * 10)
    with FaultServer(tls=tls_context(crt, key)) as tls:
        tls.add("/tls", b"t" * 10)
        report = fetch(
            [server.url("/plain"), tls.url("/tls")], dest=dest, cookies=jar, insecure=True
        )
        assert report.exit_code == 0
        assert [r.header("cookie") for r in tls.requests_for("/tls")] == ["s=1; p=v"]
    assert [r.header("cookie") for r in server.requests_for("/plain")] == ["p=v"]
    assert (dest / "tls").read_bytes() == b"t" * 10


def test_no_cookie_after_a_redirect_to_another_origin(
    server: FaultServer, other: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """Cookies do not care for ports, so the jar's cookie is for the other server too:
    curl -L sends it there; pdl sends nothing to another origin."""
    other.add("/there", b"there" * 10)
    server.add("/here", b"here" * 10)
    server.redirect("/away", other.url("/there"))
    server.redirect("/stay", server.url("/here"))
    jar = tmp_path / "cookies.txt"
    jar.write_text(cookie_line("127.0.0.1", "c", "1"))
    report = fetch(
        [server.url("/away"), server.url("/stay"), other.url("/there out=direct")],
        dest=dest,
        cookies=jar,
        jobs=1,
    )
    assert report.exit_code == 0
    assert (dest / "away").read_bytes() == b"there" * 10
    assert (dest / "stay").read_bytes() == b"here" * 10
    assert [r.header("cookie") for r in server.requests_for("/away")] == ["c=1"]
    assert [r.header("cookie") for r in server.requests_for("/here")] == ["c=1"]  # same origin
    there = [r.header("cookie") for r in other.requests_for("/there")]
    assert sorted(there, key=str) == [None, "c=1"]  # the direct one only


def test_a_cookie_header_given_with_h_wins(server: FaultServer, dest: Path, tmp_path: Path) -> None:
    server.add("/a", b"a")
    jar = tmp_path / "cookies.txt"
    jar.write_text(cookie_line("127.0.0.1", "c", "1"))
    fetch([server.url("/a")], dest=dest, cookies=jar, headers=["Cookie: mine=2"])
    assert [r.header("cookie") for r in server.requests] == ["mine=2"]


def test_a_bad_cookies_line_is_warned_of_and_the_run_goes_on(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/a", b"abc")
    jar = tmp_path / "cookies.txt"
    jar.write_text("# Netscape HTTP Cookie File\nnot a cookie\n" + cookie_line("127.0.0.1", "c"))
    monkeypatch.chdir(tmp_path)
    result = pdl("fetch", "--cookies", "cookies.txt", "-d", "out", server.url("/a"))
    assert result.exit_code == 0, result.output
    assert "pdl: warning: cookies.txt:2: bad cookies line, skipped" in result.stderr
    assert (tmp_path / "out" / "a").read_bytes() == b"abc"
    assert [r.header("cookie") for r in server.requests] == ["c=v"]
    recorder = RecordingReporter()  # the API: the warning is a message to the reporter
    fetch([server.url("/a")], dest=tmp_path / "api", cookies=jar, reporter=recorder)
    assert any("cookies.txt:2: bad cookies line" in m for m in recorder.messages)


# -- netrc ---------------------------------------------------------------------------------


def write_netrc(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_netrc_matches_the_host_exactly_else_default(tmp_path: Path) -> None:
    creds = load_netrc(
        write_netrc(
            tmp_path / "netrc",
            "machine example.org login u password p\n"
            "machine EXAMPLE.net login n password q\n"
            "default login anon password guest\n",
        )
    )
    assert creds.for_url("https://example.org/x") == "u:p"
    assert creds.for_url("https://example.org:8443/x") == "u:p"
    assert creds.for_url("https://example.net/") == "n:q"
    assert creds.for_url("https://www.example.org/") == "anon:guest"  # not a subdomain match
    assert "guest" not in repr(creds) and creds.warnings == ()
    no_default = load_netrc(write_netrc(tmp_path / "n2", "machine example.org login u\n"))
    assert no_default.for_url("https://example.com/") is None
    assert no_default.for_url("https://example.org/") == "u:"


def test_netrc_path_is_netrc_else_home(tmp_path: Path) -> None:
    assert netrc_path({"NETRC": str(tmp_path / "n"), "HOME": "/h"}) == tmp_path / "n"
    assert netrc_path({"HOME": "/h"}) == Path("/h/.netrc")


def test_netrc_bad_or_missing_file_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = write_netrc(tmp_path / "bad", "machine\n")
    with pytest.raises(UsageError, match=r"--netrc: .*bad:\d+: missing .machine. name"):
        load_netrc(bad)
    monkeypatch.setenv("NETRC", str(tmp_path / "missing"))
    result = pdl("fetch", "--netrc", "http://127.0.0.1:9/a")
    assert result.exit_code == 2 and "--netrc: cannot read" in result.output


def test_netrc_credentials_go_to_their_host_and_url_credentials_win(
    server: FaultServer, dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = port_of(server)
    for path in ("/a", "/b", "/c"):
        server.add(path, path.encode() * 50)
    netrc = write_netrc(
        tmp_path / "netrc",
        "machine 127.0.0.1 login user password secret\n"
        "machine files.example.test login other password word\n",
    )
    monkeypatch.setenv("NETRC", str(netrc))
    report = fetch(
        [
            server.url("/a"),
            f"http://me:mine@127.0.0.1:{port}/b",
            f"http://files.example.test:{port}/c",
        ],
        dest=dest,
        netrc=True,
        resolve=[f"files.example.test:{port}:127.0.0.1"],
        jobs=1,
    )
    assert report.exit_code == 0
    assert (dest / "a").read_bytes() == b"/a" * 50 and (dest / "c").read_bytes() == b"/c" * 50
    auth = {r.path: r.header("authorization") for r in server.requests}
    assert auth == {"/a": basic("user:secret"), "/b": basic("me:mine"), "/c": basic("other:word")}


def test_netrc_default_entry_and_no_credential_after_a_redirect_elsewhere(
    server: FaultServer, other: FaultServer, dest: Path, tmp_path: Path
) -> None:
    """netrc machines name hosts, not ports: curl --netrc -L sends the credential to
    the other port too; pdl sends none after a redirect to another origin."""
    other.add("/there", b"t" * 20)
    server.redirect("/away", other.url("/there"))
    server.add("/here", b"h" * 20)
    server.redirect("/stay", server.url("/here"))
    netrc = write_netrc(tmp_path / "netrc", "default login anon password guest\n")
    report = fetch([server.url("/away"), server.url("/stay")], dest=dest, netrc=netrc, jobs=1)
    assert report.exit_code == 0
    assert (dest / "away").read_bytes() == b"t" * 20
    assert [r.header("authorization") for r in server.requests_for("/away")] == [
        basic("anon:guest")
    ]
    assert [r.header("authorization") for r in other.requests_for("/there")] == [None]
    assert [r.header("authorization") for r in server.requests_for("/here")] == [
        basic("anon:guest")
    ]


def test_a_netrc_others_can_read_is_warned_of_once(
    server: FaultServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server.add("/a", b"a")
    server.add("/b", b"b")
    netrc = write_netrc(tmp_path / "netrc", "machine 127.0.0.1 login u password p\n", 0o644)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.chdir(tmp_path)
    result = pdl("fetch", "--netrc", "-d", "out", server.url("/a"), server.url("/b"))
    assert result.exit_code == 0, result.output
    assert result.stderr.count("is readable by others (mode 0644)") == 1
    assert "chmod 600" in result.stderr
    assert [r.header("authorization") for r in server.requests] == [basic("u:p")] * 2
    netrc.chmod(0o600)
    result = pdl("fetch", "--netrc", "-d", "out2", server.url("/a"))
    assert result.exit_code == 0 and "readable" not in result.stderr


# -- --resolve, -4, -6 ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("files.example:443:127.0.0.1", Resolve("files.example", 443, "127.0.0.1")),
        ("Files.Example.:80:[::1]", Resolve("files.example", 80, "::1")),
        ("h:8080:::1", Resolve("h", 8080, "::1")),
    ],
)
def test_parse_resolve(text: str, expected: Resolve) -> None:
    assert parse_resolve(text) == expected
    assert parse_resolve(str(expected)) == expected


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("files.example:0:127.0.0.1", "port must be between 1 and 65535"),
        ("files.example:65536:127.0.0.1", "port must be between 1 and 65535"),
        ("files.example:443:localhost", "is not an IP address"),
        ("files.example:443:127.0.0.1,10.0.0.1", "is not an IP address"),
        ("files.example:443", "not a --resolve value"),
        ("files.example:https:127.0.0.1", "not a --resolve value"),
        ("files.example:443:[::1", "is not an IP address|not a --resolve value"),
    ],
)
def test_a_bad_resolve_value_is_a_usage_error(text: str, reason: str) -> None:
    with pytest.raises(UsageError, match=reason):
        parse_resolve(text)
    result = pdl("fetch", "--resolve", text, "http://127.0.0.1:9/a")
    assert result.exit_code == 2 and "--resolve" in result.output


def test_resolve_reaches_the_server_under_a_made_up_name(server: FaultServer, dest: Path) -> None:
    port = port_of(server)
    server.add("/a", b"resolved" * 100)
    url = f"http://files.example:{port}/a"
    result = pdl(
        "fetch", url, "-d", str(dest), "--resolve", f"files.example:{port}:127.0.0.1", "-4"
    )
    assert result.exit_code == 0, result.output
    assert (dest / "a").read_bytes() == b"resolved" * 100
    (request,) = server.requests
    assert request.header("host") == f"files.example:{port}"


def test_without_resolve_the_made_up_name_fails(server: FaultServer, dest: Path) -> None:
    port = port_of(server)
    server.add("/a", b"x")
    report = fetch([f"http://files.example.invalid:{port}/a"], dest=dest, retries=0)
    assert report.exit_code == 1 and not server.requests


def test_ipv4_works_against_127_0_0_1(server: FaultServer, dest: Path) -> None:
    """``localhost`` is ::1 and 127.0.0.1 to libcurl; the server listens on the latter."""
    server.add("/a", b"four" * 10)
    report = fetch(
        [server.url("/a"), f"http://localhost:{port_of(server)}/a out=b"], dest=dest, ipv4=True
    )
    assert report.exit_code == 0 and (dest / "a").read_bytes() == b"four" * 10
    assert (dest / "b").read_bytes() == b"four" * 10


def test_ipv6_only_drops_the_ipv4_addresses_of_a_name(server: FaultServer, dest: Path) -> None:
    """A name whose only address is IPv4 is not resolved under -6 (an IP literal in the URL
    is connected to whatever -4 / -6 say: libcurl resolves names only)."""
    port = port_of(server)
    server.add("/a", b"x")
    report = fetch(
        [f"http://files.example:{port}/a", f"http://localhost:{port}/a out=b"],
        dest=dest,
        ipv6=True,
        resolve=[f"files.example:{port}:127.0.0.1"],
        retries=0,
    )
    errors = sorted(r.error or "" for r in report.failed)
    assert len(errors) == 2 and not server.requests
    assert "Could not resolve host: files.example" in errors[0]


def test_4_and_6_together_are_a_usage_error() -> None:
    result = pdl("fetch", "-4", "-6", "http://127.0.0.1:9/a")
    assert result.exit_code == 2 and "-4 and -6 cannot be used together" in result.output
    with pytest.raises(UsageError, match="cannot be used together"):
        Options(ipv4=True, ipv6=True)


def test_options_take_only_loaded_values() -> None:
    with pytest.raises(UsageError, match="CookieJar"):
        Options(cookies="cookies.txt")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="Resolve"):
        Options(resolve=("h:1:127.0.0.1",))  # type: ignore[arg-type]
    assert Options(cookies=CookieJar()).cookies == CookieJar()


def test_env_vars_set_the_new_options(
    server: FaultServer, dest: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    port = port_of(server)
    server.add("/a", b"env")
    jar = tmp_path / "cookies.txt"
    jar.write_text(cookie_line("files.example", "e"))
    monkeypatch.setenv("PDL_RESOLVE", f"files.example:{port}:127.0.0.1 other.example:1:[::1]")
    monkeypatch.setenv("PDL_COOKIES", str(jar))
    monkeypatch.setenv("PDL_IPV4", "1")
    result = pdl("fetch", "-d", str(dest), f"http://files.example:{port}/a")
    assert result.exit_code == 0, result.output
    assert [r.header("cookie") for r in server.requests] == ["e=v"]
    assert (dest / "a").read_bytes() == b"env"


def test_loaded_values_travel_to_cluster_workers_intact(tmp_path: Path) -> None:
    """A Dask worker gets the jar and the credentials, not paths it may not be able to read."""
    jar = parse_cookies([cookie_line("h.test", "c", "1")], "c.txt")
    creds = load_netrc(write_netrc(tmp_path / "netrc", "machine h.test login u password p\n"))
    options = Options(cookies=jar, netrc=creds, resolve=(parse_resolve("h.test:80:[::1]"),))
    copy = pickle.loads(pickle.dumps(options))
    assert copy == options and copy.netrc is not None
    assert copy.netrc.for_url("http://h.test/") == "u:p"
