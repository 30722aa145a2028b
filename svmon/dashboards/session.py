"""What the pages where people act (supplier portal, review queue) share: the ingestion
service they act through, signing in with an API token, deep links and loading states.

A page never says who is acting: the token does. Every command goes through the same
:class:`~svmon.api.service.IngestService` as the HTTP API, so the actor written on the
event is the token's party and every check and authority rule applies unchanged.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from svmon.api.service import IngestService, ItemErrors
from svmon.core.errors import InvalidInput, Unauthorized
from svmon.dashboards.kit import query_params
from svmon.models.ingest import Principal
from svmon.models.repository import Repository

__all__ = ["CHANNEL", "loading", "open_service", "problem", "query_params", "sign_in"]

CHANNEL = "web"  # the inbox's channel column for events sent from these pages


def open_service(repo: Repository | None = None) -> IngestService:
    """The ingestion service over the repository the environment names."""
    from svmon.api.server import build_service
    from svmon.dashboards import kit

    return build_service(repo if repo is not None else kit.open_repository())


class WrongKind(InvalidInput):
    """A valid token of the other kind of party than the page is for."""


def sign_in(service: IngestService, token: str, kind: str) -> Principal:
    """The party a token belongs to, if it is ``kind``'s (supplier or manager).

    Raises :class:`Unauthorized` for a missing, unknown or revoked token and
    :class:`WrongKind` for another party's token (a supplier on the review queue)."""
    p = service.authenticate(f"Bearer {token.strip()}" if token.strip() else None)
    if p.kind != kind:
        raise WrongKind("token", f"a {kind}'s token (this page is for {kind}s)",
                        f"a {p.kind}'s token")
    return p


def problem(err: BaseException) -> str:
    """What went wrong, for a person: the first refusal of a request, its field named."""
    if isinstance(err, ItemErrors):
        err = err.errors[0].error
    if isinstance(err, Unauthorized):
        return f"Not signed in: {err}"
    return str(err)


def escape(v: Any) -> str:
    return html.escape("" if v is None else str(v))


def span(ident: str, text: str, cls: str = "") -> str:
    """``text`` (already HTML) in a span tests and screen readers can find by id."""
    c = f" class='{cls}'" if cls else ""
    return f"<span id='{ident}'{c}>{text}</span>"


@contextmanager
def loading(target: Any, text: str = "Loading…") -> Iterator[None]:
    """Show a loading line in the HTML widget ``target`` while the block runs."""
    target.value = span("loading", escape(text), "svmon-loading")
    yield


STYLE = """<style>
.svmon-ok {color: #1b5e20} .svmon-refused {color: #8b0000}
.svmon-table td[data-col='evidence_id'] {font-size: 13px; color: inherit}
</style>"""
