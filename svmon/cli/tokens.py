"""Bearer tokens of the HTTP API."""

from __future__ import annotations

import click

from svmon.cli.common import current_settings, main
from svmon.core.errors import SvmonError


@main.group()
def token() -> None:
    """Bearer tokens of the HTTP API (stored only as hashes)."""


@token.command("create")
@click.option("--supplier", default=None, help="The supplier id the token acts for.")
@click.option("--manager", default=None, help="The contract manager id the token acts for.")
@click.option("--label", default="", help="A note, e.g. whose laptop.")
def token_create(supplier: str | None, manager: str | None, label: str) -> None:
    """Create a token; it is printed once and cannot be shown again."""
    from svmon.bootstrap import init_database
    from svmon.models.ingest import IngestStore

    if bool(supplier) == bool(manager):
        raise click.UsageError("give exactly one of --supplier or --manager")
    kind, party = ("supplier", supplier) if supplier else ("manager", manager)
    try:
        token_id, secret = IngestStore(init_database(current_settings())).create_token(
            kind, str(party), label)
    except SvmonError as err:
        raise click.BadParameter(str(err)) from err
    click.echo(f"token {token_id} for {kind} {party}; keep it secret, it is not stored:",
               err=True)
    click.echo(secret)


@token.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    """Revoke a token at once (its id is in 'svmon token list')."""
    from svmon.bootstrap import init_database
    from svmon.models.ingest import IngestStore

    if not IngestStore(init_database(current_settings())).revoke_token(token_id):
        raise click.ClickException(f"no active token {token_id!r}")
    click.echo(f"token {token_id} revoked")


@token.command("list")
def token_list() -> None:
    """Every token: id, party, created, last used, revoked."""
    from svmon.bootstrap import init_database
    from svmon.models.ingest import IngestStore

    for t in IngestStore(init_database(current_settings())).tokens():
        revoked = f"revoked {t['revoked_at']:%Y-%m-%d %H:%M}" if t["revoked_at"] else "active"
        # the API writes it at most once per SVMON_TOKEN_LAST_USED_SECONDS per token
        used = f"last used {t['last_used_at']:%Y-%m-%d %H:%M}" if t["last_used_at"] \
            else "never used"
        click.echo(f"{t['token_id']}  {t['kind']:<8} {t['party']:<20} "
                   f"created {t['created_at']:%Y-%m-%d %H:%M}  {used:<26}  {revoked}  "
                   f"{t['label']}")
