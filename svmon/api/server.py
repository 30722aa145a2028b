"""Composition of the API process: service, HTTP app and inbox relay, from settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette

from svmon.api.http import build_http_app
from svmon.api.relay import InboxRelay
from svmon.api.service import IngestService
from svmon.api.views import ContractViews
from svmon.models.ingest import IngestStore
from svmon.models.repository import Repository
from svmon.settings import Settings


def build_service(repo: Repository, settings: Settings | None = None) -> IngestService:
    store = IngestStore(repo)
    every = (settings or Settings()).token_last_used_seconds
    return IngestService(store, ContractViews(store, repo.catalogue), last_used_seconds=every)


def build(settings: Settings, repo: Repository, *, relay: bool = True) -> Starlette:
    """The app; with ``relay`` it publishes the inbox to the broker while it runs."""
    service = build_service(repo, settings)

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        r = InboxRelay(service.store, settings).start() if relay else None
        try:
            yield
        finally:
            if r is not None:
                r.stop()

    app = build_http_app(service, lifespan)
    app.state.service = service
    return app


def serve(settings: Settings, **uvicorn_options: Any) -> None:
    import uvicorn

    from svmon.bootstrap import init_database

    # an acknowledgement promises the event survives a crash of the machine, not only
    # of this process: SQLite syncs every commit to disk here
    app = build(settings, init_database(settings, fsync_each_commit=True))
    uvicorn.run(app, host=settings.api_host, port=settings.api_port,
                log_level=settings.log_level, **uvicorn_options)
