"""Redis (and PostgreSQL) for the tests that need them: the shared services' URLs and
a ``redis-server`` of a test's own (a pytest plugin: ``own_redis`` is a fixture).

A test that needs a service reads its URL from ``AISCOPE_TEST_REDIS_URL`` /
``AISCOPE_TEST_POSTGRES_URL`` and skips without it (fails with ``CI=true``). An
outage test starts its own ``redis-server`` on a free loopback port and a temp
dir, kills it and restarts it; the shared Redis is never touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

REDIS_ENV = "AISCOPE_TEST_REDIS_URL"
PG_ENV = "AISCOPE_TEST_POSTGRES_URL"


def service_url(env: str) -> str:
    """The URL of a shared service from ``env``; skip without it (fail in CI)."""
    url = os.environ.get(env)
    if not url:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{env} is not set: CI must run the tests that need Redis and PostgreSQL")
        example = "redis://127.0.0.1:6379/0" if env == REDIS_ENV else "postgresql://user@host/db"
        pytest.skip(f"these tests need {env}={example}")
    return url


@contextmanager
def redis_prefix(url: str, name: str) -> Iterator[str]:
    """A key prefix of this test's own on the Redis at ``url``; its keys are deleted after."""
    import redis

    prefix = f"aiscope-test-{name}-{uuid.uuid4().hex[:12]}:"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(url)
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class OwnRedis:
    """A redis-server of this test's own, on a loopback port and a temp dir."""

    def __init__(self, tmp: Path) -> None:
        self.port = free_port()
        self.tmp = tmp
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        exe = shutil.which("redis-server")
        if exe is None:
            if os.environ.get("CI", "").lower() == "true":
                pytest.fail("redis-server is not installed: CI must run the Redis outage test")
            pytest.skip("the Redis outage test needs the redis-server binary")
        self.proc = subprocess.Popen(
            [exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.tmp)],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_timeout=0.5)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        client.close()

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[OwnRedis]:
    r = OwnRedis(tmp_path)
    r.start()
    try:
        yield r
    finally:
        if r.proc is not None:
            r.proc.send_signal(signal.SIGCONT)
            r.kill()
