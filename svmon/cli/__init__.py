"""The ``svmon`` command line.

    svmon up --demo        broker + worker (+ dashboards) with the demo council
    svmon report --json    every contract's totals and open alerts, from the database
    svmon worker           one Faust worker in the foreground
    svmon demo publish     put the demo council's events on a running system
    svmon catalogue        list the measures of the loaded catalogue

One module per family of commands; importing them registers their commands on ``main``.
"""

from __future__ import annotations

from svmon.cli import alerts, data, demo, evidence, export, replay, run, tokens, up
from svmon.cli.common import main
from svmon.cli.run import NOTEBOOKS, absolute, voila_command

__all__ = ["NOTEBOOKS", "absolute", "main", "voila_command"]
_COMMAND_MODULES = (alerts, data, demo, evidence, export, replay, run, tokens, up)
