"""The ``svmon`` command line.

    svmon up --demo        broker + worker (+ dashboards) with the demo council
    svmon report --json    every contract's totals and open alerts, from the database
    svmon worker           one Faust worker in the foreground
    svmon demo publish     put the demo council's events on a running system
    svmon catalogue        list the measures of the loaded catalogue
"""

from __future__ import annotations

import json
import signal
import sys
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from svmon.core.errors import SvmonError
from svmon.settings import Settings

EMBEDDED_HOSTS = ("127.0.0.1", "localhost")


def _settings() -> Settings:
    return Settings.from_env()


@click.group()
@click.version_option(package_name="svmon")
def main() -> None:
    """Social value contract monitor."""


# ------------------------------------------------------------------------- up


def _embedded_endpoint(settings: Settings) -> tuple[str, int] | None:
    """(host, port) when the broker URL points at this machine, else None."""
    hostport = settings.bootstrap.split(",")[0]
    host, _, port = hostport.rpartition(":")
    return (host, int(port)) if host in EMBEDDED_HOSTS else None


def _check(children: list[Any]) -> None:
    from svmon.infra.processes import Child
    from svmon.streams.app import STUCK_EXIT

    for i, c in enumerate(children):
        if not c.alive:
            if c.name == "worker" and c.proc.returncode == STUCK_EXIT:
                click.echo(f"worker   its rebalance never finished; starting it again "
                           f"(see {c.log_path})")
                c.stop()
                children[i] = Child(c.name, c.argv, c.env, c.log_path)
                continue
            raise click.ClickException(f"the {c.name} stopped unexpectedly "
                                       f"(exit {c.proc.returncode}); see {c.log_path}")


def _wait_for(repo: Any, settings: Settings, written: dict[int, tuple[int, int]],
              timeout: float, label: str, children: list[Any]) -> bool:
    """Poll the worker's positions until every record written is in the database."""
    deadline = time.monotonic() + timeout
    total = sum(last - first + 1 for first, last in written.values())
    with click.progressbar(length=total, label=label, show_pos=True) as bar:
        done = 0
        while True:
            _check(children)
            pos = repo.positions(settings.app_id, settings.events_topic)
            now = sum(max(0, min(pos.get(p, -1), last) - first + 1)
                      for p, (first, last) in written.items())
            bar.update(now - done)
            done = now
            if done >= total:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.5)


@main.command()
@click.option("--demo/--no-demo", default=False, help="Load the demo council's events.")
@click.option("--seed", default=7, show_default=True, help="Seed of the demo data.")
@click.option("--contracts", default=50, show_default=True, help="Demo contracts.")
@click.option("--embedded-broker/--external-broker", default=True, show_default=True,
              help="Start the embedded Tansu broker (only for a broker URL on this machine).")
@click.option("--exit-after-load", is_flag=True,
              help="Stop everything once the demo is loaded (for scripts and tests).")
