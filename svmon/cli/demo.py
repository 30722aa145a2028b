"""The demo council."""

from __future__ import annotations

from datetime import UTC, date, datetime

import click

from svmon.cli.common import current_settings, main


@main.group()
def demo() -> None:
    """The demo council."""


@demo.command("publish")
@click.option("--seed", default=7, show_default=True)
@click.option("--contracts", default=50, show_default=True)
@click.option("--today", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Reference date (default: today).")
def demo_publish(seed: int, contracts: int, today: datetime | None) -> None:
    """Publish the demo events to the configured broker."""
    from svmon.demo import generate
    from svmon.streams.client import publish

    day: date = today.date() if today else datetime.now(UTC).date()
    events = generate(seed=seed, today=day, contracts=contracts)
    with click.progressbar(length=len(events), label="publishing", show_pos=True) as bar:
        n = publish(events, current_settings(), progress=bar.update)
    click.echo(f"published {n} events")
