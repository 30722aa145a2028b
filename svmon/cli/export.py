"""Open exports rebuilt from the journal: OCDS and the performance notice."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from svmon.cli.common import current_settings, main


@main.group()
def export() -> None:
    """Open exports, rebuilt from the journal with the live fold."""


def _rebuilt_states(contract: str | None) -> tuple[Any, list[Any]]:
    from svmon.audit.replay import rebuild
    from svmon.bootstrap import repository

    repo = repository(current_settings())
    rebuilt = rebuild(repo.journal_events(contract_id=contract), repo.catalogue)
    states = [s for _, s in sorted(rebuilt.states.items()) if s.terms is not None]
    if contract and not states:
        raise click.ClickException(f"no contract {contract!r} in the journal")
    return repo, states


@export.command("ocds")
@click.option("--contract", default=None, help="One contract (default: all).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              required=True, help="Folder for one <contract>.ocds.json release package each.")
def export_ocds(contract: str | None, out_dir: Path) -> None:
    """OCDS 1.1 release packages with milestones and the metrics extension."""
    from svmon.audit.exports import ocds_release_package
    from svmon.safe_output import UnsafePath, path_in

    repo, states = _rebuilt_states(contract)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.now(UTC)
    for s in states:
        try:  # a file name made from the id, always inside --out
            path = path_in(out_dir, s.contract_id, ".ocds.json")
        except UnsafePath as err:
            raise click.ClickException(str(err)) from err
        path.write_text(json.dumps(ocds_release_package(s, repo.catalogue, now), indent=2))
    click.echo(f"wrote {len(states)} release packages to {out_dir}")


@export.command("performance-notice")
@click.option("--contract", default=None, help="One contract (default: all).")
@click.option("--on", "on", type=click.DateTime(["%Y-%m-%d"]), default=None,
              help="Assessment date on delivery time: only evidence for periods up to it "
                   "counts, a spanning period pro rata (default: today).")
def export_notice(contract: str | None, on: datetime | None) -> None:
    """KPI ratings for a Procurement Act 2023 contract performance notice, as JSON: delivery
    up to --on (delivery time), with every decision recorded so far (record time)."""
    from svmon.audit.exports import performance_notice

    known_at = datetime.now(UTC)
    repo, states = _rebuilt_states(contract)
    day = on.date() if on else known_at.date()
    click.echo(json.dumps([performance_notice(s, repo.catalogue, day, known_at=known_at)
                           for s in states], indent=2))