def up(demo: bool, seed: int, contracts: int, embedded_broker: bool,
       exit_after_load: bool) -> None:
    """Start the broker, the worker, the API, the Kafka intake and the dashboards; Ctrl-C
    stops them all."""
    from svmon.bootstrap import init_database
    from svmon.infra.broker import EmbeddedBroker
    from svmon.infra.processes import Child, python_module
    from svmon.streams.topics import ensure_topics

    settings = _settings()
    logs = settings.data_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    broker = None
    children: list[Child] = []

    def _stop(*_: Any) -> None:  # SIGTERM stops `up` as Ctrl-C does, whatever it is doing
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)
    try:
        endpoint = _embedded_endpoint(settings)
        if embedded_broker and endpoint:
            broker = EmbeddedBroker(*endpoint, log_path=logs / "broker.log").start()
            click.echo(f"broker   embedded Tansu on {broker.bootstrap} (in memory)")
        else:
            click.echo(f"broker   {settings.broker_url}")
        repo = init_database(settings)
        click.echo(f"database {_redact(settings.database_url)}")
        ensure_topics(settings)
        children.append(Child("worker", python_module("svmon.streams.worker"), settings.to_env(),
                              logs / "worker.log"))
        click.echo(f"worker   started (log: {logs / 'worker.log'})")
        children.append(Child("dispatcher", python_module("svmon.cli", "dispatch"),
                              settings.to_env(), logs / "dispatch.log"))
        click.echo(f"alerts   dispatcher started (log: {logs / 'dispatch.log'})")
        children.append(Child("api", python_module("svmon.cli", "api"), settings.to_env(),
                              logs / "api.log"))
        _wait_for_api(settings, children)
        click.echo(f"api      http://{settings.api_host}:{settings.api_port}/v1/openapi.json "
                   f"(log: {logs / 'api.log'})")
        children.append(Child("intake", python_module("svmon.cli", "intake"),
                              settings.to_env(), logs / "intake.log"))
        click.echo(f"intake   {settings.intake_topic} -> inbox, replies on "
                   f"{settings.intake_replies_topic} (log: {logs / 'intake.log'})")
        children.append(Child("dashboards", voila_command(settings), absolute(settings).to_env(),
                              logs / "voila.log"))
        click.echo(f"dashboards http://127.0.0.1:{settings.dashboard_port}/voila/render/"
                   f"portfolio.ipynb (contract, supplier, alerts, auditor; "
                   f"log: {logs / 'voila.log'})")
        if demo:
            _load_demo(settings, repo, seed, contracts, children)
        _where_to_look(settings, repo)
        if exit_after_load:
            return
        click.echo("Running. Press Ctrl-C to stop.")
        while True:
            _check(children)
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    except SvmonError as err:
        raise click.ClickException(str(err)) from err
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not orphan
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the children while they stop
        click.echo("stopping ...")
        for c in reversed(children):
            c.stop()
        if broker is not None:
            broker.stop()
        click.echo("stopped.")


NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def absolute(settings: Settings) -> Settings:
    """The same settings with the data folder and an SQLite file as absolute paths, for
    processes that run elsewhere (Voila's kernels run in the notebooks' folder)."""
    url = settings.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return settings.with_(data_dir=settings.data_dir.resolve(), database_url=url)


def voila_command(settings: Settings, folder: Path = NOTEBOOKS,
                  ip: str = "127.0.0.1") -> list[str]:
    """Voila serving the dashboards only: no sources, no tracebacks, no other files; one
    kernel per notebook started and run ahead of the next visitor (preheated); kernels
    idle for 15 minutes are shut down."""
    return [sys.executable, "-m", "voila", str(folder), "--no-browser",
            f"--port={settings.dashboard_port}", f"--Voila.ip={ip}",
            "--show_tracebacks=False", "--strip_sources=True",
            "--VoilaConfiguration.file_allowlist=[]",
            "--VoilaConfiguration.file_denylist=['.*']",
            "--preheat_kernel=True", "--pool_size=1",
            "--MappingKernelManager.cull_idle_timeout=900",
            "--MappingKernelManager.cull_interval=60"]


@main.command()
@click.option("--ip", default="127.0.0.1", show_default=True,
              help="Address to listen on: 0.0.0.0 in a container behind the reverse proxy.")
@click.option("--notebooks", "folder", default=None,
              type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The dashboards' notebooks (default: the source tree's notebooks/).")
def dashboards(ip: str, folder: Path | None) -> None:
    """Serve only the dashboards with Voila on SVMON_DASHBOARD_PORT (no sources, no
    tracebacks, no other files); in production, behind the reverse proxy's sign-in."""
    import os

    settings = absolute(_settings())
    argv = voila_command(settings, folder or NOTEBOOKS, ip=ip)
    os.execvpe(argv[0], argv, {**os.environ, **settings.to_env()})


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def lab(jupyter_args: tuple[str, ...]) -> None:
    """Open the dashboards' notebooks in JupyterLab for ad hoc analysis (further
    arguments go to JupyterLab); `from svmon.dashboards import queries` works there."""
    import os

    env = {**os.environ, **absolute(_settings()).to_env()}
    os.execvpe(sys.executable, [sys.executable, "-m", "jupyter", "lab",
                                f"--ServerApp.root_dir={NOTEBOOKS}", *jupyter_args], env)


