"""Start-up failures as a user meets them: `app.py` (and the publisher) run as processes.

Each failure is one line on stderr that names the fix, no traceback, exit code 2. A second
demo says where the first one is and exits; Ctrl-C and SIGTERM stop a demo at any moment;
the embedded PostgreSQL lives as long as the processes using it, even one killed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from services.review.reviewers import ReviewerKeys
from tests.e2e.conftest import ROOT, free_port, wait_for
from tests.integration.test_drafter_check import ModelsServer

# Variables of the developer's environment that would change what is being tested.
_FOREIGN = (
    "POSTGRES_URL",
    "OPENAI",
    "SMTP",
    "CRM_",
    "BILLING_",
    "PAYMENT_",
    "SQS_",
    "CHROMA",
    "API_",
    "EMBEDDED_SQS_PORT",
    "PUBLIC_BASE_URL",
    "LOG_",
    "DATA_DIR",
)


# A start-up failure comes well within this (most of it is importing the stack).
START_FAILURE_SECONDS = 60


def user_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a user starting app.py: data, logs and the knowledge base in
    `tmp_path`, ports of their own, nothing configured beyond `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN)}
    api_port = free_port()
    env.update(
        {
            "DATA_DIR": str(tmp_path / "data"),
            "LOG_DIR": str(tmp_path / "logs"),
            "CHROMA_DB_PATH": str(tmp_path / "chroma"),
            "API_PORT": str(api_port),
            "PUBLIC_BASE_URL": f"http://127.0.0.1:{api_port}",
            "EMBEDDED_SQS_PORT": str(free_port()),
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


def run_app(
    *args: str, env: dict[str, str], cwd: Path = ROOT, script: str = "app.py"
) -> subprocess.CompletedProcess[str]:
    """Run a process that is expected to fail at start; one that starts is stopped (SIGINT,
    so that it stops what it started) and fails the test."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / script), *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=START_FAILURE_SECONDS)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=30)
        raise AssertionError(
            f"still running after {START_FAILURE_SECONDS} s\n{stdout}{stderr}"
        ) from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], *names: str) -> str:
    """Exit code 2, one line on stderr naming each of `names`, no traceback anywhere."""
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], (name, lines[0])
    return lines[0]


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another process already listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


# An unreachable POSTGRES_URL, in every mode a user starts.


@pytest.mark.parametrize("args", [[], ["--api"], ["--demo"], ["500Dn0000IoYa3aIQC"]])
def test_an_unreachable_postgres_url_is_one_line(
    args: list[str], tmp_path: Path, closed_port: int
) -> None:
    url = f"postgresql://payments:s3cret-pw@127.0.0.1:{closed_port}/payments"
    result = run_app(*args, env=user_env(tmp_path, POSTGRES_URL=url))

    line = assert_one_line_failure(result, "POSTGRES_URL", f"127.0.0.1:{closed_port}")
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "refused" in line.lower()
    # What the demo says it starts is what is configured.
    assert "embedded PostgreSQL" not in result.stdout


# A bad .env value, and a missing required setting.


