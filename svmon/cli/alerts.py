"""The alert inbox and where each recipient hears about alerts."""

from __future__ import annotations

import json
from datetime import datetime

import click

from svmon.cli.common import current_settings, main
from svmon.core.errors import SvmonError


@main.group()
def alerts() -> None:
    """The alert inbox: list, acknowledge, resolve."""


@alerts.command("list")
@click.option("--status", type=click.Choice(["unresolved", "open", "acknowledged", "resolved",
                                             "all"]), default="unresolved", show_default=True)
@click.option("--contract", default=None)
@click.option("--json", "as_json", is_flag=True)
def alerts_list(status: str, contract: str | None, as_json: bool) -> None:
    """Alerts, newest first."""
    from svmon.bootstrap import repository

    rows = repository(current_settings()).alerts(None if status == "all" else status, contract)
    if as_json:
        click.echo(json.dumps([{k: (v.isoformat() if isinstance(v, datetime) else v)
                                for k, v in r.items()} for r in rows], indent=2))
        return
    for r in rows:
        click.echo(f"{r['raised_at']:%Y-%m-%d %H:%M}  {r['status']:<12} {r['contract_id']:<8} "
                   f"{r['kind']:<17} {r['measure']:<14} {r['subject']:<14} {r['alert_id']}")
    click.echo(f"{len(rows)} alerts")


def _decide(action: str, alert_id: str, actor: str) -> None:
    from svmon.bootstrap import repository
    from svmon.core.errors import NotAllowed

    repo = repository(current_settings())
    try:
        out = getattr(repo, action)(alert_id, actor)
    except NotAllowed as err:
        raise click.ClickException(str(err)) from err
    except SvmonError as err:
        raise click.BadParameter(str(err), param_hint="ALERT_ID") from err
    click.echo(f"{alert_id}: {out['status']}" + ("" if out["changed"] else " (no change)"))


@alerts.command("ack")
@click.argument("alert_id")
@click.option("--as", "actor", required=True, help="The manager acknowledging (e.g. mgr-aoife).")
def alerts_ack(alert_id: str, actor: str) -> None:
    """Acknowledge an alert (its contract's manager or deputy only)."""
    _decide("acknowledge", alert_id, actor)


@alerts.command("resolve")
@click.argument("alert_id")
@click.option("--as", "actor", required=True, help="The manager resolving it.")
def alerts_resolve(alert_id: str, actor: str) -> None:
    """Resolve an alert by hand (its contract's manager or deputy only)."""
    _decide("resolve", alert_id, actor)


@main.command()
@click.argument("recipient_id")
@click.option("--name", default="")
@click.option("--email", default=None)
@click.option("--webhook", "webhook_url", default=None, help="Teams/Slack/any JSON endpoint.")
@click.option("--digest/--no-digest", default=False, help="One email a day instead.")
def recipient(recipient_id: str, name: str, email: str | None, webhook_url: str | None,
              digest: bool) -> None:
    """Say where RECIPIENT_ID (a manager, deputy or supplier contact) hears about alerts."""
    from svmon.bootstrap import init_database

    if webhook_url:
        from urllib.parse import urlparse

        try:
            u = urlparse(webhook_url)
            ok = u.scheme in ("http", "https") and bool(u.hostname) and (u.port or 1) > 0
        except ValueError:
            ok = False
        if not ok:
            raise click.BadParameter(f"expected an http(s) URL (got {webhook_url!r})",
                                     param_hint="--webhook")
    if email and ("@" not in email or any(c in email for c in "\r\n <>,")):
        raise click.BadParameter(f"expected one email address (got {email!r})",
                                 param_hint="--email")
    init_database(current_settings()).set_recipient(recipient_id, name, email, webhook_url, digest)
    click.echo(f"{recipient_id}: email={email or '-'} webhook={webhook_url or '-'} "
               f"digest={digest}")
