"""The database, the topics, the report and the catalogue."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import click

from svmon.cli.common import current_settings, main


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the tables and store the catalogue (safe to repeat); prints the
    schema revision the database is at."""
    from svmon.bootstrap import init_database
    from svmon.models.migrate import current_revision

    repo = init_database(current_settings())
    click.echo(f"database ready at schema revision {current_revision(repo.engine)}")


@main.command()
def topics() -> None:
    """Create the missing topics with SVMON_PARTITIONS partitions and
    SVMON_REPLICATION_FACTOR replicas (safe to repeat), then check their partition and
    replica counts; the contract-events topic is created with unlimited retention."""
    from kafka.errors import KafkaError

    from svmon.streams.topics import describe_topics, ensure_topics, wanted_topics

    settings = current_settings()
    try:
        ensure_topics(settings)
        found = describe_topics(settings)
    except KafkaError as err:
        raise click.ClickException(f"broker {settings.bootstrap}: {err}") from err
    problems = []
    for name, want in wanted_topics(settings).items():
        if name not in found:
            problems.append(f"{name} is missing")
            continue
        partitions, replicas = found[name]
        click.echo(f"{name:<32} partitions={partitions} replicas={replicas}")
        if partitions != want:
            problems.append(f"{name} has {partitions} partitions where {want} are "
                            f"expected (SVMON_PARTITIONS={settings.partitions}); partitions "
                            f"are not changed in place (infra/RUNBOOK.md, 'Changing the "
                            f"partition count')")
        if replicas < settings.replication_factor:
            problems.append(f"{name} has {replicas} replicas, fewer than "
                            f"SVMON_REPLICATION_FACTOR={settings.replication_factor}")
    if problems:
        raise click.ClickException("; ".join(problems))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def report(as_json: bool) -> None:
    """Every contract's totals per measure (target, claimed, verified, £) and open alerts."""
    from svmon.bootstrap import repository

    data = repository(current_settings()).report()
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    for c in data["contracts"]:
        click.echo(f"{c['contract_id']}  {c['title']}  ({c['supplier_name']})")
        for m in c["measures"]:
            pct = ""
            if m["target"]:
                pct = f"{Decimal(m['verified']) / Decimal(m['target']):>6.0%}"
            click.echo(f"    {m['measure']:<14} target {m['target'] or '-':>12}  verified "
                       f"{m['verified']:>12}  {pct}  £{Decimal(m['verified_gbp']):,.2f}")
        for a in c["open_alerts"]:
            click.echo(f"    ! {a['kind']} {a['measure']} {a['subject']}")
    s = data["summary"]
    click.echo(f"\n{s['contracts']} contracts, {s['open_alerts']} open alerts "
               f"{s['open_alerts_by_kind']}")


@main.command()
@click.option("--edition", default=None, help="Only this edition.")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def catalogue(edition: str | None, files: tuple[Path, ...]) -> None:
    """List the measures of the demo catalogue plus FILES (CSV or XLSX)."""
    from svmon.catalogue_files import load_catalogue

    cat = load_catalogue((*current_settings().catalogue_files, *files))
    for m in sorted(cat, key=lambda m: (m.edition, m.set_name, m.code)):
        if edition and m.edition != edition:
            continue
        proxy = "record only" if m.proxy_gbp is None else f"£{m.proxy_gbp}"
        flag = " (illustrative)" if m.illustrative else ""
        click.echo(f"{m.edition:<20} {m.code:<14} {proxy:>12}{flag}  {m.title} [{m.unit}]")
