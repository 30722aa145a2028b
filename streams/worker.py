"""Run one Faust worker: ``python -m svmon.streams.worker`` (``svmon worker`` does the same)."""

from __future__ import annotations

import faust

from svmon.bootstrap import worker_app
from svmon.settings import Settings


def main() -> None:
    settings = Settings.from_env()
    app = worker_app(settings)
    worker = faust.Worker(app, loglevel=settings.log_level.upper(), quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