def _wait_for_api(settings: Settings, children: list[Any], timeout: float = 30.0) -> None:
    from urllib.error import URLError
    from urllib.request import urlopen

    url = f"http://{settings.api_host}:{settings.api_port}/v1/health"
    deadline = time.monotonic() + timeout
    while True:
        _check(children)
        try:
            with urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except (URLError, OSError):
            pass
        if time.monotonic() > deadline:
            raise click.ClickException(f"the API did not answer on {url} within {timeout:.0f}s "
                                       f"(port {settings.api_port} in use?)")
        time.sleep(0.2)


def _load_demo(settings: Settings, repo: Any, seed: int, contracts: int,
               children: list[Any]) -> None:
    from svmon.demo import generate
    from svmon.streams.client import publish

    events = generate(seed=seed, contracts=contracts)
    written: dict[int, tuple[int, int]] = {}
    with click.progressbar(length=len(events), label="publishing demo events ",
                           show_pos=True) as bar:
        publish(events, settings, progress=bar.update, offsets=written)
    if not _wait_for(repo, settings, written, timeout=300, label="folding into the database",
                     children=children):
        click.echo("warning: the worker is still catching up; figures will grow", err=True)


def _where_to_look(settings: Settings, repo: Any) -> None:
    counts = repo.counts()
    click.echo(f"\n{counts['contracts']} contracts, {counts['journal']} events journalled, "
               f"{counts['open_alerts']} open alerts, {counts['dead_letters']} dead letters.")
    click.echo("Where to look:")
    click.echo("  svmon report            totals and open alerts per contract")
    click.echo("  svmon report --json     the same for scripts")
    click.echo(f"  topics                  {settings.events_topic}, {settings.alerts_topic}, "
               f"{settings.dead_letter_topic} on {settings.bootstrap}")
    click.echo(f"  http://127.0.0.1:{settings.dashboard_port}/voila/render/portfolio.ipynb"
               "   the dashboards")
    click.echo("  svmon token create --supplier S01   a token for the HTTP API (shown once)")
    click.echo(f"  curl -H 'Authorization: Bearer <token>' "
               f"http://{settings.api_host}:{settings.api_port}/v1/contracts")


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url


# ------------------------------------------------------------------ commands


@main.command()
def worker() -> None:
    """Run one Faust worker in the foreground."""
    from svmon.streams.worker import main as run

    sys.argv = [sys.argv[0]]
    run()


@main.command("init-db")
def init_db() -> None:
    """Create or upgrade the tables and store the catalogue (safe to repeat); prints the
    schema revision the database is at."""
    from svmon.bootstrap import init_database
    from svmon.models.migrate import current_revision

    repo = init_database(_settings())
    click.echo(f"database ready at schema revision {current_revision(repo.engine)}")


@main.command()
def topics() -> None:
    """Create the missing topics with SVMON_PARTITIONS partitions and
    SVMON_REPLICATION_FACTOR replicas (safe to repeat), then check their partition and
    replica counts; the contract-events topic is created with unlimited retention."""
    from kafka.errors import KafkaError

    from svmon.streams.topics import describe_topics, ensure_topics, wanted_topics

    settings = _settings()
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

    data = repository(_settings()).report()
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
@click.option("--source", type=click.Choice(["journal", "topic"]), default="journal",
              show_default=True, help="Read the database journal or the Kafka topic.")
@click.option("--as-of", "as_of", default=None,
              help="Only events recorded up to this ISO 8601 time (UTC if no offset).")
@click.option("--verify", is_flag=True,
              help="Check the hash chain and compare with the live projections; "
                   "exit 1 on any break or mismatch.")
