"""Evidence from CSV files, the Kafka client and the stream's refusals."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from svmon.cli.common import current_settings, main
from svmon.core.errors import SvmonError


@main.group()
def evidence() -> None:
    """Evidence from files and through the Kafka intake."""


@evidence.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--supplier", required=True, help="The supplier sending the evidence.")
@click.option("--mode", type=click.Choice(["all", "valid"]), default="all", show_default=True,
              help="all: store every row or none; valid: store the valid rows.")
@click.option("--errors", "errors_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Write the refused rows here as CSV.")
def evidence_import(file: Path, supplier: str, mode: str, errors_path: Path | None) -> None:
    """Import evidence from a CSV file (columns as the API's), with a per-row report."""
    from svmon.api.csvio import error_rows, read_rows
    from svmon.api.server import build_service
    from svmon.api.service import ItemErrors
    from svmon.bootstrap import init_database
    from svmon.models.ingest import Principal

    service = build_service(init_database(current_settings()))
    try:
        rows = read_rows(file.read_bytes())
    except SvmonError as err:
        raise click.ClickException(f"{file}: {err}") from err
    who = Principal("supplier", supplier, "cli")
    stored: list[Any] = []
    with click.progressbar(length=len(rows), label="checking rows", show_pos=True,
                           file=sys.stderr) as bar:
        try:
            stored, errors = service.submit_evidence(who, rows, "cli", partial=mode == "valid",
                                                     progress=bar.update)
        except ItemErrors as err:
            errors = err.errors
        bar.update(len(rows) - bar.pos)
    for e in errors[:20]:
        click.echo(f"row {e.index}: {e.error}", err=True)
    if len(errors) > 20:
        click.echo(f"... and {len(errors) - 20} more", err=True)
    if errors and errors_path:
        errors_path.write_text(error_rows(errors))
        click.echo(f"wrote the refused rows to {errors_path}", err=True)
    replayed = sum(1 for r in stored if r["status"] != "pending")
    click.echo(f"{len(rows)} rows: {len(stored)} stored ({replayed} already known), "
               f"{len(errors)} refused" + (", nothing stored" if errors and not stored else ""))
    if errors and not stored:
        raise SystemExit(1)


@evidence.command("send")
@click.option("--token", envvar="SVMON_TOKEN", required=True,
              help="Your supplier API token (or set SVMON_TOKEN): it, not anything you "
                   "type, says who sends.")
@click.option("--contract", "contract_id", required=True)
@click.option("--evidence-id", required=True)
@click.option("--measure", required=True)
@click.option("--quantity", required=True)
@click.option("--unit", default="", help="The measure's unit, as the contract states it.")
@click.option("--period", required=True, help="START..END as YYYY-MM-DD..YYYY-MM-DD.")
@click.option("--description", default="")
@click.option("--timeout", default=30.0, show_default=True,
              help="Seconds to wait for the intake's reply.")
def evidence_send(token: str, contract_id: str, evidence_id: str, measure: str,
                  quantity: str, unit: str, period: str, description: str,
                  timeout: float) -> None:
    """Send one piece of evidence through the Kafka intake and wait for its reply.

    The intake authenticates the token and checks the evidence with the HTTP API's
    rules before anything is stored: a refusal is printed with the field, what was
    expected and what came, and the command exits 1.
    """
    from svmon.streams.client import NoReply, submit_evidence

    start, _, end = period.partition("..")
    settings = current_settings()
    try:
        reply = submit_evidence(settings, token, contract_id=contract_id,
                                evidence_id=evidence_id, measure=measure, quantity=quantity,
                                unit=unit, period_start=start, period_end=end,
                                description=description, timeout=timeout)
    except NoReply as err:
        raise click.ClickException(f"{err} (is the intake running? `svmon up` starts it)"
                                   ) from err
    except SvmonError as err:
        raise click.ClickException(str(err)) from err
    if reply.get("status") != "accepted":
        click.echo(f"refused ({reply.get('http_status')}): {reply.get('message')}", err=True)
        raise SystemExit(1)
    receipt = reply.get("receipt") or {}
    click.echo(f"accepted {receipt.get('event_id')} as {reply.get('sender')} "
               f"(receipt status {receipt.get('status')})")


@evidence.command("rejections")
@click.option("--contract", "contract_id", default=None)
@click.option("--supplier", default=None, help="Only this supplier's contracts.")
@click.option("--json", "as_json", is_flag=True)
def evidence_rejections(contract_id: str | None, supplier: str | None, as_json: bool) -> None:
    """Events the stream refused, newest first, with the field and the reason."""
    from svmon.bootstrap import repository
    from svmon.models.ingest import IngestStore, Principal

    store = IngestStore(repository(current_settings()))
    if contract_id:
        ids = [contract_id]
    elif supplier:
        ids = [c["contract_id"] for c in store.contracts_of(Principal("supplier", supplier))]
    else:
        ids = store.repo.contract_ids()
    rows = store.rejections(ids, limit=1000)
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    for r in rows:
        click.echo(f"{r['at']:%Y-%m-%d %H:%M}  {r['contract_id'] or '-':<10} "
                   f"{r['event_id'] or '-':<30} {r['reason']}")
    click.echo(f"{len(rows)} rejections")
