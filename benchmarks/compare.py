"""pdl side by side with aria2c, curl, wget2 and axel, against a real nginx on 127.0.0.1.

    python benchmarks/compare.py                      # every default scenario, 3 reps
    python benchmarks/compare.py --scenarios small,latency --tools pdl,curl --reps 5
    python benchmarks/compare.py --sizes small=500x16K,large=2x64M --disk /var/tmp
    python benchmarks/compare.py --scenarios latency64,latency256,https   # those of issue 11
    python benchmarks/compare.py --smoke              # tiny corpora, 1 rep, installed tools only

Generates each scenario's corpus, serves it with nginx (installed with apt-get if
missing, like the peers), runs every tool in turn for each repetition (the order
rotates), checks every downloaded file (size and sha256 against the corpus) and prints
the median wall time, files/s, MiB/s, CPU seconds (user+sys of the tool and its
children), peak RSS and each tool's time as a ratio to pdl's. Downloads go to
/dev/shm unless --disk DIR. Limits: ``read`` is one curl reading the same bytes to
/dev/null over the same number of connections; ``copy`` is ``cp -R`` of the files.
Progress goes to stderr; the table (or --json) to stdout.

Scenarios with a -j of their own (``latency64``, ``latency256``) run every tool at that
-j. The relay that adds their round trip runs in this process, on the same cores as the
tools. ``https`` is served by the same nginx over TLS with HTTP/2 offered (a self-signed
certificate made by ``openssl``, which every tool verifies); curl gets ``--http2``, wget2
uses HTTP/2 by default, aria2c speaks HTTP/1.1 only. Rows ``pdl --threads N`` (1, the
CPU count and the scenario's -j by default) and, over TLS, ``pdl --http 1.1`` are added
only where the pdl being measured lists those options in ``pdl fetch --help``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.corpus import (  # noqa: E402
    DEFAULT_SCENARIOS,
    SCENARIOS,
    SMOKE,
    SMOKE_DEFAULT,
    MiB,
    Scenario,
    verify,
    write_corpus,
)
from benchmarks.relay import DelayRelay  # noqa: E402
from benchmarks.serve import Fallback, Nginx, Server, nginx_available  # noqa: E402
from benchmarks.tools import (  # noqa: E402
    DEFAULT_TOOLS,
    GNU_TIME,
    TOOLS,
    Job,
    Outcome,
    Tool,
    measure,
    pdl_at,
    pdl_env,
    pdl_has,
    pdl_lacks_split,
    rss_source,
)

GiB_F = float(1024**3)


@dataclass
class Row:
    tool: str
    status: str = "ok"  # ok | failed | n/a | not installed
    note: str = ""
    runs: list[Outcome] = field(default_factory=list)
    limit: bool = False
    verified: bool = False

    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    def summary(self, scenario: Scenario, pdl_wall: float | None) -> dict[str, object]:
        out: dict[str, object] = {"tool": self.tool, "status": self.status, "note": self.note}
        out["limit"] = self.limit
        out["verified"] = self.verified
        if self.status != "ok" or not self.runs:
            return out
        wall = self.wall()
        cpu = statistics.median(r.cpu for r in self.runs)
        out |= {
            "wall_s": round(wall, 4),
            "walls_s": [round(r.wall, 4) for r in self.runs],
            "files_per_s": round(scenario.count / wall, 1),
            "mib_per_s": round(scenario.total / MiB / wall, 1),
            "cpu_s": round(cpu, 3),
            "cpu_s_per_gib": round(cpu / (scenario.total / GiB_F), 3),
            "rss_mib": round(max(r.rss_kib for r in self.runs) / 1024, 1),
            "vs_pdl": round(wall / pdl_wall, 3) if pdl_wall else None,
        }
        return out


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    text = text.strip().upper().removesuffix("IB").removesuffix("B")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


def pick_scenarios(args: argparse.Namespace) -> list[Scenario]:
    table = SMOKE if args.smoke else SCENARIOS
    default = SMOKE_DEFAULT if args.smoke else DEFAULT_SCENARIOS
    names = args.scenarios.split(",") if args.scenarios else list(default)
    unknown = [n for n in names if n not in table]
    if unknown:
        raise SystemExit(f"unknown scenario {unknown[0]!r}; choose from {', '.join(table)}")
    chosen = {n: table[n] for n in names}
    for item in filter(None, (args.sizes or "").split(",")):
        name, _, spec = item.partition("=")
        count, _, size = spec.lower().partition("x")
        if name not in chosen or not count or not size:
            raise SystemExit(f"--sizes wants NAME=COUNTxSIZE for a chosen scenario, not {item!r}")
        chosen[name] = dataclasses.replace(chosen[name], count=int(count), size=parse_size(size))
    if args.rtt is not None:
        chosen = {
            n: dataclasses.replace(s, rtt=args.rtt) if s.rtt else s for n, s in chosen.items()
        }
    if args.rate is not None:
        rate = parse_size(args.rate)
        chosen = {n: dataclasses.replace(s, rate=rate) if s.rate else s for n, s in chosen.items()}
    return list(chosen.values())


def pick_tools(args: argparse.Namespace) -> list[Tool]:
    names = args.tools.split(",") if args.tools else list(DEFAULT_TOOLS)
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise SystemExit(f"unknown tool {unknown[0]!r}; choose from {', '.join(TOOLS)}")
    if "pdl" not in names:
        names.insert(0, "pdl")  # ratios are to pdl's time
    tools = [pdl_at(args.pdl_root) if n == "pdl" else TOOLS[n] for n in names]
    at = names.index("pdl") + 1
    tools[at:at] = [pdl_at(root, f"pdl@{root.resolve().name}") for root in args.also_pdl]
    at += len(args.also_pdl)
    tools[at:at] = [pdl_at(args.pdl_root, f"pdl -j {n}", n) for n in args.pdl_jobs]
    return tools


def threads_levels(spec: list[str], jobs: int) -> list[int]:
    """``--pdl-threads`` words (a number, ``cpus``, ``j``) as distinct counts, none above -j."""
    levels: list[int] = []
    for word in spec:
        if word == "cpus":
            n = os.cpu_count() or 1
        elif word == "j":
            n = jobs
        else:
            n = int(word)
        n = min(n, jobs)
        if n not in levels:
            levels.append(n)
    return levels


_SAID_MISSING: set[str] = set()


def scenario_tools(tools: list[Tool], scenario: Scenario, args: argparse.Namespace) -> list[Tool]:
    """The run's tools plus this scenario's pdl rows: ``--threads`` levels at its -j and,
    over TLS, ``--http 1.1``; rows whose option this pdl lacks are left out (said once)."""
    jobs = scenario.jobs or args.jobs
    extra = [
        pdl_at(
            args.pdl_root, f"pdl --threads {n}", None, ("--threads", str(n)), needs=("--threads",)
        )
        for n in threads_levels(args.pdl_threads, jobs)
    ]
    if not args.tools:  # with --tools, only the rows asked for
        extra.append(
            pdl_at(
                args.pdl_root,
                "pdl --http 1.1",
                None,
                ("--http", "1.1"),
                needs=("--http",),
                tls_only=True,
            )
        )
    kept = []
    for tool in extra:
        missing = [o for o in tool.needs if not pdl_has(args.pdl_root, o)]
        if not missing:
            kept.append(tool)
        elif missing[0] not in _SAID_MISSING:
            _SAID_MISSING.add(missing[0])
            say(f"this pdl has no {missing[0]}: its rows are left out")
    at = max(i for i, tool in enumerate(tools) if tool.pdl_root) + 1
    return [*tools[:at], *kept, *tools[at:]]


def install_missing(tools: list[Tool], need_nginx: bool) -> None:
    """apt-get install what is missing (never in smoke mode, never without root)."""
    packages = sorted({t.package for t in tools if t.package and not t.available()})
    if need_nginx and not nginx_available():
        packages.append("nginx")
    if not GNU_TIME.exists():
        packages.append("time")  # the tools' own peak RSS
    if not packages:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        say(f"missing {', '.join(packages)}; not root or no apt-get, so their rows are skipped")
        return
    say(f"installing {', '.join(packages)} with apt-get")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", *packages]):
        subprocess.run(argv, stdout=subprocess.DEVNULL, env=env, check=False)


def run_scenario(
    scenario: Scenario,
    tools: list[Tool],
    args: argparse.Namespace,
    server: Server,
    paths: dict[str, Path],
    digests: dict[str, str],
) -> list[Row]:
    asked = bool(args.tools)
    rows: dict[str, Row] = {}
    tools = scenario_tools(tools, scenario, args)
    by_name = {tool.name: tool for tool in tools}
    for tool in tools:
        if not tool.applies(scenario, asked):
            continue
        row = rows[tool.name] = Row(tool.name, limit=tool.limit)
        if not tool.available():
            row.status, row.note = "not installed", f"apt-get install {tool.package}"
        elif tool.pdl_root and scenario.split:
            reason = pdl_lacks_split(tool.pdl_root)
            if reason:
                row.status, row.note = "n/a", reason
    if scenario.tls and server.tls_port is None:
        for row in rows.values():
            if row.status == "ok":
                row.status, row.note = "n/a", f"{server.name} serves no TLS (needs nginx)"
    target = server.tls_port if scenario.tls and server.tls_port else server.port
    relay = DelayRelay(target, scenario.rtt) if scenario.rtt else None
    port = relay.port if relay else target
    work = paths["work"] / scenario.name
    work.mkdir(parents=True, exist_ok=True)
    job = Job(
        scenario=scenario,
        base=f"{'https' if scenario.tls else 'http'}://127.0.0.1:{port}/{scenario.name}/",
        source=paths["corpus"] / scenario.name,
        out=paths["downloads"] / f"pdl-bench-{os.getpid()}-{scenario.name}",
        work=work,
        jobs=scenario.jobs or args.jobs,
        split=args.split,
        ca=server.ca if scenario.tls else None,
    )
    try:
        runnable = [r for r in rows.values() if r.status == "ok"]
        for rep in range(args.reps):
            shift = rep % len(runnable) if runnable else 0
            for row in runnable[shift:] + runnable[:shift]:
                if row.status == "ok":
                    run_once(by_name[row.tool], job, row, digests)
            say(f"  {scenario.name} rep {rep + 1}/{args.reps} done")
    finally:
        if relay:
            relay.stop()
        shutil.rmtree(job.out, ignore_errors=True)
    return list(rows.values())


def run_once(tool: Tool, job: Job, row: Row, digests: dict[str, str]) -> None:
    shutil.rmtree(job.out, ignore_errors=True)
    if tool.name != "copy":
        job.out.mkdir(parents=True)
    env = pdl_env(tool.pdl_root) if tool.pdl_root else None
    outcome = measure(tool.command(job), env=env, cwd=job.work, log=job.work / "stderr.txt")
    said = " / ".join(outcome.stderr.splitlines()[-3:])
    if tool.pdl_root and job.scenario.split and outcome.code == 2:
        row.status, row.note = "n/a", f"pdl rejected -s: {said}"
        shutil.rmtree(job.out, ignore_errors=True)
        return
    fault = None
    if outcome.code != 0:
        fault = f"exit {outcome.code}: {said}"
    elif tool.writes:
        fault = verify(job.out, job.scenario, digests)
    shutil.rmtree(job.out, ignore_errors=True)
    if fault:
        row.status, row.note = "failed", fault
        say(f"  {tool.name} FAILED: {fault}")
        return
    row.runs.append(outcome)
    row.verified = tool.writes


def table(report: dict[str, object]) -> str:
    lines = [
        f"server {report['server']}, downloads in {report['downloads']}, "
        f"-j {report['jobs']}, median of {report['reps']} run(s); peak RSS by {report['rss']}",
    ]
    head = ("tool", "wall s", "files/s", "MiB/s", "cpu s", "cpu/GiB", "rss MiB", "vs pdl", "check")
    for scen in report["scenarios"]:  # type: ignore[attr-defined]
        lines += ["", f"{scen['name']}: {scen['label']}", "| " + " | ".join(head) + " |"]
        lines.append("|" + "---|" * len(head))
        for row in scen["rows"]:
            name = row["tool"] + (" (limit)" if row["limit"] else "")
            if row["status"] != "ok":
                cells = [name, *["-"] * 7, f"{row['status']} {row['note']}".strip()]
            else:
                ratio = f"{row['vs_pdl']:.2f}x" if row["vs_pdl"] else "-"
                check = "verified" if row["verified"] else "(not written)"
                cells = [
                    name,
                    f"{row['wall_s']:.2f}",
                    f"{row['files_per_s']:,.0f}",
                    f"{row['mib_per_s']:,.0f}",
                    f"{row['cpu_s']:.2f}",
                    f"{row['cpu_s_per_gib']:.2f}",
                    f"{row['rss_mib']:.0f}",
                    ratio,
                    check,
                ]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="scenarios: "
        + "; ".join(f"{s.name} = {s.label()}" for s in SCENARIOS.values())
        + f". Default: {','.join(DEFAULT_SCENARIOS)}. tools: {', '.join(TOOLS)}.",
    )
    add = parser.add_argument
    add(
        "--scenarios",
        help="comma-separated scenario names (default: all but many; --smoke: the four of issue 5)",
    )
    add("--tools", help="comma-separated tools (default: all but wget; pdl is always run)")
    add("--sizes", help="override corpora, e.g. small=500x16K,large=2x64M")
    add("--rtt", type=float, help="round trip in seconds for the latency scenario")
    add("--rate", help="per-connection cap for the capped scenario, e.g. 25M")
    add("--reps", type=int, help="repetitions (median is shown); default 3, smoke 1")
    add("-j", "--jobs", type=int, default=8, help="parallel downloads for every tool")
    add(
        "--pdl-jobs",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[],
        metavar="N,N",
        help="extra pdl rows at these -j, e.g. 1,32 (scaling, in the same run)",
    )
    add(
        "--pdl-threads",
        type=lambda text: [w for w in text.split(",") if w],
        metavar="N,cpus,j",
        help="extra pdl rows at these --threads (a number, cpus, or j = the scenario's -j); "
        "default 1,cpus,j without --tools, none with it; only for a pdl that has --threads",
    )
    add("--split", type=int, default=8, help="connections per file in the capped scenario")
    add("--disk", type=Path, help="download to this folder on disk instead of /dev/shm")
    add("--tmp", type=Path, help="folder for corpora, configs and (without --disk) downloads")
    add("--pdl-root", type=Path, default=ROOT, help="the pdl checkout to run (default: this one)")
    add(
        "--also-pdl",
        type=Path,
        action="append",
        default=[],
        metavar="PATH",
        help="another pdl checkout, as a row pdl@NAME in the same run (repeatable)",
    )
    add("--json", action="store_true", help="print JSON instead of the table")
    add("--smoke", action="store_true", help="tiny corpora, 1 rep, no apt-get; for the tests")
    add("--python-server", action="store_true", help="serve with the test server, not nginx")
    add("--no-install", action="store_true", help="never apt-get; skip missing tools")
    args = parser.parse_args(argv)
    args.reps = args.reps or (1 if args.smoke else 3)
    if args.pdl_threads is None:
        args.pdl_threads = [] if args.tools else ["1", "cpus", "j"]
    if args.tmp is None:
        shm = Path("/dev/shm")
        args.tmp = shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    scenarios, tools = pick_scenarios(args), pick_tools(args)
    if not (args.smoke or args.no_install):
        install_missing(tools, need_nginx=True)
    top = Path(tempfile.mkdtemp(prefix="pdl-bench-", dir=args.tmp))
    top.chmod(0o755)
    paths = {"corpus": top / "corpus", "work": top / "work", "downloads": args.disk or top}
    server: Server | None = None
    try:
        digests: dict[str, dict[str, str]] = {}
        for scenario in scenarios:
            say(f"writing the {scenario.name} corpus: {scenario.label()}")
            digests[scenario.name] = write_corpus(scenario, paths["corpus"])
        paths["corpus"].chmod(0o755)
        if nginx_available() and not args.python_server:
            tls = any(s.tls for s in scenarios)
            server = Nginx(paths["corpus"], paths["work"] / "nginx", scenarios, tls=tls)
        elif args.smoke or args.python_server:
            server = Fallback(paths["corpus"], scenarios)
        else:
            raise SystemExit("nginx is not installed (apt-get install nginx)")
        report: dict[str, object] = {
            "server": server.name,
            "downloads": str(paths["downloads"]),
            "jobs": args.jobs,
            "reps": args.reps,
            "rss": rss_source(),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "scenarios": [],
        }
        failed = False
        for scenario in scenarios:
            say(f"running {scenario.name}")
            rows = run_scenario(scenario, tools, args, server, paths, digests[scenario.name])
            pdl = next((r for r in rows if r.tool == "pdl" and r.status == "ok"), None)
            pdl_wall = pdl.wall() if pdl else None
            failed |= any(r.status == "failed" for r in rows)
            report["scenarios"].append(  # type: ignore[attr-defined]
                {
                    "name": scenario.name,
                    "label": scenario.label(),
                    "count": scenario.count,
                    "size": scenario.size,
                    "rtt_s": scenario.rtt,
                    "rate": scenario.rate,
                    "rows": [r.summary(scenario, pdl_wall) for r in rows],
                }
            )
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(top, ignore_errors=True)
    print(json.dumps(report, indent=2) if args.json else table(report))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