@click.option("--report", "report_dir", type=click.Path(file_okay=False, path_type=Path),
              default=None, help="Write report.json, totals.csv, lineage.csv, report.html.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def replay(source: str, as_of: str | None, verify: bool, report_dir: Path | None,
           as_json: bool) -> None:
    """Rebuild every figure from the log with the same fold the live worker uses."""
    from svmon.audit import report as reports
    from svmon.audit.chain import verify_chains
    from svmon.audit.replay import compare, rebuild, rebuild_from_topic
    from svmon.bootstrap import repository

    settings = _settings()
    repo = repository(settings)
    when = _parse_when(as_of) if as_of else None
    length = repo.counts()["journal"]  # the topic holds about as many (plus refusals)
    with click.progressbar(length=length, label=f"replaying the {source}", file=sys.stderr,
                           show_pos=True) as bar:
        if source == "journal":
            rebuilt = rebuild(repo.journal_events(until=when), repo.catalogue,
                              progress=bar.update)
        else:
            rebuilt = rebuild_from_topic(settings.bootstrap, settings.events_topic,
                                         repo.catalogue, as_of=when, progress=bar.update)
    breaks, mismatches = [], []
    if verify:
        breaks = verify_chains(repo.chain_rows(), repo.chain_heads())
        if when is None:
            mismatches = compare(rebuilt, repo.live_totals(),
                                 repo.expected_totals(rebuilt.states.values()),
                                 repo.open_alert_identities(),
                                 repo.manually_resolved_identities())
        else:
            click.echo("note: --as-of given, so figures are not compared with the live "
                       "projections (they show now); the chain is checked in full.", err=True)
    data = reports.build(rebuilt, repo.catalogue, source=source, as_of=when, breaks=breaks,
                         mismatches=mismatches, verified=verify)
    if report_dir is not None:
        for p in reports.write(data, report_dir):
            click.echo(f"wrote {p}", err=True)
    if as_json:
        click.echo(json.dumps(data, indent=2))
    click.echo(f"{rebuilt.events} events read, {len(rebuilt.states)} contracts rebuilt, "
               f"{rebuilt.rejected} rejected, {len(rebuilt.open_alerts())} open alerts",
               err=as_json)
    for b in breaks:
        click.echo(f"chain break: {b}", err=True)
    for m in mismatches:
        click.echo(f"mismatch: {m}", err=True)
    if verify:
        if breaks or mismatches:
            raise SystemExit(1)
        click.echo("verified: every chain intact" +
                   ("" if when else ", every figure matches the live projections"),
                   err=as_json)


def _parse_when(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise click.BadParameter(f"expected an ISO 8601 time such as 2026-03-31T17:00:00Z "
                                 f"(got {text!r})", param_hint="--as-of") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


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

    rows = repository(_settings()).alerts(None if status == "all" else status, contract)
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
    from svmon.models.repository import NotAllowed

    repo = repository(_settings())
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
    init_database(_settings()).set_recipient(recipient_id, name, email, webhook_url, digest)
    click.echo(f"{recipient_id}: email={email or '-'} webhook={webhook_url or '-'} "
               f"digest={digest}")


@main.command()
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between rounds.")
def dispatch(once: bool, interval: float) -> None:
    """Deliver pending alerts by email and webhook, retrying with backoff."""
    import logging

    from svmon.bootstrap import dispatcher

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    d = dispatcher(settings)
    click.echo(f"dispatching on channels: {', '.join(d.channels) or 'none (inbox only)'}")
    if once:
        click.echo(json.dumps(d.run_once()))
        return
    stop = []  # SIGTERM or Ctrl-C: finish the round in progress, then leave
    signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    signal.signal(signal.SIGINT, lambda *_: stop.append(True))
    d.run_forever(interval, should_stop=lambda: bool(stop))


@main.command()
def api() -> None:
    """Serve the HTTP API (and relay what it receives to the broker)."""
    import logging

    from svmon.api.server import serve

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings)


@main.command()
@click.option("--relay/--no-relay", default=False, show_default=True,
              help="Also publish the inbox to contract-events (when no API process runs).")
