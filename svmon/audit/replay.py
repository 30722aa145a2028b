"""Rebuild state from the log with the live fold, as at any moment, and compare.

Two sources of the same log: the database journal (``recorded_at`` is when the live
worker applied each event) and the Kafka topic (record timestamps). The embedded
broker's ``offsets_for_times`` and ``end_offsets`` are not reliable, so the topic is
scanned from the beginning with manual partition assignment (no consumer group), each
record filtered on its timestamp, up to the high watermark the fetch responses report
(exact on that broker), confirmed by one more empty poll.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from svmon.alerts.lifecycle import open_alerts
from svmon.audit.axes import delivered_by_day
from svmon.core import events as ev
from svmon.core.catalogue import Catalogue
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold
from svmon.core.idempotence import EventGate
from svmon.core.rules import DEFAULT_POLICY, Policy
from svmon.core.state import ContractState
from svmon.schemas import decode_event


@dataclass
class Rebuild:
    states: dict[str, ContractState] = field(default_factory=dict)
    derived: list[ev.Derived] = field(default_factory=list)
    events: int = 0
    rejected: int = 0  # events refused (they were dead-lettered live too)
    duplicates: int = 0  # the same event again under the same id
    undecodable: int = 0

    def open_alerts(self) -> set[tuple[str, str, str, str]]:
        return open_alerts(self.derived)


def rebuild(events: Iterable[ev.ContractEvent | None], catalogue: Catalogue,
            policy: Policy = DEFAULT_POLICY,
            progress: Callable[[int], None] | None = None) -> Rebuild:
    """Fold a log (``None`` marks a record that did not decode)."""
    out = Rebuild()
    gate = EventGate()
    for e in events:
        out.events += 1
        if progress is not None and out.events % 1000 == 0:
            progress(1000)
        if e is None:
            out.undecodable += 1
            continue
        s = out.states.get(e.contract_id) or ContractState(e.contract_id)
        try:
            if gate.check(e) == "duplicate":
                out.duplicates += 1
                continue
            s, d = fold(s, e, catalogue, policy)
        except InvalidInput as err:
            gate.refused(e, err)
            out.rejected += 1
            continue
        gate.accepted(e)
        out.states[e.contract_id] = s
        out.derived.extend(d)
    if progress is not None:
        progress(out.events % 1000)
    return out


def topic_partitions(bootstrap: str, topic: str) -> list[int]:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False)
    try:
        return sorted(consumer.partitions_for_topic(topic) or ())
    finally:
        consumer.close()


def topic_events(bootstrap: str, topic: str, as_of: datetime | None = None,
                 idle_polls: int = 5, poll_ms: int = 200, confirm_ms: int = 50,
                 partitions: Iterable[int] | None = None,
                 **consumer_config: Any) -> Iterator[ev.ContractEvent | None]:
    """Every record of ``topic`` (or of some of its ``partitions``) up to ``as_of``
    (record timestamp), in partition order.

    A contract's events share a partition, so per-contract order is the log's order.
    Yields ``None`` for records that do not decode (the live worker dead-lettered them).

    Where the log ends: the embedded broker's ``end_offsets`` under-reports (it gave
    the last batch's first offset), but every fetch response carries the partition's
    high watermark, and that one is exact. The scan ends once every partition's
    position has reached the high watermark its last fetch reported and one more short
    poll (``confirm_ms``) brings nothing. A partition whose watermark never came falls
    back to ``idle_polls`` empty polls of ``poll_ms`` in a row.
    """
    from kafka import KafkaConsumer, TopicPartition

    config: dict[str, Any] = {
        "max_poll_records": 5000, "fetch_max_bytes": 64 * 1024 * 1024,
        # a whole partition's worth per fetch rather than kafka-python's 1 MiB: fewer
        # round trips to the broker for a scan from the beginning
        "max_partition_fetch_bytes": 16 * 1024 * 1024,
        # at the end of the log the broker holds a fetch this long: it bounds the
        # confirming poll's wait
        "fetch_max_wait_ms": confirm_ms,
        # a poll that finds nothing fetched and nothing in flight sleeps this long
        # (kafka-python's default, 100 ms, came up mid-scan)
        "retry_backoff_ms": 20, **consumer_config}
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None,
                             enable_auto_commit=False, **config)
    try:
        if partitions is None:
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        limit_ms = int(as_of.timestamp() * 1000) if as_of else None
        empty = 0
        while True:
            at_end = _at_high_watermark(consumer, tps)
            batch = consumer.poll(timeout_ms=confirm_ms if at_end else poll_ms)
            if not batch:
                empty += 1
                if at_end or empty >= idle_polls:
                    return
                continue
            empty = 0
            for tp in sorted(batch, key=lambda t: t.partition):
                for rec in batch[tp]:
                    if limit_ms is not None and rec.timestamp > limit_ms:
                        continue
                    yield event_from_record(rec.key, rec.value)
    finally:
        consumer.close()


def _at_high_watermark(consumer: Any, tps: list[Any]) -> bool:
    """Whether every partition has been read up to the high watermark its last fetch
    response reported (False while any has not reported one yet)."""
    for tp in tps:
        high = consumer.highwater(tp)
        if high is None or consumer.position(tp) < high:
            return False
    return True


def rebuild_from_topic(bootstrap: str, topic: str, catalogue: Catalogue,
                       as_of: datetime | None = None, policy: Policy = DEFAULT_POLICY,
                       processes: int | None = None,
                       progress: Callable[[int], None] | None = None) -> Rebuild:
    """Replay the topic with one process per group of partitions.

    Every event of a contract is on one partition (the key is the contract id), so
    partitions fold independently and the rebuilt states simply join; each process
    has its own consumer, manually assigned, and stops at its partitions' end. This
    process folds the first group itself while the others fold theirs: only their
    results cross a process boundary (pickling a rebuilt state costs about as much as
    a third of folding it).
    """
    import multiprocessing
    import os
    from concurrent.futures import ProcessPoolExecutor, wait

    parts = topic_partitions(bootstrap, topic)
    n = max(1, min(processes or os.cpu_count() or 1, len(parts)))
    if n == 1:
        return rebuild(topic_events(bootstrap, topic, as_of), catalogue, policy, progress)
    groups = [parts[i::n] for i in range(n)]
    ctx = multiprocessing.get_context("fork")  # the catalogue and code are there already
    counter = ctx.Value("q", 0)  # events the other processes have read
    reported = 0  # theirs, passed on to ``progress``

    def theirs() -> None:
        nonlocal reported
        if progress is not None and counter.value > reported:
            progress(counter.value - reported)
            reported = counter.value

    def ours(k: int) -> None:
        if progress is not None:
            progress(k)
        theirs()

    with ProcessPoolExecutor(n - 1, mp_context=ctx, initializer=_share_counter,
                             initargs=(counter,)) as pool:
        futures = [pool.submit(_rebuild_partitions, bootstrap, topic, g, as_of, catalogue,
                               policy) for g in groups[1:]]
        results = [rebuild(topic_events(bootstrap, topic, as_of, partitions=groups[0]),
                           catalogue, policy, ours)]
        while not all(f.done() for f in futures):
            wait(futures, timeout=0.2)
            theirs()
        results += [f.result() for f in futures]
    out = Rebuild()
    for part in results:
        out.states.update(part.states)
        out.derived.extend(part.derived)
        out.events += part.events
        out.rejected += part.rejected
        out.duplicates += part.duplicates
        out.undecodable += part.undecodable
    if progress is not None and out.events - results[0].events > reported:
        progress(out.events - results[0].events - reported)
    return out


_COUNTER: Any = None


def _share_counter(counter: Any) -> None:
    global _COUNTER
    _COUNTER = counter


def _rebuild_partitions(bootstrap: str, topic: str, partitions: list[int],
                        as_of: datetime | None, catalogue: Catalogue, policy: Policy
                        ) -> Rebuild:
    def tick(n: int) -> None:
        if _COUNTER is not None:
            with _COUNTER.get_lock():
                _COUNTER.value += n

    return rebuild(topic_events(bootstrap, topic, as_of, partitions=partitions), catalogue,
                   policy, progress=tick)


def event_from_record(key: bytes | None, value: bytes) -> ev.ContractEvent | None:
    """The event a record carries, or None where the live worker dead-letters it at
    decode time (bad bytes, bad schema, a key that is not the contract id)."""
    try:
        e = decode_event(value)
    except InvalidInput:
        return None
    if key is None or key.decode(errors="replace") != e.contract_id:
        return None
    return e


# ---------------------------------------------------------------- comparison


@dataclass(frozen=True)
class Mismatch:
    contract_id: str
    measure: str
    what: str
    rebuilt: Any
    live: Any

    def __str__(self) -> str:
        where = f"{self.contract_id}/{self.measure}" if self.measure else self.contract_id
        return f"{where}: {self.what} rebuilt {self.rebuilt!r} but live {self.live!r}"


TOTAL_FIELDS = ("target", "claimed", "verified", "proxy_gbp", "target_gbp", "claimed_gbp",
                "verified_gbp", "shortfall", "at_risk", "target_met")


def _norm(v: Any) -> Any:
    return Decimal(v) if isinstance(v, Decimal | int | str) and not isinstance(v, bool) else v


def compare(rebuilt: Rebuild, live_totals: dict[tuple[str, str], dict[str, Any]],
            expected_totals: dict[tuple[str, str], dict[str, Any]],
            live_alerts: set[tuple[str, str, str, str]],
            decided_by_people: set[tuple[str, str, str, str]] | None = None
            ) -> list[Mismatch]:
    """Differences between rebuilt and live figures, each naming contract and measure.

    Alerts a person resolved by hand are left out of the comparison: that decision is
    made in the inbox, not on the contract's log, so a replay cannot know it.
    """
    out: list[Mismatch] = []
    for key in sorted(set(live_totals) | set(expected_totals)):
        cid, m = key
        want, got = expected_totals.get(key), live_totals.get(key)
        if want is None or got is None:
            out.append(Mismatch(cid, m, "row", "present" if want else "absent",
                                "present" if got else "absent"))
            continue
        for f in TOTAL_FIELDS:
            if _norm(want[f]) != _norm(got[f]):
                out.append(Mismatch(cid, m, f, want[f], got[f]))
    people = decided_by_people or set()
    rebuilt_alerts = rebuilt.open_alerts() - people
    live_alerts = live_alerts - people
    for a in sorted(rebuilt_alerts - live_alerts):
        out.append(Mismatch(a[0], a[1], f"open alert {a[2]} {a[3]}".strip(), "open",
                            "absent"))
    for a in sorted(live_alerts - rebuilt_alerts):
        out.append(Mismatch(a[0], a[1], f"open alert {a[2]} {a[3]}".strip(), "absent",
                            "open"))
    return out


def cut_at_delivery(rebuilt: Rebuild, day: date) -> Rebuild:
    """The rebuilt states with their totals cut at ``day`` on delivery time
    (:func:`svmon.audit.axes.delivered_by_day`); counts and derived facts unchanged."""
    return replace(rebuilt, states={cid: delivered_by_day(s, day) if s.terms else s
                                    for cid, s in rebuilt.states.items()})
