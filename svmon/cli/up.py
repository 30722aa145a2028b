"""`svmon up`: the broker, the worker, the API, the intake and the dashboards as one
supervised set of processes."""

from __future__ import annotations

import signal
import time
from typing import Any

import click

from svmon.cli.common import current_settings, main, redact
from svmon.cli.run import absolute, voila_command
from svmon.core.errors import SvmonError
from svmon.settings import Settings

EMBEDDED_HOSTS = ("127.0.0.1", "localhost")


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

    settings = current_settings()
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
        click.echo(f"database {redact(settings.database_url)}")
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
                   f"home.ipynb (portfolio, contract, supplier, review queue, supplier "
                   f"portal, alerts, auditor; "
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
    click.echo(f"  http://127.0.0.1:{settings.dashboard_port}/voila/render/home.ipynb"
               "   the dashboards, from their home page")
    click.echo("  svmon token create --supplier S01   a token for the HTTP API (shown once)")
    click.echo(f"  curl -H 'Authorization: Bearer <token>' "
               f"http://{settings.api_host}:{settings.api_port}/v1/contracts")