def intake(relay: bool) -> None:
    """Read the Kafka intake topic: authenticate each message by its token header, check
    it as the HTTP API does, store it in the inbox and answer on the replies topic."""
    import logging

    from svmon.api.intake import serve

    settings = _settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings, relay=relay)


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
        token_id, secret = IngestStore(init_database(_settings())).create_token(
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

    if not IngestStore(init_database(_settings())).revoke_token(token_id):
        raise click.ClickException(f"no active token {token_id!r}")
    click.echo(f"token {token_id} revoked")


@token.command("list")
def token_list() -> None:
    """Every token: id, party, created, last used, revoked."""
    from svmon.bootstrap import init_database
    from svmon.models.ingest import IngestStore

    for t in IngestStore(init_database(_settings())).tokens():
        revoked = f"revoked {t['revoked_at']:%Y-%m-%d %H:%M}" if t["revoked_at"] else "active"
        # the API writes it at most once per SVMON_TOKEN_LAST_USED_SECONDS per token
        used = f"last used {t['last_used_at']:%Y-%m-%d %H:%M}" if t["last_used_at"] \
            else "never used"
        click.echo(f"{t['token_id']}  {t['kind']:<8} {t['party']:<20} "
                   f"created {t['created_at']:%Y-%m-%d %H:%M}  {used:<26}  {revoked}  "
                   f"{t['label']}")


@main.group()
def evidence() -> None:
    """Evidence from files and the Kafka client."""


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

    service = build_service(init_database(_settings()))
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
@click.option("--contract", "contract_id", required=True)
@click.option("--supplier", required=True, help="Your supplier id (written as the actor).")
@click.option("--evidence-id", required=True)
@click.option("--measure", required=True)
@click.option("--quantity", required=True)
@click.option("--unit", default="", help="The measure's unit (checked by the stream).")
@click.option("--period", required=True, help="START..END as YYYY-MM-DD..YYYY-MM-DD.")
@click.option("--description", default="")
def evidence_send(contract_id: str, supplier: str, evidence_id: str, measure: str,
                  quantity: str, unit: str, period: str, description: str) -> None:
    """Send one evidence event straight to the Kafka topic (the direct-integration path).

    The stream checks it with the same rules as the API; a refusal shows up in
    'svmon evidence rejections' and the API's /v1/rejections.
    """
    from svmon.streams.client import send_evidence

    start, _, end = period.partition("..")
    try:
        event = send_evidence(_settings(), contract_id=contract_id, supplier=supplier,
                              evidence_id=evidence_id, measure=measure, quantity=quantity,
                              unit=unit, period_start=start, period_end=end,
                              description=description)
    except SvmonError as err:
        raise click.ClickException(str(err)) from err
    click.echo(f"sent {event.event_id} to {_settings().events_topic}")


@evidence.command("rejections")
@click.option("--contract", "contract_id", default=None)
@click.option("--supplier", default=None, help="Only this supplier's contracts.")
@click.option("--json", "as_json", is_flag=True)
def evidence_rejections(contract_id: str | None, supplier: str | None, as_json: bool) -> None:
    """Events the stream refused, newest first, with the field and the reason."""
    from svmon.bootstrap import repository
    from svmon.models.ingest import IngestStore, Principal

    store = IngestStore(repository(_settings()))
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


@main.group()
def export() -> None:
    """Open exports, rebuilt from the journal with the live fold."""


def _rebuilt_states(contract: str | None) -> tuple[Any, list[Any]]:
    from svmon.audit.replay import rebuild
    from svmon.bootstrap import repository

    repo = repository(_settings())
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
              help="Assessment date (default: today).")
def export_notice(contract: str | None, on: datetime | None) -> None:
    """KPI ratings for a Procurement Act 2023 contract performance notice, as JSON."""
    from svmon.audit.exports import performance_notice

    repo, states = _rebuilt_states(contract)
    day = on.date() if on else datetime.now(UTC).date()
    click.echo(json.dumps([performance_notice(s, repo.catalogue, day) for s in states],
                          indent=2))


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
        n = publish(events, _settings(), progress=bar.update)
    click.echo(f"published {n} events")


@main.command()
@click.option("--edition", default=None, help="Only this edition.")
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False, path_type=Path))
def catalogue(edition: str | None, files: tuple[Path, ...]) -> None:
    """List the measures of the demo catalogue plus FILES (CSV or XLSX)."""
    from svmon.catalogue_files import load_catalogue

    cat = load_catalogue((*_settings().catalogue_files, *files))
    for m in sorted(cat, key=lambda m: (m.edition, m.set_name, m.code)):
        if edition and m.edition != edition:
            continue
        proxy = "record only" if m.proxy_gbp is None else f"£{m.proxy_gbp}"
        flag = " (illustrative)" if m.illustrative else ""
        click.echo(f"{m.edition:<20} {m.code:<14} {proxy:>12}{flag}  {m.title} [{m.unit}]")


if __name__ == "__main__":  # pragma: no cover
    main()
