"""Configuration from environment variables, with embedded defaults for one machine.

| variable | default | meaning |
| --- | --- | --- |
| ``SVMON_BROKER_URL`` | ``kafka://127.0.0.1:19092`` | Kafka bootstrap (embedded Tansu) |
| ``DATABASE_URL`` | ``sqlite:///<data dir>/svmon.db`` | SQLite file, or ``postgresql://…`` |
| ``SVMON_DATA_DIR`` | ``.svmon`` | where the SQLite file and logs go |
| ``SVMON_PARTITIONS`` | ``4`` | partitions of the contract-events topic |
| ``SVMON_TICK_SECONDS`` | ``60`` | how often the clock puts time on each contract's log |
| ``SVMON_BATCH_SIZE`` | ``500`` | most events the worker folds and writes in one transaction |
| ``SVMON_BATCH_SECONDS`` | ``0.1`` | longest an event waits for its batch to fill |
| ``SVMON_BATCH_WRITER`` | ``process`` | batches written by a second process, or ``thread`` |
| ``SVMON_STUCK_REBALANCE_SECONDS`` | ``60`` | a longer rebalance ends the worker (status 70) |
| ``SVMON_CATALOGUE`` | (none) | extra catalogue files (CSV/XLSX), separated by ``:`` |
| ``SVMON_TOPIC_PREFIX`` | ``svmon`` | prefix of the project's topics |
| ``SVMON_CHECK_PARTITIONS`` | ``1`` | dead-letter a contract event off its key's partition |
| ``SVMON_SMTP_URL`` | (none: no email) | ``smtp://user:password@host:port?starttls=1`` |
| ``SVMON_SMTP_FROM`` | ``svmon@localhost`` | sender of alert emails |
| ``SVMON_SMTP_CAFILE`` | (system CAs) | CA bundle for STARTTLS |
| ``SVMON_WEBHOOK_SECRET`` | (none: no webhooks) | HMAC key of webhook signatures |
| ``SVMON_DASHBOARD_URL`` | Voila's contract page | link put in alerts |
| ``SVMON_ESCALATE_HOURS`` | ``24`` | unacknowledged alerts go to the deputy after this |
| ``SVMON_API_HOST`` / ``SVMON_API_PORT`` | ``127.0.0.1`` / ``8080`` | where the HTTP API listens |
| ``SVMON_REDELIVER_SECONDS`` | ``30`` | publish an unsettled received event again after this |
| ``SVMON_TOKEN_LAST_USED_SECONDS`` | ``60`` | most often a token's last-used time is written |
| ``SVMON_DASHBOARD_PORT`` | ``8866`` | where Voila serves the dashboards |
| ``SVMON_REPLICATION_FACTOR`` | ``1`` | replicas of each topic created (3 in production) |
| ``SVMON_MIN_INSYNC_REPLICAS`` | ``1`` | their ``min.insync.replicas`` (2 in production) |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

BATCH_WRITERS = ("process", "thread")  # where a worker folds and writes its batches


@dataclass(frozen=True)
class Settings:
    broker_url: str = "kafka://127.0.0.1:19092"
    database_url: str = field(default="", repr=False)  # may carry a password
    data_dir: Path = Path(".svmon")
    app_id: str = "svmon"
    topic_prefix: str = "svmon"
    partitions: int = 4
    tick_seconds: float = 60.0
    relay_seconds: float = 1.0
    batch_size: int = 500
    batch_seconds: float = 0.1
    batch_writer: str = "process"  # one of BATCH_WRITERS (see svmon.streams.writer)
    session_timeout: float = 8.0
    stuck_rebalance_seconds: float = 60.0  # a worker whose rebalance takes longer exits
    fetch_max_wait_ms: int = 100  # how long the broker may hold a fetch (latency bound)
    catalogue_files: tuple[str, ...] = field(default_factory=tuple)
    log_level: str = "info"
    smtp_url: str = field(default="", repr=False)  # may carry the SMTP password
    smtp_from: str = "svmon@localhost"
    smtp_cafile: str = ""
    webhook_secret: str = field(default="", repr=False)
    dashboard_url: str = "http://127.0.0.1:8866/voila/render/contract.ipynb"
    escalate_hours: float = 24.0
    dispatch_lease_seconds: float = 30.0
    api_host: str = "127.0.0.1"
    api_port: int = 8080
    redeliver_seconds: float = 30.0
    token_last_used_seconds: float = 60.0  # per token, per API process
    dashboard_port: int = 8866
    replication_factor: int = 1
    min_insync_replicas: int = 1
    # the worker dead-letters a record whose partition is not kafka-python's (murmur2) for
    # its key, the partitioner the relay uses: a producer with another partitioner
    # (librdkafka's default) would put a contract's events on two partitions, out of order
    check_partitions: bool = True

    def __post_init__(self) -> None:
        if self.batch_writer not in BATCH_WRITERS:
            raise ValueError(f"SVMON_BATCH_WRITER must be one of {', '.join(BATCH_WRITERS)}, "
                             f"not {self.batch_writer!r}")
        if not self.database_url:
            object.__setattr__(self, "database_url",
                               f"sqlite:///{(self.data_dir / 'svmon.db').as_posix()}")

    @property
    def events_topic(self) -> str:
        return f"{self.topic_prefix}.contract-events"

    @property
    def alerts_topic(self) -> str:
        return f"{self.topic_prefix}.alerts"

    @property
    def dead_letter_topic(self) -> str:
        return f"{self.topic_prefix}.dead-letter"

    @property
    def intake_topic(self) -> str:
        """Where integrations produce (``svmon.streams.intake``); never read by the worker."""
        return f"{self.topic_prefix}.intake"

    @property
    def intake_replies_topic(self) -> str:
        """The intake's answer to every message: a receipt or a refusal."""
        return f"{self.topic_prefix}.intake-replies"

    @property
    def bootstrap(self) -> str:
        """host:port list for kafka-python, from the Faust-style URL."""
        return ",".join(u.split("://", 1)[-1] for u in self.broker_url.split(";"))

    def with_(self, **changes: Any) -> Settings:
        return replace(self, **changes)

    def to_env(self) -> dict[str, str]:
        """The environment that makes a child process see these settings."""
        return {"SVMON_BROKER_URL": self.broker_url, "DATABASE_URL": self.database_url,
                "SVMON_DATA_DIR": str(self.data_dir), "SVMON_PARTITIONS": str(self.partitions),
                "SVMON_TICK_SECONDS": str(self.tick_seconds),
                "SVMON_BATCH_SIZE": str(self.batch_size),
                "SVMON_BATCH_SECONDS": str(self.batch_seconds),
                "SVMON_BATCH_WRITER": self.batch_writer,
                "SVMON_STUCK_REBALANCE_SECONDS": str(self.stuck_rebalance_seconds),
                "SVMON_TOPIC_PREFIX": self.topic_prefix, "SVMON_APP_ID": self.app_id,
                "SVMON_CATALOGUE": os.pathsep.join(self.catalogue_files),
                "SVMON_LOG_LEVEL": self.log_level, "SVMON_SMTP_URL": self.smtp_url,
                "SVMON_SMTP_FROM": self.smtp_from, "SVMON_SMTP_CAFILE": self.smtp_cafile,
                "SVMON_WEBHOOK_SECRET": self.webhook_secret,
                "SVMON_DASHBOARD_URL": self.dashboard_url,
                "SVMON_ESCALATE_HOURS": str(self.escalate_hours),
                "SVMON_DISPATCH_LEASE_SECONDS": str(self.dispatch_lease_seconds),
                "SVMON_FETCH_MAX_WAIT_MS": str(self.fetch_max_wait_ms),
                "SVMON_API_HOST": self.api_host, "SVMON_API_PORT": str(self.api_port),
                "SVMON_REDELIVER_SECONDS": str(self.redeliver_seconds),
                "SVMON_TOKEN_LAST_USED_SECONDS": str(self.token_last_used_seconds),
                "SVMON_DASHBOARD_PORT": str(self.dashboard_port),
                "SVMON_REPLICATION_FACTOR": str(self.replication_factor),
                "SVMON_MIN_INSYNC_REPLICAS": str(self.min_insync_replicas),
                "SVMON_CHECK_PARTITIONS": "1" if self.check_partitions else "0"}

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        data_dir = Path(e.get("SVMON_DATA_DIR", ".svmon"))
        return cls(
            broker_url=e.get("SVMON_BROKER_URL", cls.broker_url),
            database_url=e.get("DATABASE_URL", ""),
            data_dir=data_dir,
            app_id=e.get("SVMON_APP_ID", cls.app_id),
            topic_prefix=e.get("SVMON_TOPIC_PREFIX", cls.topic_prefix),
            partitions=int(e.get("SVMON_PARTITIONS", cls.partitions)),
            tick_seconds=float(e.get("SVMON_TICK_SECONDS", cls.tick_seconds)),
            batch_size=int(e.get("SVMON_BATCH_SIZE", cls.batch_size)),
            batch_seconds=float(e.get("SVMON_BATCH_SECONDS", cls.batch_seconds)),
            batch_writer=e.get("SVMON_BATCH_WRITER", cls.batch_writer),
            stuck_rebalance_seconds=float(e.get("SVMON_STUCK_REBALANCE_SECONDS",
                                                cls.stuck_rebalance_seconds)),
            catalogue_files=tuple(p for p in e.get("SVMON_CATALOGUE", "").split(os.pathsep)
                                  if p),
            log_level=e.get("SVMON_LOG_LEVEL", cls.log_level),
            smtp_url=e.get("SVMON_SMTP_URL", ""),
            smtp_from=e.get("SVMON_SMTP_FROM", cls.smtp_from),
            smtp_cafile=e.get("SVMON_SMTP_CAFILE", ""),
            webhook_secret=e.get("SVMON_WEBHOOK_SECRET", ""),
            dashboard_url=e.get("SVMON_DASHBOARD_URL", cls.dashboard_url),
            escalate_hours=float(e.get("SVMON_ESCALATE_HOURS", cls.escalate_hours)),
            dispatch_lease_seconds=float(e.get("SVMON_DISPATCH_LEASE_SECONDS",
                                               cls.dispatch_lease_seconds)),
            fetch_max_wait_ms=int(e.get("SVMON_FETCH_MAX_WAIT_MS", cls.fetch_max_wait_ms)),
            api_host=e.get("SVMON_API_HOST", cls.api_host),
            api_port=int(e.get("SVMON_API_PORT", cls.api_port)),
            redeliver_seconds=float(e.get("SVMON_REDELIVER_SECONDS", cls.redeliver_seconds)),
            token_last_used_seconds=float(e.get("SVMON_TOKEN_LAST_USED_SECONDS",
                                                cls.token_last_used_seconds)),
            dashboard_port=int(e.get("SVMON_DASHBOARD_PORT", cls.dashboard_port)),
            replication_factor=int(e.get("SVMON_REPLICATION_FACTOR", cls.replication_factor)),
            min_insync_replicas=int(e.get("SVMON_MIN_INSYNC_REPLICAS",
                                          cls.min_insync_replicas)),
            check_partitions=e.get("SVMON_CHECK_PARTITIONS", "1").strip().lower()
            not in ("0", "false", "no", "off"),
        )
