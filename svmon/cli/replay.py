"""`svmon replay`: rebuild every figure from the log with the live fold."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from svmon.cli.common import current_settings, main


@main.command()
@click.option("--source", type=click.Choice(["journal", "topic"]), default="journal",
              show_default=True, help="Read the database journal or the Kafka topic.")
@click.option("--as-of", "as_of", default=None,
              help="Record time: only events recorded up to this ISO 8601 time (UTC if no "
                   "offset).")
@click.option("--delivered-by", "delivered_by", type=click.DateTime(["%Y-%m-%d"]),
              default=None, help="Delivery time: totals count only evidence for periods up "
                                 "to this date, a spanning period pro rata by days.")
@click.option("--verify", is_flag=True,
              help="Check the hash chain and compare with the live projections; "
                   "exit 1 on any break or mismatch.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write report.json, totals.csv, lineage.csv, report.html.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(source: str, as_of: str | None, delivered_by: datetime | None, verify: bool,
           report_dir: Path | None, as_json: bool) -> None:
    """Rebuild every figure from the log with the same fold the live worker uses.

    --as-of cuts on record time (what was known then), --delivered-by on delivery time
    (what was delivered by then); together: what was believed at --as-of about delivery
    up to --delivered-by. The output names both axes.
    """
    from svmon.audit import report as reports
    from svmon.audit.axes import delivery_axis_text, record_axis
    from svmon.audit.chain import verify_chains
    from svmon.audit.replay import compare, cut_at_delivery, rebuild, rebuild_from_topic
    from svmon.bootstrap import repository

    settings = current_settings()
    repo = repository(settings)
    when = _parse_when(as_of) if as_of else None
    day = delivered_by.date() if delivered_by else None
    length = repo.counts()["journal"]  # the topic holds about as many (plus refusals)
    with click.progressbar(length=length, label=f"replaying the {source}", file=sys.stderr,
                           show_pos=True) as bar:
        if source == "journal":
            rebuilt = rebuild(repo.journal_events(until=when), repo.catalogue,
                              progress=bar.update)
        else:
            rebuilt = rebuild_from_topic(settings.bootstrap, settings.events_topic,
                                         repo.catalogue, as_of=when, progress=bar.update)
    if day is not None:
        rebuilt = cut_at_delivery(rebuilt, day)
    axes = {"record": record_axis(when), "delivery": delivery_axis_text(day)}
    breaks, mismatches = [], []
    if verify:
        breaks = verify_chains(repo.chain_rows(), repo.chain_heads())
        if when is None and day is None:
            mismatches = compare(rebuilt, repo.live_totals(),
                                 repo.expected_totals(rebuilt.states.values()),
                                 repo.open_alert_identities(),
                                 repo.manually_resolved_identities())
        else:
            given = " and ".join(o for o, v in (("--as-of", when), ("--delivered-by", day))
                                 if v is not None)
            click.echo(f"note: {given} given, so figures are not compared with the live "
                       "projections (they show every period, now); the chain is checked in "
                       "full.", err=True)
    data = reports.build(rebuilt, repo.catalogue, source=source, as_of=when, breaks=breaks,
                         mismatches=mismatches, verified=verify)
    data["delivered_by"] = day.isoformat() if day else None
    data["time_axes"] = axes
    if report_dir is not None:
        for p in reports.write(data, report_dir):
            click.echo(f"wrote {p}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    click.echo(f"{rebuilt.events} events read, {len(rebuilt.states)} contracts rebuilt, "
               f"{rebuilt.rejected} rejected, {len(rebuilt.open_alerts())} open alerts",
               err=as_json)
    click.echo(f"{axes['record']}; {axes['delivery']}", err=as_json)
    for b in breaks:
        click.echo(f"chain break: {b}", err=True)
    for m in mismatches:
        click.echo(f"mismatch: {m}", err=True)
    if verify:
        if breaks or mismatches:
            raise SystemExit(1)
        click.echo("verified: every chain intact" +
                   ("" if when or day else ", every figure matches the live projections"),
                   err=as_json)


def _parse_when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time such as 2026-03-31T17:00:00Z "
                                 f"(got {text!r})", param_hint="--as-of") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)
