"""The HTTP API: a Starlette (ASGI) app over :class:`~svmon.api.service.IngestService`.

Routes are thin: read and limit the body, check its content type, authenticate, call
the service in a worker thread (the service talks to the database synchronously) and
map errors to status codes. Every refusal is a 4xx whose JSON body names the field,
what was expected and what came; anything else is a defect and logged as one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from svmon.api import csvio, reads
from svmon.api.document_check import DocumentError, DocumentGate
from svmon.api.openapi import MAX_BEFORE, SUBMISSION_STATUSES, document, request_schemas
from svmon.api.service import IngestService, ItemErrors
from svmon.core.errors import (
    Conflict,
    InvalidInput,
    NotAllowed,
    NotFound,
    SchemaError,
    Unauthorized,
)
from svmon.models.engine import TRANSIENT
from svmon.models.ingest import Principal
from svmon.schemas import ID_EXPECTED, MAX_MESSAGE_BYTES, is_id, parse_json

log = logging.getLogger(__name__)
MAX_JSON_BATCH_BYTES = 2 * 1024 * 1024
OPENAPI_PATH = "/v1/openapi.json"
RETRY_AFTER = 5


class BodyError(Exception):
    def __init__(self, status: int, error: str, field: str, expected: str, got: str) -> None:
        super().__init__(f"{field!r} must be {expected} (got {got})")
        self.status, self.error = status, error
        self.field, self.expected, self.got = field, expected, got


def _default(v: Any) -> Any:
    if isinstance(v, datetime | date):
        return v.isoformat()
    if isinstance(v, Decimal):
        return str(v)
    raise TypeError(f"not JSON serialisable: {type(v).__name__}")


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return json.dumps(content, default=_default, separators=(",", ":")).encode()


def _error(status: int, error: str, message: str, **extra: Any) -> Json:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return Json({"error": error, "message": message, **extra}, status, headers=headers)


def _failure(err: Exception, documented: bool = False) -> Json:
    """The response for a refusal (never a 5xx: these are all about the request).

    ``documented``: the request was checked against the API document first (HTTP), so
    a refusal that is not a :class:`DocumentError` is a rule the document cannot state
    and is answered 409, keeping 422 for what breaks the document. Without it (the
    Kafka intake's replies) every refusal of the input is 422, as before.
    """
    if documented and isinstance(err, ItemErrors):
        kinds = [type(e.error) for e in err.errors]
        status = 403 if NotAllowed in kinds else 404 if NotFound in kinds else \
            422 if any(isinstance(e.error, DocumentError) for e in err.errors) else 409
        return _error(status, "refused", f"nothing was stored: {err}",
                      errors=[e.as_dict(err.label) for e in err.errors])
    if documented and isinstance(err, InvalidInput) and not isinstance(err, DocumentError):
        d = err.as_dict()
        return _error(409, "conflict" if isinstance(err, Conflict) else "refused",
                      d.pop("message"), **{k: v for k, v in d.items() if k != "error"})
    if isinstance(err, Unauthorized):
        return _error(401, "unauthorized", str(err))
    if isinstance(err, NotAllowed):
        return _error(403, "forbidden", str(err))
    if isinstance(err, NotFound):
        return _error(404, "not_found", str(err))
    if isinstance(err, BodyError):
        return _error(err.status, err.error, str(err), field=err.field,
                      expected=err.expected, got=err.got)
    if isinstance(err, ItemErrors):
        kinds = [type(e.error) for e in err.errors]
        status = 403 if NotAllowed in kinds else 404 if NotFound in kinds else \
            409 if Conflict in kinds else 422
        return _error(status, "refused", f"nothing was stored: {err}",
                      errors=[e.as_dict(err.label) for e in err.errors])
    if isinstance(err, InvalidInput):
        d = err.as_dict()
        status = 409 if isinstance(err, Conflict) else 422
        return _error(status, "conflict" if status == 409 else "invalid", d.pop("message"),
                      **{k: v for k, v in d.items() if k != "error"})
    raise err


async def _body(request: Request, limit: int, media: str = "application/json") -> bytes:
    ctype = request.headers.get("content-type", "")
    if ctype.split(";")[0].strip().lower() != media:
        raise BodyError(415, "unsupported_media_type", "content-type", media, repr(ctype))
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise BodyError(413, "too_large", "body", f"at most {limit} bytes",
                        f"{declared} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyError(413, "too_large", "body", f"at most {limit} bytes",
                            f"more than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _json(request: Request, limit: int = MAX_MESSAGE_BYTES,
                optional: bool = False) -> Any:
    if optional and not request.headers.get("content-type") and \
            request.headers.get("content-length", "0") == "0":
        return None
    raw = await _body(request, limit)
    if optional and not raw:
        return None
    try:
        return parse_json(raw, limit)
    except SchemaError as err:
        raise BodyError(400, "malformed", "body", "a UTF-8 JSON object", str(err.got)) \
            from None


def _query_int(request: Request, name: str, default: int | None, lo: int, hi: int
               ) -> int | None:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isascii() or not raw.isdigit() or len(raw) > len(str(hi)) \
            or not lo <= int(raw) <= hi:
        raise DocumentError(name, f"a whole number from {lo} to {hi}", raw)
    return int(raw)


def _ident_param(name: str, value: str) -> str:
    """Ids in paths and queries: the wire schema's one grammar (the OpenAPI document's
    pattern), so a NUL, a control character or a path never reaches the database."""
    if not is_id(value):
        raise DocumentError(name, ID_EXPECTED, value)
    return value


def _query_ident(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return None if raw is None else _ident_param(name, raw)


Handler = Callable[[Request, Principal], Awaitable[Any]]


def build_http_app(service: IngestService,
                   lifespan: Callable[[Starlette], Any] | None = None) -> Starlette:
    async def call(fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return await run_in_threadpool(fn, *args, **kw)

    gate = DocumentGate(request_schemas())

    async def body_of(request: Request, op: str, optional: bool = False) -> Any:
        """The JSON body, valid against the document's schema for ``op`` (or None when
        the body is optional and absent)."""
        body = await _json(request, optional=optional)
        if body is not None or not optional:
            gate.check(op, body)
        return body

    def checked_items(items: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
        """Evidence items, each one that breaks the document's item schema replaced by
        the way it does (refused with the others, by position or row)."""
        out: list[tuple[int, Any]] = []
        for n, item in items:
            if isinstance(item, dict):
                found = gate.errors("evidenceItem", item)
                out.append((n, found[0] if found else item))
            else:
                out.append((n, item))
        return out

    def endpoint(handler: Handler, status: int = 200) -> Callable[[Request], Awaitable[Response]]:
        async def run(request: Request) -> Response:
            try:
                principal = await call(service.authenticate,
                                       request.headers.get("authorization"))
                result = await handler(request, principal)
            except (Unauthorized, NotAllowed, NotFound, InvalidInput, ItemErrors,
                    BodyError) as err:
                return _failure(err, documented=True)
            # a lost or refused database connection: the request's transaction did not
            # commit, so the answer is 503 and the client retries (the same event id is
            # idempotent)
            except TRANSIENT as err:
                log.warning("database unavailable on %s %s: %s", request.method,
                            request.url.path, err)
                response = _error(503, "unavailable", "the database is unavailable; the "
                                  "request was not completed; sending it again with the same "
                                  f"ids is safe, in {RETRY_AFTER} s")
                response.headers["Retry-After"] = str(RETRY_AFTER)
                return response
            if isinstance(result, Response):
                return result
            return Json(result, status)
        return run

    def path(request: Request, name: str) -> str:
        value = str(request.path_params[name])
        try:
            return _ident_param(name, value)
        except InvalidInput:  # no resource can have such an id
            raise NotFound(f"no {name.removesuffix('_id')} {value!r}: {name} must be "
                           f"{ID_EXPECTED}") from None

    async def me(_: Request, p: Principal) -> Any:
        return {"kind": p.kind, "party": p.party, "token_id": p.token_id}

    async def list_contracts(_: Request, p: Principal) -> Any:
        return await call(service.store.contracts_of, p)

    async def register(request: Request, p: Principal) -> Any:
        return await call(service.register, p, await body_of(request, "registerContract"))

    async def get_contract(request: Request, p: Principal) -> Any:
        cid = path(request, "contract_id")
        state = await call(service.visible_contract, p, cid)
        detail = await call(service.store.contract_detail, cid)
        t = state.terms
        return {"contract_id": cid, "title": t.title, "buyer": t.buyer,
                "supplier_id": t.supplier_id, "supplier_name": t.supplier_name,
                "start": t.start, "end": t.end, "manager": t.manager,
                "catalogue_edition": t.catalogue_edition, **detail}

    def event_route(type_name: str, op: str) -> Handler:
        async def run(request: Request, p: Principal) -> Any:
            body = await body_of(request, op)
            return await call(service.one, p, type_name, path(request, "contract_id"), body)
        return run

    async def evidence_one(request: Request, p: Principal) -> Any:
        body = await body_of(request, "submitEvidence")
        item = {**body, "contract_id": path(request, "contract_id")} \
            if isinstance(body, dict) else body
        if isinstance(body, dict) and "contract_id" in body:
            raise InvalidInput("contract_id", "absent from the body (it is in the path)",
                               body["contract_id"])
        try:
            receipts, _ = await call(service.submit_evidence, p, [(0, item)])
        except ItemErrors as err:
            raise err.errors[0].error from None
        return receipts[0]

    async def evidence_batch(request: Request, p: Principal) -> Any:
        body = await _json(request, MAX_JSON_BATCH_BYTES)
        if not isinstance(body, dict) or set(body) != {"items"} \
                or not isinstance(body["items"], list) or not 1 <= len(body["items"]) <= 500:
            gate.check("submitEvidenceBatch", body)  # the envelope is wrong: say how
        items = checked_items(list(enumerate(body["items"])))
        receipts, _ = await call(service.submit_evidence, p, items)
        return {"receipts": receipts}

    async def evidence_csv(request: Request, p: Principal) -> Any:
        mode = request.query_params.get("mode", "all")
        if mode not in csvio.MODES:
            raise DocumentError("mode", f"one of {', '.join(csvio.MODES)}", mode)
        raw = await _body(request, csvio.MAX_CSV_BYTES, "text/csv")
        if not raw:
            raise DocumentError("body", "a CSV file: a header row, then the evidence "
                                "items", "an empty body")
        rows = checked_items(await call(csvio.read_rows, raw))
        try:
            receipts, errors = await call(service.submit_evidence, p, rows, "csv",
                                          partial=mode == "valid")
        except ItemErrors as err:
            err.label = "row"
            raise
        result = {"receipts": receipts, "errors": [e.as_dict("row") for e in errors]}
        if not receipts and errors:
            broken = any(isinstance(e.error, DocumentError) for e in errors)
            return _error(422 if broken else 409, "refused",
                          f"no row was stored ({len(errors)} refused)",
                          errors=result["errors"])
        return result

    def decision(action: str) -> Handler:
        async def run(request: Request, p: Principal) -> Any:
            body = await body_of(request, f"{action}Evidence", optional=action != "reject")
            return await call(service.decide, p, path(request, "contract_id"),
                              path(request, "evidence_id"), action, body)
        return run

    async def submissions(request: Request, p: Principal) -> Any:
        status = request.query_params.get("status")
        if status is not None and status not in SUBMISSION_STATUSES:
            raise DocumentError("status", f"one of {', '.join(SUBMISSION_STATUSES)}", status)
        limit = _query_int(request, "limit", 100, 1, 1000)
        before = _query_int(request, "before", None, 1, MAX_BEFORE)
        ids = await call(service.contract_ids, p, _query_ident(request, "contract_id"))
        return await call(service.store.submissions, ids, status, limit or 100, before,
                          None if request.query_params.get("contract_id") else p.actor)

    async def rejections(request: Request, p: Principal) -> Any:
        limit = _query_int(request, "limit", 100, 1, 1000)
        ids = await call(service.contract_ids, p, _query_ident(request, "contract_id"))
        return await call(service.store.rejections, ids, limit or 100)

    async def milestones(request: Request, p: Principal) -> Any:
        return await call(reads.milestones, service, p, path(request, "contract_id"))

    async def alerts(request: Request, p: Principal) -> Any:
        status = request.query_params.get("status")
        if status is not None and status not in reads.ALERT_STATUSES:
            raise DocumentError("status", f"one of {', '.join(reads.ALERT_STATUSES)}", status)
        limit = _query_int(request, "limit", 100, 1, 1000)
        return await call(reads.alerts, service, p, path(request, "contract_id"), status,
                          limit or 100)

    async def get_receipt(request: Request, p: Principal) -> Any:
        return await call(service.receipt, p, path(request, "contract_id"),
                          path(request, "event_id"))

    async def health(_: Request) -> Response:
        return Json({"status": "ok"})

    spec = document()

    async def openapi(_: Request) -> Response:
        return Json(spec)

    def route(url: str, **by_method: Callable[[Request], Awaitable[Response]]) -> Route:
        """One route per path, whatever its methods: Starlette then answers any other
        method 405 with an Allow header naming exactly these (and HEAD with GET)."""
        table = {m.upper(): fn for m, fn in by_method.items()}
        if "GET" in table:
            table["HEAD"] = table["GET"]

        async def dispatch(request: Request) -> Response:
            return await table[request.method](request)
        return Route(url, dispatch, methods=list(table))

    contract = "/v1/contracts/{contract_id}"
    routes = [
        route("/v1/health", get=health),
        route(OPENAPI_PATH, get=openapi),
        route("/v1/me", get=endpoint(me)),
        route("/v1/contracts", get=endpoint(list_contracts), post=endpoint(register, 202)),
        route(contract, get=endpoint(get_contract)),
        route(f"{contract}/commitments",
              post=endpoint(event_route("CommitmentMade", "commit"), 202)),
        route(f"{contract}/milestones", get=endpoint(milestones),
              post=endpoint(event_route("MilestoneScheduled", "scheduleMilestone"), 202)),
        route(f"{contract}/alerts", get=endpoint(alerts)),
        route(f"{contract}/evidence", post=endpoint(evidence_one, 202)),
        route("/v1/evidence", post=endpoint(evidence_batch, 202)),
        route("/v1/evidence/csv", post=endpoint(evidence_csv, 202)),
        *[route(f"{contract}/evidence/{{evidence_id}}/{a}", post=endpoint(decision(a), 202))
          for a in ("verify", "reject", "retract")],
        route(f"{contract}/events/{{event_id}}", get=endpoint(get_receipt)),
        route("/v1/submissions", get=endpoint(submissions)),
        route("/v1/rejections", get=endpoint(rejections)),
    ]

    async def not_found(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 405:
            response = _error(405, "method_not_allowed",
                              f"{request.method} is not allowed on {request.url.path}")
            response.headers.update(exc.headers or {})  # Allow: the path's methods
            return response
        return _error(exc.status_code, "not_found" if exc.status_code == 404 else "http",
                      f"no route {request.method} {request.url.path} (see {OPENAPI_PATH})"
                      if exc.status_code == 404 else str(exc.detail))

    async def defect(request: Request, exc: Exception) -> Response:
        log.exception("internal error on %s %s", request.method, request.url.path,
                      exc_info=exc)
        return _error(500, "internal", "internal error; it has been logged")

    return Starlette(routes=routes, lifespan=lifespan,
                     exception_handlers={HTTPException: not_found, Exception: defect})


@asynccontextmanager
async def no_lifespan(_: Starlette) -> AsyncIterator[None]:
    yield