@pytest.mark.parametrize(
    ("line", "names"),
    [
        ("API_PORT=eighty", ("API_PORT", "integer", ".env")),
        ("WORKER_MAX_IN_FLIGHT=0", ("WORKER_MAX_IN_FLIGHT", "greater than or equal to 1")),
        ("LOG_FORMAT=xml", ("LOG_FORMAT", "'text' or 'json'")),
    ],
)
def test_a_bad_env_file_value_names_the_variable(
    line: str, names: tuple[str, ...], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(f"{line}\n")
    env = user_env(tmp_path)
    env.pop(line.split("=")[0], None)  # the environment would win over .env

    result = run_app(env=env, cwd=tmp_path)

    assert_one_line_failure(result, *names)


def test_a_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    url = "mysql://payments:s3cret-pw@db.internal/payments"
    result = run_app(env=user_env(tmp_path, POSTGRES_URL=url))

    assert_one_line_failure(result, "POSTGRES_URL")
    assert "s3cret-pw" not in result.stderr


def test_a_missing_setting_is_named(tmp_path: Path) -> None:
    env = user_env(tmp_path, CRM_BACKEND="salesforce", BILLING_BACKEND="zuora")
    result = run_app("--api", env=env)

    assert_one_line_failure(result, "CRM_BASE_URL", "CRM_ACCESS_TOKEN")


# Ports already taken.


def test_the_api_on_a_taken_port_names_api_port(tmp_path: Path, taken_port: int) -> None:
    env = user_env(tmp_path, API_PORT=str(taken_port))
    result = run_app("--api", env=env)

    assert_one_line_failure(result, "API_PORT", str(taken_port), "in use")


def test_the_demo_on_a_taken_api_port_names_api_port(tmp_path: Path, taken_port: int) -> None:
    result = run_app("--demo", env=user_env(tmp_path, API_PORT=str(taken_port)))

    assert_one_line_failure(result, "API_PORT", str(taken_port))


@pytest.mark.parametrize("args", [["--demo"], []])
def test_a_taken_embedded_sqs_port_names_the_setting(
    args: list[str], tmp_path: Path, taken_port: int
) -> None:
    result = run_app(*args, env=user_env(tmp_path, EMBEDDED_SQS_PORT=str(taken_port)))

    assert_one_line_failure(result, "EMBEDDED_SQS_PORT", str(taken_port), "SQS_QUEUE_URL")


# Publishing with no worker running.


def test_publishing_with_no_worker_running_says_to_start_one(
    tmp_path: Path, closed_port: int
) -> None:
    env = user_env(tmp_path, EMBEDDED_SQS_PORT=str(closed_port))
    result = run_app(env=env, script="utils/publish_sqs_message.py")

    assert_one_line_failure(result, "app.py", "SQS_QUEUE_URL", str(closed_port))


# The drafter, checked at start: a failing one is a visible warning, not a failure.


@pytest.mark.slow
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_the_api_warns_on_a_refused_drafter_key_and_says_so_when_ready(
    log_format: str, tmp_path: Path, postgres_url: str
) -> None:
    with ModelsServer(key="sk-right-key-0123456789") as openai_server:
        env = user_env(
            tmp_path,
            POSTGRES_URL=postgres_url,
            OPENAI_API_KEY="sk-wrong-key-0123456789",
            OPENAI_BASE_URL=openai_server.base_url,
            LOG_FORMAT=log_format,
        )
        stdout, stderr = tmp_path / "api.out", tmp_path / "api.err"
        with stdout.open("w") as out, stderr.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--api"],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        try:
            wait_for(
                lambda: "API on" in stdout.read_text() + stderr.read_text(),
                timeout=60,
                what="the API's start line",
                log=lambda: stdout.read_text() + stderr.read_text(),
            )
            key = _reviewer_key(postgres_url)
            base = env["PUBLIC_BASE_URL"]
            ready = httpx.get(f"{base}/health/ready", headers={"X-API-Key": key}, timeout=10)
            anonymous = httpx.get(f"{base}/health/ready", timeout=10)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=20)

    assert openai_server.model_listings == ["Bearer sk-wrong-key-0123456789"]
    assert ready.status_code == 200
    assert ready.json() == {
        "status": "ready",
        "database": "ok",
        "drafter": "openai:gpt-4o-mini",
        "drafter_reachable": False,
    }
    assert "127.0.0.1" not in ready.text and "sk-" not in ready.text
    assert anonymous.status_code == 401
    if log_format == "text":
        console = stderr.read_text()
        warning = next(line for line in console.splitlines() if "WARNING" in line)
        assert "drafter openai:gpt-4o-mini is not reachable" in warning
        assert "OPENAI_API_KEY was refused (401)" in warning
        start_line = next(line for line in console.splitlines() if "API on" in line)
    else:
        records = [json.loads(line) for line in stdout.read_text().splitlines() if line.strip()]
        warning = next(r for r in records if r["level"] == "WARNING")
        assert "OPENAI_API_KEY was refused (401)" in warning["message"]
        start_line = next(r["message"] for r in records if "API on" in r["message"])
        assert "API on" not in stderr.read_text()
    assert "openai:gpt-4o-mini (UNREACHABLE: OPENAI_API_KEY was refused (401))" in start_line
    assert "sk-wrong-key" not in stdout.read_text() + stderr.read_text()


def _reviewer_key(postgres_url: str) -> str:
    """A reviewer key created in the API's database."""
    import asyncio

    from services.persistence.database import Database, create_engine

    async def create() -> str:
        engine = create_engine(Database(url=postgres_url))
        try:
            return (await ReviewerKeys(engine).create("ops")).key
        finally:
            await engine.dispose()

    return asyncio.run(create())


