"""The composition root: the one place that builds engines, repositories and the app.

Nothing in the project connects at import time; everything that talks to the outside
world is built here from :class:`~svmon.settings.Settings`.
"""

from __future__ import annotations

from typing import Any

from models.repository import Repository, make_engine
from svmon.catalogue_files import load_catalogue
from svmon.settings import Settings


def repository(settings: Settings) -> Repository:
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue(settings.catalogue_files)
    return Repository(make_engine(settings.database_url), catalogue)


def init_database(settings: Settings) -> Repository:
    """Create missing tables and store the catalogue (safe to run again)."""
    repo = repository(settings)
    repo.create_schema()
    repo.save_catalogue()
    return repo


def worker_app(settings: Settings, **kw: Any) -> Any:
    from streams.app import build_app  # Faust is imported only by those who run it

    app, _ = build_app(settings, init_database(settings), **kw)
    return app
