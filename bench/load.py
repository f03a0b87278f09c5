"""Load generation with wrk: a separate C process, so the load generator is never the bottleneck.

A Python load generator would saturate a core of this 2-core machine long before the
servers do and distort every ratio, so there is deliberately no fallback.
"""

import json
import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, replace
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
RESULT_MARKER = "BENCH_RESULT "
INSTALL_HINT = (
    "wrk is not installed; the throughput benchmarks need it as their load generator.\n"
    "Install it with `apt-get install wrk` (Debian/Ubuntu), `dnf install wrk` (Fedora) or\n"
    "`brew install wrk` (macOS), then run `make bench` again."
)


class LoadFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Settings:
    connections: int
    threads: int
    duration_s: int
    warmup_s: int


@dataclass(frozen=True, slots=True)
class LoadResult:
    requests: int
    duration_s: float
    requests_per_s: float
    non_2xx_3xx: int
    socket_errors: int
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float
    latency_p99_ms: float
    latency_max_ms: float
    server_cpu_us_per_request: float | None = None

    @property
    def clean(self) -> bool:
        return self.requests > 0 and self.non_2xx_3xx == 0 and self.socket_errors == 0

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) a process has used so far; None where /proc is missing."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def find_wrk() -> str | None:
    return shutil.which("wrk")


def script(workdir: Path, name: str) -> Path:
    """wrk takes one script: the shared part followed by the target's ``request()``."""
    path = workdir / f"{name}.lua"
    path.write_text((LUA / "common.lua").read_text() + "\n" + (LUA / f"{name}.lua").read_text())
    return path


def _parse(output: str) -> LoadResult:
    line = next((x for x in output.splitlines() if x.startswith(RESULT_MARKER)), None)
    if line is None:
        raise LoadFailed(f"wrk printed no result:\n{output}")
    raw = json.loads(line[len(RESULT_MARKER) :])
    duration_s = raw["duration_us"] / 1e6
    return LoadResult(
        requests=raw["requests"],
        duration_s=round(duration_s, 2),
        requests_per_s=round(raw["requests"] / duration_s, 1),
        non_2xx_3xx=raw["errors_status"],
        socket_errors=sum(raw[f"errors_{k}"] for k in ("connect", "read", "write", "timeout")),
        latency_mean_ms=round(raw["latency_mean_us"] / 1000, 2),
        latency_p50_ms=round(raw["latency_p50_us"] / 1000, 2),
        latency_p90_ms=round(raw["latency_p90_us"] / 1000, 2),
        latency_p99_ms=round(raw["latency_p99_us"] / 1000, 2),
        latency_max_ms=round(raw["latency_max_us"] / 1000, 2),
    )


def run(
    wrk: str, url: str, lua: Path, args: list[str], *, settings: Settings, seconds: int
) -> LoadResult:
    command = [
        wrk, f"-t{settings.threads}", f"-c{settings.connections}", f"-d{seconds}s",
        "--timeout", "10s", "-s", str(lua), url, "--", *args,
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise LoadFailed(f"wrk failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return _parse(done.stdout)


def measure(
    wrk: str, url: str, lua: Path, args: list[str], settings: Settings, *, server_pid: int
) -> LoadResult:
    """A warm-up (pool connections, prepared statements, caches), then the measured run.

    Also reports the server's CPU time per request over the measured run: on a shared
    2-core machine it is steadier than requests per second, and says where a gap comes from.
    """
    if settings.warmup_s:
        run(wrk, url, lua, args, settings=settings, seconds=settings.warmup_s)
    before = cpu_seconds(server_pid)
    result = run(wrk, url, lua, args, settings=settings, seconds=settings.duration_s)
    after = cpu_seconds(server_pid)
    if before is None or after is None or not result.requests:
        return result
    return replace(
        result, server_cpu_us_per_request=round((after - before) / result.requests * 1e6, 1)
    )
