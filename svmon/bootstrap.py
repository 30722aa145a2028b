"""The composition root: the one place that builds engines, repositories and the app.

Nothing in the project connects at import time; everything that talks to the outside
world is built here from :class:`~svmon.settings.Settings`.
"""

from __future__ import annotations

from typing import Any

from svmon.catalogue_files import load_catalogue
from svmon.models.engine import make_engine
from svmon.models.repository import Repository
from svmon.settings import Settings


def repository(settings: Settings, *, fsync_each_commit: bool = False,
               checkpoint_behind: bool = False) -> Repository:
    if settings.database_url.startswith("sqlite"):
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    catalogue = load_catalogue(settings.catalogue_files)
    engine = make_engine(settings.database_url, fsync_each_commit=fsync_each_commit,
                         checkpoint_behind=checkpoint_behind)
    return Repository(engine, catalogue, checkpoint_behind=checkpoint_behind)


def init_database(settings: Settings, *, fsync_each_commit: bool = False,
                  checkpoint_behind: bool = False) -> Repository:
    """Bring the schema to the newest revision and store the catalogue (safe to run
    again, and from several processes at once: see ``svmon.models.migrate``)."""
    repo = repository(settings, fsync_each_commit=fsync_each_commit,
                      checkpoint_behind=checkpoint_behind)
    repo.create_schema()
    repo.save_catalogue()
    return repo


def worker_app(settings: Settings, **kw: Any) -> Any:
    from svmon.streams.app import build_app  # Faust is imported only by those who run it

    kw.setdefault("writer", settings.batch_writer)
    app, _ = build_app(settings, init_database(settings, checkpoint_behind=True),
                       open_repository=repository, **kw)
    return app


def dispatcher(settings: Settings, repo: Repository | None = None) -> Any:
    """The alert dispatcher with the channels the settings configure."""
    from datetime import timedelta

    from svmon.alerts.dispatch import (
        Channel,
        Dispatcher,
        DispatchPolicy,
        SmtpChannel,
        WebhookChannel,
    )

    channels: dict[str, Channel] = {}
    if settings.smtp_url:
        channels["email"] = SmtpChannel.from_url(settings.smtp_url, settings.smtp_from,
                                                 settings.smtp_cafile or None)
    if settings.webhook_secret:
        channels["webhook"] = WebhookChannel(settings.webhook_secret)
    policy = DispatchPolicy(escalate_after=timedelta(hours=settings.escalate_hours),
                            dashboard_url=settings.dashboard_url,
                            lease=timedelta(seconds=settings.dispatch_lease_seconds))
    return Dispatcher(repo or init_database(settings), channels, policy)