# The demo: one per DATA_DIR, stopped by a signal at any moment, and its PostgreSQL with it.


class Demo:
    """An `app.py --demo` process with its output in a file."""

    def __init__(self, env: dict[str, str], out: Path) -> None:
        self.out = out
        with out.open("w") as sink:
            self.process = subprocess.Popen(
                [sys.executable, str(ROOT / "app.py"), "--demo"],
                cwd=ROOT,
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_ready(self) -> None:
        wait_for(
            lambda: "Review at" in self.output() or self.process.poll() is not None,
            timeout=180,
            what="the demo's 'Review at' line",
            log=self.output,
        )
        assert self.process.poll() is None, self.output()

    def stop(self, sig: int, *, within: float) -> int:
        """Send `sig`; the exit code, which must come within `within` seconds."""
        self.process.send_signal(sig)
        try:
            return self.process.wait(timeout=within)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise AssertionError(f"no exit within {within} s of {sig}\n{self.output()}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def postgres_running(data_dir: Path) -> bool:
    """Whether the embedded PostgreSQL of `data_dir` is running (its postmaster's PID)."""
    pid_file = data_dir / "postgres" / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def handles(data_dir: Path) -> list[int]:
    """pgserver's list of the processes using the embedded PostgreSQL."""
    path = data_dir / "postgres" / ".handle_pids.json"
    return list(json.loads(path.read_text())) if path.exists() else []


def stop_postgres(data_dir: Path) -> None:
    """Whatever a failed test left running."""
    if postgres_running(data_dir):
        pid = int((data_dir / "postgres" / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGTERM)


@pytest.fixture
def demo_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A user's environment for the demo, on the embedded PostgreSQL."""
    env = user_env(tmp_path)
    yield env
    stop_postgres(Path(env["DATA_DIR"]))


@pytest.mark.slow
def test_a_second_demo_says_where_the_first_runs_and_exits(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = Path(demo_env["DATA_DIR"])
    first = Demo(demo_env, tmp_path / "first.out")
    try:
        first.wait_ready()
        started = time.monotonic()
        second = run_app("--demo", env=demo_env)
        took = time.monotonic() - started

        line = assert_one_line_failure(
            second, "already running", f"PID {first.process.pid}", demo_env["PUBLIC_BASE_URL"]
        )
        assert took < 10, took
        assert "demo-reviewer.key" in line
        assert first.process.poll() is None  # the first one is untouched

        assert first.stop(signal.SIGINT, within=20) == 0
    finally:
        first.kill()
    assert "Stopped after" in first.output()
    assert not postgres_running(data_dir)
    assert handles(data_dir) == []


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_start_up_stops_the_demo_and_its_postgres(
    sig: int, demo_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = Path(demo_env["DATA_DIR"])
    demo = Demo(demo_env, tmp_path / "demo.out")
    try:
        # Once PostgreSQL is starting (its data directory exists), well before "Review at".
        wait_for(
            lambda: (data_dir / "postgres").exists() or demo.process.poll() is not None,
            timeout=60,
            what="the embedded PostgreSQL starting",
            log=demo.output,
        )
        time.sleep(1)
        assert "Review at" not in demo.output()

        code = demo.stop(sig, within=20)
    finally:
        demo.kill()
    assert code == 128 + sig, demo.output()
    assert "Traceback" not in demo.output()
    assert not postgres_running(data_dir)
    assert handles(data_dir) == []


@pytest.mark.slow
def test_a_killed_demo_leaves_nothing_that_outlives_the_next_one(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    data_dir = Path(demo_env["DATA_DIR"])
    killed = Demo(demo_env, tmp_path / "killed.out")
    try:
        killed.wait_ready()
    finally:
        killed.kill()  # SIGKILL: no clean-up of any kind ran
    assert handles(data_dir) == [killed.process.pid]

    # Its lock died with it, and its handle no longer keeps PostgreSQL alive.
    demo = Demo(demo_env, tmp_path / "next.out")
    try:
        demo.wait_ready()
        assert handles(data_dir) == [demo.process.pid]
        assert demo.stop(signal.SIGTERM, within=20) == 0
    finally:
        demo.kill()
    assert not postgres_running(data_dir)
