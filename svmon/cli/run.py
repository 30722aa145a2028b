"""Commands that run one long-lived process: worker, dispatcher, API, intake, Voila
dashboards and JupyterLab."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import click

from svmon.cli.common import current_settings, main
from svmon.settings import Settings

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"


def absolute(settings: Settings) -> Settings:
    """The same settings with the data folder and an SQLite file as absolute paths, for
    processes that run elsewhere (Voila's kernels run in the notebooks' folder)."""
    url = settings.database_url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(Path(url.removeprefix("sqlite:///")).resolve())
    return settings.with_(data_dir=settings.data_dir.resolve(), database_url=url)


def voila_command(settings: Settings, folder: Path = NOTEBOOKS,
                  ip: str = "127.0.0.1") -> list[str]:
    """Voila serving the dashboards only: no sources, no tracebacks, no other files, no
    listing of the notebooks (svmon/cli/voila_server.py); one kernel per notebook started
    and run ahead of the next visitor (preheated); kernels idle for 15 minutes are shut
    down."""
    return [sys.executable, "-m", "svmon.cli.voila_server", str(folder), "--no-browser",
            f"--port={settings.dashboard_port}", f"--Voila.ip={ip}",
            "--show_tracebacks=False", "--strip_sources=True",
            "--VoilaConfiguration.file_allowlist=[]",
            "--VoilaConfiguration.file_denylist=['.*']",
            # one item, in the form a class Voila does not declare is parsed in ("['*']"
            # would be taken as one glob, that literal string)
            "--ContentsManager.hide_globs=*",
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

    settings = absolute(current_settings())
    argv = voila_command(settings, folder or NOTEBOOKS, ip=ip)
    os.execvpe(argv[0], argv, {**os.environ, **settings.to_env()})


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("jupyter_args", nargs=-1, type=click.UNPROCESSED)
def lab(jupyter_args: tuple[str, ...]) -> None:
    """Open the dashboards' notebooks in JupyterLab for ad hoc analysis (further
    arguments go to JupyterLab); `from svmon.dashboards import queries` works there."""
    import os

    env = {**os.environ, **absolute(current_settings()).to_env()}
    os.execvpe(sys.executable, [sys.executable, "-m", "jupyter", "lab",
                                f"--ServerApp.root_dir={NOTEBOOKS}", *jupyter_args], env)


@main.command()
def worker() -> None:
    """Run one Faust worker in the foreground."""
    from svmon.streams.worker import main as run

    sys.argv = [sys.argv[0]]
    run()


@main.command()
@click.option("--once", is_flag=True, help="One round, then exit.")
@click.option("--interval", default=1.0, show_default=True, help="Seconds between rounds.")
def dispatch(once: bool, interval: float) -> None:
    """Deliver pending alerts by email and webhook, retrying with backoff."""
    import logging

    from svmon.bootstrap import dispatcher

    settings = current_settings()
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

    settings = current_settings()
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

    settings = current_settings()
    logging.basicConfig(level=settings.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve(settings, relay=relay)
