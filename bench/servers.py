"""The servers under test, each a uvicorn subprocess with one worker on a free local port."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

PROJECT_ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
READY_TIMEOUT_SECONDS = 60.0


class ServerFailed(RuntimeError):
    pass


@dataclass(frozen=True, slots=True)
class Running:
    name: str
    base_url: str
    pid: int
    log: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _environment(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without any CRM_/BENCH_ setting, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "BENCH_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


@contextmanager
def _started(
    name: str, command: list[str], env: dict[str, str], workdir: Path
) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = workdir / f"{name}.log"
    with open(log, "ab") as out:
        # cwd is the scratch folder, so a developer's .env cannot change what is measured.
        process = subprocess.Popen(
            command, env=env, cwd=workdir, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield process, log
    finally:
        _stop(process)


@contextmanager
def _serve(
    name: str, command: list[str], env: dict[str, str], workdir: Path, port: int, ready_path: str
) -> Iterator[Running]:
    base_url = f"http://{HOST}:{port}"
    with _started(name, command, env, workdir) as (process, log):
        _wait_ready(name, process, base_url + ready_path, log)
        yield Running(name, base_url, process.pid, log)


def _wait_ready(name: str, process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerFailed(f"{name} exited with {process.returncode}:\n{_tail(log)}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise ServerFailed(f"{name} was not ready within {READY_TIMEOUT_SECONDS:.0f} s:\n{_tail(log)}")


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=25)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def ceiling(database_url: str, pool_size: int, workdir: Path) -> AbstractContextManager[Running]:
    port = free_port()
    command = [
        sys.executable, "-m", "uvicorn", "bench.ceiling:create_app", "--factory",
        "--host", HOST, "--port", str(port), "--workers", "1",
        "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    env = _environment({"BENCH_DATABASE_URL": database_url, "BENCH_POOL_SIZE": str(pool_size)})
    return _serve("ceiling", command, env, workdir, port, "/healthz")


def crm_api(
    database_url: str,
    pool_size: int,
    workdir: Path,
    *,
    access_log: bool,
    rate_limit_per_minute: int = 0,
) -> AbstractContextManager[Running]:
    """The app as operators run it: `crm-api serve`, one worker, JSON logs to a file.

    Rate limiting is off (0) unless a limit is given: load from one key would trip it."""
    port = free_port()
    command = [
        sys.executable, "-c", "from crm_api.cli import app; app()", "serve",
        "--host", HOST, "--port", str(port), "--workers", "1", "--no-migrate",
    ]  # fmt: skip
    env = _environment(
        {
            "CRM_DATABASE_URL": database_url,
            "CRM_POOL_SIZE": str(pool_size),
            "CRM_POOL_MIN_SIZE": str(pool_size),
            "CRM_ACCESS_LOG": "true" if access_log else "false",
            "CRM_LOG_LEVEL": "INFO",
            "CRM_BOOTSTRAP_ADMIN_KEY": "false",
            "CRM_RATE_LIMIT_PER_MINUTE": str(rate_limit_per_minute),
        }
    )
    name = "crm-api" if access_log else "crm-api-no-access-log"
    return _serve(name, command, env, workdir, port, "/readyz")


def receiver(workdir: Path) -> AbstractContextManager[Running]:
    """The webhook receiver (bench/receiver.py): answers 200 at once, records arrivals."""
    port = free_port()
    command = [sys.executable, "-m", "bench.receiver", "--port", str(port)]
    return _serve("receiver", command, _environment({}), workdir, port, "/healthz")


@dataclass(frozen=True, slots=True)
class Worker:
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def check(self) -> None:
        """Raise ServerFailed when the worker has exited."""
        if self.process.poll() is not None:
            raise ServerFailed(
                f"crm-api worker exited with {self.process.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self) -> str:
        return _tail(self.log)


@contextmanager
def worker(database_url: str, workdir: Path, concurrency: int) -> Iterator[Worker]:
    """`crm-api worker` as operators run it, ``concurrency`` deliveries in flight at most.

    It serves no HTTP, so there is nothing to wait for here: the caller knows it is ready
    when a first delivery arrives. The test environment lets it deliver to loopback.
    """
    command = [sys.executable, "-c", "from crm_api.cli import app; app()", "worker", "--no-migrate"]
    env = _environment(
        {
            "CRM_DATABASE_URL": database_url,
            "CRM_ENVIRONMENT": "test",
            "CRM_LOG_LEVEL": "INFO",
            "CRM_WORKER_CONCURRENCY": str(concurrency),
        }
    )
    with _started("crm-api-worker", command, env, workdir) as (process, log):
        yield Worker(process, log)
