"""Run one Faust worker: ``python -m streams.worker`` (``svmon worker`` does the same)."""

from __future__ import annotations

import sys

import faust

from svmon.bootstrap import worker_app
from svmon.settings import Settings


def main() -> None:
    # The consumer's own thread (heartbeats, fetches) mostly waits on the network and
    # queued for the GIL behind the threads that decode, fold and write, 5 ms a turn:
    # under sustained load its heartbeats fell behind and the group dropped the worker
    # (``Thread keepalive is not responding``). A shorter turn lets it in sooner.
    sys.setswitchinterval(0.001)
    settings = Settings.from_env()
    app = worker_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
