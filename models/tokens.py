"""API tokens: who a request comes from.

A token is shown once when made and only its SHA-256 is stored; it stands for one
party, a supplier (by supplier id) or a manager (by id), until it is revoked.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, or_, select, update

from svmon.core.authority import SYSTEM_ACTOR
from svmon.core.errors import InvalidInput
from svmon.models.statements import T
from svmon.models.tables import ApiToken
from svmon.schemas import now_utc

TOKEN_PREFIX = "svm"
PARTY = re.compile(r"[A-Za-z0-9._@-]{1,128}")  # no ':', so no party reads as another's actor
KINDS = ("supplier", "manager")
# party ids no token may have, whatever their case: the system's own actor (a manager's
# actor is its bare id, so a manager "system" would act as the clock), the names a
# reader takes for no one, and ids of dots alone (they read as paths in file names)
RESERVED_PARTIES = (SYSTEM_ACTOR, "svmon", "admin", "root", "anonymous", "unknown", "none",
                    "null")


@dataclass(frozen=True, slots=True)
class Principal:
    """Who a request comes from: a supplier (by supplier id) or a manager (by id)."""

    kind: str  # supplier | manager
    party: str
    token_id: str = ""

    @property
    def actor(self) -> str:
        """The actor written on events: managers by their id (as alerts name them),
        suppliers as ``supplier:<id>``."""
        return self.party if self.kind == "manager" else f"supplier:{self.party}"


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, engine: Engine,
                 writer: contextlib.AbstractContextManager[Any] | None = None) -> None:
        self.engine = engine
        # the inbox's writer queue on SQLite (see IngestStore): one writer at a time
        self._writer = writer if writer is not None else contextlib.nullcontext()

    def create_token(self, kind: str, party: str, label: str = "") -> tuple[str, str]:
        """A new token for ``party``: returns (token id, the token). The token itself is
        shown once and never stored."""
        if kind not in KINDS:
            raise InvalidInput("kind", f"one of {', '.join(KINDS)}", kind)
        if not PARTY.fullmatch(party):
            raise InvalidInput("party", "an id of 1-128 letters, digits and . _ - @", party)
        if party.lower() in RESERVED_PARTIES or not party.strip("."):
            raise InvalidInput("party", "a party id the system does not reserve (not "
                               f"{', '.join(RESERVED_PARTIES)}, in any case, nor dots "
                               "alone)", party)
        token_id = secrets.token_hex(6)
        token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
        with self.engine.begin() as conn:
            conn.execute(T(ApiToken).insert(), [dict(
                token_id=token_id, token_hash=hash_token(token), kind=kind, party=party,
                label=label[:200], created_at=now_utc())])
        return token_id, token

    def revoke_token(self, token_id: str) -> bool:
        t = T(ApiToken)
        with self.engine.begin() as conn:
            n = conn.execute(update(t).where(t.c.token_id == token_id,
                                             t.c.revoked_at.is_(None))
                             .values(revoked_at=now_utc())).rowcount
        return bool(n)

    def tokens(self) -> list[dict[str, Any]]:
        t = T(ApiToken)
        with self.engine.connect() as conn:
            rows = conn.execute(select(t).order_by(t.c.created_at)).mappings().all()
        return [{k: v for k, v in r.items() if k != "token_hash"} for r in rows]

    def principal(self, token: str) -> Principal | str:
        """The principal a token stands for, or why it stands for none."""
        t = T(ApiToken)
        with self.engine.connect() as conn:
            row = conn.execute(select(t.c.token_id, t.c.kind, t.c.party, t.c.revoked_at)
                               .where(t.c.token_hash == hash_token(token))).first()
        if row is None:
            return "unknown token"
        if row.revoked_at is not None:
            return f"token {row.token_id} was revoked"
        return Principal(row.kind, row.party, row.token_id)

    def touch_token(self, token_id: str, at: datetime) -> bool:
        """Record that ``token_id`` was used at ``at``: one UPDATE, which never moves the
        stored time backwards (a later use may have been written first). Returns whether
        the row changed. Callers throttle it (``IngestService``): not a write a request."""
        t = T(ApiToken)
        with self._writer, self.engine.begin() as conn:
            n = conn.execute(update(t).where(t.c.token_id == token_id,
                                             or_(t.c.last_used_at.is_(None),
                                                 t.c.last_used_at < at))
                             .values(last_used_at=at)).rowcount
        return bool(n)
