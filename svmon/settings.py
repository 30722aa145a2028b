"""Configuration from environment variables, with embedded defaults for one machine.

:data:`VARIABLES` is the one table of them: :meth:`Settings.to_env` and
:meth:`Settings.from_env` are read off it, and so is the table in
``docs/operations.md`` (``python -m svmon.settings`` prints it; a test checks the page).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
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
        return {v.env: _format(getattr(self, v.field)) for v in VARIABLES}

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        kinds = {f.name: str(f.type) for f in fields(cls)}
        return cls(**{v.field: _parse(kinds[v.field], e[v.env], v.env)
                      for v in VARIABLES if v.env in e})


@dataclass(frozen=True)
class Variable:
    """One environment variable: the setting it fills and what it means."""

    env: str
    field: str
    meaning: str
    default: str = ""  # as the docs show it, when the field's own default would mislead


VARIABLES: tuple[Variable, ...] = (
    Variable("SVMON_BROKER_URL", "broker_url",
             "Kafka bootstrap; `svmon up` starts Tansu there when the host is this machine "
             "(`--external-broker` to use one already running)"),
    Variable("DATABASE_URL", "database_url",
             "SQLite file, or `postgresql://user@host:5432/db`",
             "sqlite:///<SVMON_DATA_DIR>/svmon.db"),
    Variable("SVMON_DATA_DIR", "data_dir", "SQLite file and process logs"),
    Variable("SVMON_APP_ID", "app_id", "the workers' Kafka consumer group and Faust app id"),
    Variable("SVMON_TOPIC_PREFIX", "topic_prefix",
             "prefix of the project's topics: contract-events, alerts, dead-letter, intake, "
             "intake-replies"),
    Variable("SVMON_PARTITIONS", "partitions", "partitions of the contract-events topic"),
    Variable("SVMON_TICK_SECONDS", "tick_seconds",
             "how often the clock puts time on each contract's log"),
    Variable("SVMON_BATCH_SIZE", "batch_size",
             "most events the worker folds and writes in one transaction"),
    Variable("SVMON_BATCH_SECONDS", "batch_seconds",
             "longest an event waits for its batch to fill (counted from its arrival)"),
    Variable("SVMON_BATCH_WRITER", "batch_writer",
             "where a worker decodes, folds and writes its batches: `process`, a second "
             "process beside Faust's (see Benchmarks), or `thread`, the worker's own threads "
             "(one process, one core)"),
    Variable("SVMON_STUCK_REBALANCE_SECONDS", "stuck_rebalance_seconds",
             "a worker whose rebalance has not finished after this exits with status 70, to "
             "be started again (see [Limits](limits.md))"),
    Variable("SVMON_FETCH_MAX_WAIT_MS", "fetch_max_wait_ms",
             "how long the broker may hold the worker's fetch"),
    Variable("SVMON_CHECK_PARTITIONS", "check_partitions",
             "the worker dead-letters a contract event that is not on its key's partition "
             "(`1` or `0`)"),
    Variable("SVMON_CATALOGUE", "catalogue_files",
             "extra catalogue files (CSV/XLSX), separated by `:`", "(none)"),
    Variable("SVMON_LOG_LEVEL", "log_level", "`debug`, `info`, `warning` or `error`"),
    Variable("SVMON_SMTP_URL", "smtp_url",
             "`smtp://user:password@host:587?starttls=1` or `smtps://…`; AUTH without TLS "
             "only to this machine", "(no email)"),
    Variable("SVMON_SMTP_FROM", "smtp_from", "sender of alert emails"),
    Variable("SVMON_SMTP_CAFILE", "smtp_cafile",
             "CA bundle to check the SMTP server's certificate", "(system CAs)"),
    Variable("SVMON_WEBHOOK_SECRET", "webhook_secret",
             "HMAC-SHA256 key of `X-Svmon-Signature`", "(no webhooks)"),
    Variable("SVMON_DASHBOARD_URL", "dashboard_url", "the link put in every alert"),
    Variable("SVMON_ESCALATE_HOURS", "escalate_hours",
             "unacknowledged alerts go to the deputy after this"),
    Variable("SVMON_DISPATCH_LEASE_SECONDS", "dispatch_lease_seconds",
             "how long a dispatcher holds a delivery it is sending"),
    Variable("SVMON_API_HOST", "api_host", "where the HTTP API listens"),
    Variable("SVMON_API_PORT", "api_port", "its port"),
    Variable("SVMON_REDELIVER_SECONDS", "redeliver_seconds",
             "a received event the worker has not settled is published again after this, "
             "then after twice as long (at most every 10 minutes)"),
    Variable("SVMON_TOKEN_LAST_USED_SECONDS", "token_last_used_seconds",
             "a token's last use is written at most once in this many seconds"),
    Variable("SVMON_DASHBOARD_PORT", "dashboard_port", "where Voila serves the dashboards"),
    Variable("SVMON_REPLICATION_FACTOR", "replication_factor",
             "replicas of each topic the project creates (3 in production; the embedded "
             "broker has one)"),
    Variable("SVMON_MIN_INSYNC_REPLICAS", "min_insync_replicas",
             "their `min.insync.replicas` (2 in production)"),
)


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, tuple):
        return os.pathsep.join(value)
    return str(value)


def _parse(kind: str, text: str, name: str) -> Any:
    """``text`` as the setting's type (the dataclass field's annotation)."""
    try:
        if kind == "int":
            return int(text)
        if kind == "float":
            return float(text)
    except ValueError:
        raise ValueError(f"{name} must be {'an integer' if kind == 'int' else 'a number'}, "
                         f"not {text!r}") from None
    if kind == "bool":
        return text.strip().lower() not in ("0", "false", "no", "off")
    if kind == "Path":
        return Path(text)
    if kind.startswith("tuple"):
        return tuple(p for p in text.split(os.pathsep) if p)
    return text


def markdown_table() -> str:
    """The variables as the operations guide shows them."""
    defaults = Settings(data_dir=Path(".svmon"))
    rows = ["| variable | default | meaning |", "| --- | --- | --- |"]
    for v in VARIABLES:
        shown = v.default or _format(getattr(defaults, v.field))
        if shown and not shown.startswith("("):
            shown = f"`{shown}`"
        rows.append(f"| `{v.env}` | {shown} | {v.meaning} |")
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
