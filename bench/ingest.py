"""Ingest benchmark: evidence posts per second and their latency, beside a bare endpoint.

    python bench/ingest.py [--seconds 10] [--concurrency 16] [--batch 50]

One uvicorn server (one process, the project's Starlette app on a fresh SQLite file)
serves both the real API and a bare Starlette endpoint that reads the same JSON body
and answers 202 without doing anything. One client process (httpx, asyncio) keeps
``--concurrency`` requests in flight against each in turn, and prints requests/s,
events/s and p50/p99 latency with the ratio to the bare endpoint. Client and server
share this machine's cores, so compare ratios, not absolute figures, across machines.

A 202 from the API means the event is committed to the inbox table (the broker is not
on this path: the relay publishes from the inbox afterwards), so the figures include
the authentication query, the check against the contract's state and the commit.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import record_result

CONTRACTS = 50
MEASURES = (("NT1", "no. people FTE"), ("L-VOL", "hours"), ("D-SME", "£"))


def _setup(data_dir: Path) -> dict[str, str]:
    """A database with CONTRACTS registered contracts; returns supplier -> token."""
    from svmon.bootstrap import init_database
    from svmon.core import events as ev
    from svmon.models.ingest import IngestStore
    from svmon.settings import Settings
    from tests.helpers import feed

    repo = init_database(Settings(data_dir=data_dir))
    t0 = datetime(2025, 1, 2, 9, tzinfo=UTC)
    events: list[ev.ContractEvent] = []
    for n in range(CONTRACTS):
        cid, sup = f"C-{n:03d}", f"S{n % 10}"
        events.append(ev.ContractRegistered(
            event_id=f"{cid}:registered", contract_id=cid, occurred_at=t0, actor="mgr-a",
            title=f"Contract {cid}", buyer="Borsetshire CC", buyer_department="",
            supplier_id=sup, supplier_name=f"Supplier {sup}", start=date(2025, 1, 1),
            end=date(2028, 12, 31), value_gbp=Decimal(1_000_000),
            catalogue_edition="DEMO-2025", manager="mgr-a"))
        events += [ev.CommitmentMade(event_id=f"{cid}:commit:{m}", contract_id=cid,
                                     occurred_at=t0, actor="mgr-a", measure=m,
                                     target=Decimal(100_000)) for m, _ in MEASURES]
    feed(repo, events)
    store = IngestStore(repo)
    return {f"S{k}": store.create_token("supplier", f"S{k}")[1] for k in range(10)}


def serve(data_dir: Path, port: int) -> None:
    """The server process: the real API plus a bare endpoint, no relay."""
    import uvicorn
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from svmon.api.server import build
    from svmon.bootstrap import init_database
    from svmon.settings import Settings

    settings = Settings(data_dir=data_dir)
    app = build(settings, init_database(settings, fsync_each_commit=True), relay=False)

    async def bare(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"received": len(body)}, 202)

    app.router.routes.append(Route("/bare", bare, methods=["POST"]))
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def _evidence(seq: int, contract: int) -> dict[str, Any]:
    m, unit = MEASURES[seq % len(MEASURES)]
    return {"evidence_id": f"B-{seq}", "measure": m, "quantity": str(1 + seq % 9),
            "unit": unit, "period_start": "2025-03-01", "period_end": "2025-03-31",
            "description": "benchmark evidence"}


async def _load(url: str, make: Any, seconds: float, concurrency: int
                ) -> tuple[int, int, list[float]]:
    import httpx

    latencies: list[float] = []
    done = events = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            nonlocal done, events
            while time.perf_counter() < deadline:
                path, headers, body, n = make()
                t = time.perf_counter()
                r = await client.post(path, headers=headers, json=body)
                latencies.append(time.perf_counter() - t)
                if r.status_code != 202:
                    raise SystemExit(f"{path}: {r.status_code} {r.text[:300]}")
                done += 1
                events += n
        started = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        elapsed = time.perf_counter() - started
    return int(done / elapsed), int(events / elapsed), latencies


def _pct(xs: list[float], p: float) -> float:
    return statistics.quantiles(xs, n=100)[int(p) - 1] * 1000 if len(xs) > 1 else 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--batch", type=int, default=50)
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve(args.serve, args.port)
        return

    from svmon.infra.broker import free_port

    data_dir = Path(tempfile.mkdtemp(prefix="svmon-bench-ingest-"))
    tokens = _setup(data_dir)
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(data_dir),
                               "--port", str(port)], env={**os.environ})
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        for _ in range(100):
            try:
                if httpx.get(f"{url}/v1/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        seq = itertools.count()
        single_body = _evidence(0, 0)

        def bare() -> tuple[str, dict[str, str], Any, int]:
            return "/bare", {}, single_body, 1

        def single() -> tuple[str, dict[str, str], Any, int]:
            n = next(seq)
            c = n % CONTRACTS
            return (f"/v1/contracts/C-{c:03d}/evidence",
                    {"Authorization": f"Bearer {tokens[f'S{c % 10}']}"}, _evidence(n, c), 1)

        def batch() -> tuple[str, dict[str, str], Any, int]:
            c = next(seq) % CONTRACTS
            items = [{"contract_id": f"C-{c:03d}", **_evidence(next(seq), c)}
                     for _ in range(args.batch)]
            return ("/v1/evidence", {"Authorization": f"Bearer {tokens[f'S{c % 10}']}"},
                    {"items": items}, args.batch)

        print(f"{os.cpu_count()} cores, {args.concurrency} requests in flight, "
              f"{args.seconds:.0f} s each, SQLite, uvicorn (1 process)")
        print(f"{'endpoint':<28}{'requests/s':>12}{'events/s':>10}{'p50 ms':>9}{'p99 ms':>9}"
              f"{'× bare':>8}")
        results: dict[str, float] = {}
        figures: dict[str, object] = {"concurrency": args.concurrency, "batch": args.batch}
        for name, make in (("bare Starlette endpoint", bare), ("evidence, single", single),
                           (f"evidence, batch of {args.batch}", batch)):
            rps, eps, lat = asyncio.run(_load(url, make, args.seconds, args.concurrency))
            results[name] = rps
            ratio = rps / results["bare Starlette endpoint"]
            print(f"{name:<28}{rps:>12,}{eps:>10,}{_pct(lat, 50):>9.1f}{_pct(lat, 99):>9.1f}"
                  f"{ratio:>8.2f}")
            figures[name] = {"requests_s": rps, "events_s": eps, "vs_bare": round(ratio, 3),
                             "p50_ms": round(_pct(lat, 50), 1),
                             "p99_ms": round(_pct(lat, 99), 1)}
        record_result("ingest", figures)
    finally:
        server.terminate()
        server.wait(10)


if __name__ == "__main__":
    main()
