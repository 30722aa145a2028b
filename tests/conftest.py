"""Shared fixtures: the real embedded broker, real databases, real worker processes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.infra.processes import Child, python_module
from svmon.settings import Settings

PG_ADMIN_URL = os.environ.get("SVMON_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


def _pg_reason() -> str | None:
    """None when PostgreSQL answers, else why not (the reason a PostgreSQL test skips)."""
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL.replace("+psycopg", ""), connect_timeout=3):
            return None
    except Exception as err:  # any failure to connect is a reason to skip, stated
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {err}"


PG_UNAVAILABLE = _pg_reason()


@pytest.fixture(scope="session")
def broker() -> Iterator[EmbeddedBroker]:
    ARTIFACTS.mkdir(exist_ok=True)
    b = EmbeddedBroker(port=free_port(), log_path=ARTIFACTS / "broker.log").start()
    yield b
    b.stop()


def _pg_database() -> Iterator[str]:
    import psycopg

    name = f"svmon_test_{uuid.uuid4().hex[:10]}"
    admin = PG_ADMIN_URL.replace("+psycopg", "")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database: an SQLite file, and PostgreSQL where reachable."""
    if request.param == "sqlite":
        yield f"sqlite:///{(tmp_path / 'svmon.db').as_posix()}"
        return
    if PG_UNAVAILABLE:
        pytest.skip(PG_UNAVAILABLE)
    yield from _pg_database()


@pytest.fixture
def settings(broker: EmbeddedBroker, database_url: str, tmp_path: Path) -> Settings:
    """Settings isolated per test: own topics, consumer group and database."""
    tag = uuid.uuid4().hex[:8]
    return Settings(broker_url=broker.url, database_url=database_url, data_dir=tmp_path,
                    app_id=f"svmon-test-{tag}", topic_prefix=f"t{tag}", partitions=4,
                    tick_seconds=3600.0, session_timeout=6.0, log_level="info")


class Workers:
    """Start, kill and restart real worker processes (``python -m svmon.streams.worker``)."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings, self.log_dir = settings, log_dir
        self.children: list[Child] = []

    def start(self) -> Child:
        n = len(self.children)
        child = Child(f"worker-{n}", python_module("svmon.streams.worker"), self.settings.to_env(),
                      self.log_dir / f"worker-{n}.log")
        self.children.append(child)
        return child

    def stop_all(self) -> None:
        for c in self.children:
            c.stop()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    from svmon.bootstrap import init_database
    from svmon.streams.topics import ensure_topics

    init_database(settings)
    ensure_topics(settings)
    w = Workers(settings, tmp_path)
    yield w
    w.stop_all()


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, every: float = 0.25,
               what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")
