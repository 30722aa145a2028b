"""Schema migrations on SQLite and PostgreSQL: the first release's database with its data
upgraded to the current schema, databases made before migrations adopted, fresh and
upgraded schemas identical, downgrades, and several processes initialising at once."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy import Engine, MetaData, func, inspect, select, text
from sqlmodel import SQLModel

from svmon.audit.chain import GENESIS, verify_chains
from svmon.audit.replay import compare, rebuild
from svmon.bootstrap import init_database
from svmon.catalogue_files import load_catalogue
from svmon.core import events as ev
from svmon.models import migrate
from svmon.models.engine import make_engine, switch_to_wal
from svmon.models.ingest import Incoming, IngestStore, Principal, request_digest
from svmon.models.repository import Repository
from svmon.models.tables import MeasureRow
from svmon.schemas import encode_event
from svmon.settings import Settings
from tests.helpers import drain_inbox, feed
from tests.integration.conftest import contract_events

ROOT = Path(__file__).resolve().parents[2]
FIRST_RELEASE_COMMIT = "917bb98"
FIRST_RELEASE_TABLES = dict(migrate.PRE_ALEMBIC_RELEASES)["0001"]
HEAD = migrate.head()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    e = make_engine(database_url)
    yield e
    e.dispose()


def _differences(engine: Engine) -> list[Any]:
    """What Alembic's autogenerate would change to make the database match the models.

    Nothing is ignored: on both databases the migrated schema matches the models
    exactly, types (ExactDecimal's VARCHAR(60)/NUMERIC(38, 12)) included.
    """
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
        return list(compare_metadata(ctx, SQLModel.metadata))


def _schema(engine: Engine, *, column_order: bool = True,
            version_table: bool = False) -> dict[str, Any]:
    """Tables, columns (type as this dialect writes it, nullability, default), keys,
    unique constraints and indexes, as the database reports them."""
    insp = inspect(engine)
    out: dict[str, Any] = {}
    for t in sorted(insp.get_table_names()):
        if t == migrate.VERSION_TABLE and not version_table:
            continue
        cols = [(c["name"], c["type"].compile(dialect=engine.dialect), c["nullable"],
                 str(c.get("default"))) for c in insp.get_columns(t)]
        out[t] = {
            # a column added later by ALTER comes last, where create_all may put it
            # in the middle: the order only counts where asked for
            "columns": cols if column_order else sorted(cols),
            "primary_key": (insp.get_pk_constraint(t).get("name"),
                            insp.get_pk_constraint(t)["constrained_columns"]),
            "unique": sorted((u["name"], tuple(u["column_names"]))
                             for u in insp.get_unique_constraints(t)),
            "indexes": sorted((i["name"], tuple(i["column_names"]), bool(i["unique"]))
                              for i in insp.get_indexes(t)),
        }
    return out


def _drop_everything(engine: Engine) -> None:
    md = MetaData()
    md.reflect(engine)
    md.drop_all(engine)
    assert inspect(engine).get_table_names() == []


def _version_rows(engine: Engine) -> list[str]:
    with engine.connect() as conn:
        return [r[0] for r in conn.execute(text("SELECT version_num FROM alembic_version"))]


def _make_pre_alembic_first_release(engine: Engine) -> None:
    """A database as the first release's create_all left it: its tables, no
    alembic_version (test_revision_0001_is_the_first_release_schema shows the two are
    the same schema)."""
    migrate.upgrade(engine, "0001")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


# --------------------------------------------------------- the first release's data

CID = "C-OLD"
OLD_CHAIN = [  # as the first release journalled them: wire JSON of the time, and hashes
    ("C-OLD:registered", "ContractRegistered", "2025-01-02T09:00:00", "2025-02-10T08:00:10",
     "mgr-old",
     '{"schema_version":1,"type":"ContractRegistered","event_id":"C-OLD:registered",'
     '"contract_id":"C-OLD","occurred_at":"2025-01-02T09:00:00+00:00","actor":"mgr-old",'
     '"data":{"title":"Contract C-OLD","buyer":"Borsetshire CC","buyer_department":'
     '"Highways","supplier_id":"S07","supplier_name":"Supplier S07","start":"2025-01-01",'
     '"end":"2027-12-31","value_gbp":"2500000","catalogue_edition":"DEMO-2025",'
     '"manager":"mgr-old","reporting_cadence_days":90,"deputy":"dep-old",'
     '"supplier_contact":"","policy":{}}}',
     "6d5f5dbecb36339f14006f4361348cecec66255cece1798e90645a5873433084"),
    ("C-OLD:commit:NT1", "CommitmentMade", "2025-01-02T09:00:00", "2025-02-10T08:00:10",
     "mgr-old",
     '{"schema_version":1,"type":"CommitmentMade","event_id":"C-OLD:commit:NT1",'
     '"contract_id":"C-OLD","occurred_at":"2025-01-02T09:00:00+00:00","actor":"mgr-old",'
     '"data":{"measure":"NT1","target":"20"}}',
     "76e8232117550467905acb1a89a8623fdc56b166af5a711c2431860bfa6c6eb8"),
    ("C-OLD:M1", "MilestoneScheduled", "2025-01-02T09:00:00", "2025-02-10T08:00:10",
     "mgr-old",
     '{"schema_version":1,"type":"MilestoneScheduled","event_id":"C-OLD:M1",'
     '"contract_id":"C-OLD","occurred_at":"2025-01-02T09:00:00+00:00","actor":"mgr-old",'
     '"data":{"milestone_id":"M1","measure":"NT1","due":"2025-01-31",'
     '"cumulative_target":"5"}}',
     "80193aeb2bc067d3e9f6db5830e8957afd0b40d84b09570b13dbe7930d188fc5"),
    # evidence of the first release has no "unit" (added by the HTTP API's release)
    ("C-OLD:E1", "EvidenceSubmitted", "2025-02-05T00:00:00", "2025-02-10T08:00:20",
     "supplier:S07",
     '{"schema_version":1,"type":"EvidenceSubmitted","event_id":"C-OLD:E1",'
     '"contract_id":"C-OLD","occurred_at":"2025-02-05T00:00:00+00:00",'
     '"actor":"supplier:S07","data":{"evidence_id":"E1","measure":"NT1","quantity":"2.5",'
     '"period_start":"2025-01-01","period_end":"2025-01-31","description":"",'
     '"attachments":[]}}',
     "bc727eab5424af34fb153151a79add8a661d45387044624177653eb6f800ac65"),
    ("C-OLD:E1:verified", "EvidenceVerified", "2025-02-07T00:00:00", "2025-02-10T08:00:20",
     "mgr-old",
     '{"schema_version":1,"type":"EvidenceVerified","event_id":"C-OLD:E1:verified",'
     '"contract_id":"C-OLD","occurred_at":"2025-02-07T00:00:00+00:00","actor":"mgr-old",'
     '"data":{"evidence_id":"E1","note":""}}',
     "3ce40e3c5c56f7faad71fa822fef8d38984e03e33fbce8e625c5158eaf06af41"),
    ("C-OLD:tick:2025-04-01", "ClockTicked", "2025-04-01T00:00:00", "2025-02-10T08:00:20",
     "system",
     '{"schema_version":1,"type":"ClockTicked","event_id":"C-OLD:tick:2025-04-01",'
     '"contract_id":"C-OLD","occurred_at":"2025-04-01T00:00:00+00:00","actor":"system",'
     '"data":{"at":"2025-04-01T00:00:00+00:00"}}',
     "f9ff95467cf126f202f05034628cc06d24e0a5aef40b704eafa530f3f9d15682"),
]
ALERT_ID = "C-OLD/C-OLD:tick:2025-04-01/MilestoneMissed/NT1/M1"
ALERT_DETAIL = json.dumps({
    "schema_version": 1, "kind": "MilestoneMissed", "derived_id": ALERT_ID,
    "contract_id": "C-OLD", "measure": "NT1", "caused_by": "C-OLD:tick:2025-04-01",
    "at": "2025-04-01T00:00:00+00:00", "milestone_id": "M1", "due": "2025-01-31",
    "target": "5", "verified": "2.5", "claimed": "2.5"})


def _insert_first_release_rows(engine: Engine) -> None:
    """The rows the first release wrote for one contract (registered, a commitment, a
    milestone, evidence submitted and verified, a clock tick that missed the
    milestone), with a recipient, a delivery and a dead letter: SQLAlchemy Core on the
    tables as the database has them, values as that release bound them."""
    sqlite = engine.dialect.name == "sqlite"

    def amount(v: str) -> Any:  # ExactDecimal: text on SQLite, NUMERIC elsewhere
        return v if sqlite else Decimal(v)

    def ts(iso: str) -> datetime:  # UTCDateTime: naive UTC on SQLite
        t = datetime.fromisoformat(iso).replace(tzinfo=UTC, microsecond=123456)
        return t.replace(tzinfo=None) if sqlite else t

    def day(iso: str) -> datetime:
        t = datetime.fromisoformat(iso).replace(tzinfo=UTC)
        return t.replace(tzinfo=None) if sqlite else t

    md = MetaData()
    md.reflect(engine)
    t = md.tables
    assert set(t) - {"alembic_version"} == FIRST_RELEASE_TABLES
    journal, prev = [], GENESIS
    for n, (event_id, type_, occurred, recorded, actor, payload, hash_) in enumerate(OLD_CHAIN):
        journal.append(dict(event_id=event_id, contract_id=CID, type=type_, schema_version=1,
                            occurred_at=day(occurred), recorded_at=ts(recorded), actor=actor,
                            payload=payload, topic="t", partition=0, offset=n,
                            chain_seq=n + 1, prev_hash=prev, hash=hash_))
        prev = hash_
    with engine.begin() as conn:
        conn.execute(t["journal"].insert(), journal)
        conn.execute(t["chain_head"].insert().values(contract_id=CID, length=len(OLD_CHAIN),
                                                     head_hash=prev))
        conn.execute(t["contract"].insert().values(
            contract_id=CID, title="Contract C-OLD", buyer="Borsetshire CC",
            buyer_department="Highways", supplier_id="S07", supplier_name="Supplier S07",
            start=date(2025, 1, 1), end=date(2027, 12, 31), value_gbp=amount("2500000"),
            catalogue_edition="DEMO-2025", manager="mgr-old", deputy="dep-old",
            supplier_contact="", reporting_cadence_days=90, as_of=day("2025-04-01T00:00:00"),
            last_evidence_at=day("2025-02-05T00:00:00"), state_version=6))
        conn.execute(t["measure_total"].insert().values(
            contract_id=CID, measure="NT1", target=amount("20"), claimed=amount("2.5"),
            verified=amount("2.5"), proxy_gbp=amount("28500.00"),
            target_gbp=amount("570000.00"), claimed_gbp=amount("71250.000"),
            verified_gbp=amount("71250.000"), shortfall=amount("17.5"), at_risk=False,
            target_met=False))
        conn.execute(t["milestone"].insert().values(
            contract_id=CID, milestone_id="M1", measure="NT1", due=date(2025, 1, 31),
            cumulative_target=amount("5"), status="missed"))
        conn.execute(t["evidence"].insert().values(
            contract_id=CID, evidence_id="E1", measure="NT1", quantity=amount("2.5"),
            period_start=date(2025, 1, 1), period_end=date(2025, 1, 31), status="verified",
            submitted_by="supplier:S07", submitted_at=day("2025-02-05T00:00:00"),
            decided_by="mgr-old", decided_at=day("2025-02-07T00:00:00"), reason=""))
        conn.execute(t["notice"].insert().values(
            derived_id=ALERT_ID, contract_id=CID, kind="MilestoneMissed", measure="NT1",
            at=day("2025-04-01T00:00:00"), body=ALERT_DETAIL, published_at=None))
        conn.execute(t["alert"].insert().values(
            alert_id=ALERT_ID, contract_id=CID, measure="NT1", kind="MilestoneMissed",
            severity="warning", subject="M1", status="open",
            raised_at=day("2025-04-01T00:00:00"), raised_by=ALERT_ID,
            created_at=ts("2025-02-10T08:00:20"), last_raised_at=day("2025-04-01T00:00:00"),
            raise_count=1, resolved_manually=False, detail=ALERT_DETAIL))
        conn.execute(t["recipient"].insert().values(
            recipient_id="mgr-old", name="Old manager", email="mgr-old@example.org",
            webhook_url=None, digest=False))
        conn.execute(t["delivery"].insert().values(
            delivery_id=f"{ALERT_ID}|mgr-old|email", alert_id=ALERT_ID, recipient_id="mgr-old",
            channel="email", status="pending", attempts=0,
            next_attempt_at=ts("2025-02-10T08:00:20"), created_at=ts("2025-02-10T08:00:20"),
            escalation=False))
        conn.execute(t["position"].insert().values(
            consumer="svmon-worker", topic="t", partition=0, offset=6,
            updated_at=ts("2025-02-10T08:00:20")))
        conn.execute(t["dead_letter"].insert().values(
            topic="t", partition=0, offset=6, raw_sha256="ab" * 32, key=CID, contract_id=CID,
            event_id=None, error="SchemaError", field="message", reason="not JSON",
            raw="{not json", at=ts("2025-02-10T08:00:20")))
        conn.execute(t["measure"].insert().values(
            edition="DEMO-2025", code="NT1", set_name="national", theme="Jobs",
            outcome="old wording", category="economic", title="old title",
            unit="no. people FTE", proxy_gbp=amount("28500.00"), illustrative=True,
            source="the first release's catalogue"))


def test_first_release_data_survives_the_upgrade_and_current_code_uses_it(
        engine: Engine) -> None:
    assert migrate.upgrade(engine, "0001") == "0001"
    _insert_first_release_rows(engine)

    assert migrate.upgrade(engine) == HEAD
    assert migrate.current_revision(engine) == HEAD
    assert _differences(engine) == []

    repo = Repository(engine, load_catalogue())
    repo.save_catalogue()  # upserts over the first release's catalogue row
    # the old chain verifies with today's code, old wire JSON decodes
    assert verify_chains(repo.chain_rows(), repo.chain_heads()) == []
    assert [e.event_id for e in repo.journal_events(CID)] == [c[0] for c in OLD_CHAIN]
    submitted = [e for e in repo.journal_events(CID) if isinstance(e, ev.EvidenceSubmitted)]
    assert submitted[0].quantity == Decimal("2.5") and submitted[0].unit == ""
    # revision 0003 found the event that submitted the old evidence in the journal
    (old_evidence,) = repo.evidence_records([(CID, "E1")])[CID].values()
    assert old_evidence.event_ids == ("C-OLD:E1",) and old_evidence.status == "verified"
    # the projections read back exactly, and are what today's fold makes of the journal
    report = repo.report()
    (old,) = report["contracts"]
    assert (old["value_gbp"], old["manager"], old["as_of"]) == (
        "2500000", "mgr-old", "2025-04-01T00:00:00+00:00")
    assert old["measures"] == [{
        "measure": "NT1", "target": "20", "claimed": "2.5", "verified": "2.5",
        "proxy_gbp": "28500", "target_gbp": "570000", "claimed_gbp": "71250",
        "verified_gbp": "71250", "shortfall": "17.5", "at_risk": False, "target_met": False}]
    assert [a["alert_id"] for a in old["open_alerts"]] == [ALERT_ID]
    assert old["open_alerts"][0]["detail"]["verified"] == "2.5"
    rebuilt = rebuild(repo.journal_events(), repo.catalogue)
    assert compare(rebuilt, repo.live_totals(), repo.expected_totals(rebuilt.states.values()),
                   repo.open_alert_identities()) == []
    assert [d["delivery_id"] for d in repo.deliveries(ALERT_ID)] == [f"{ALERT_ID}|mgr-old|email"]
    assert repo.positions("svmon-worker", "t") == {0: 6}
    assert repo.counts() == {"journal": 6, "contracts": 1, "dead_letters": 1, "notices": 1,
                             "open_alerts": 1}
    with engine.connect() as conn:
        m = MeasureRow.__table__.c  # type: ignore[attr-defined]
        assert conn.execute(select(m.title).where(m.code == "NT1")).scalar_one() == \
            repo.catalogue.measure("DEMO-2025", "NT1").title

    # today's code writes to it: an alert decision on an old row, new evidence through
    # the inbox (a table of revision 0002) continuing the old chain, a new contract
    assert repo.acknowledge(ALERT_ID, "mgr-old")["changed"] is True
    store = IngestStore(repo)
    token_id, _ = store.create_token("supplier", "S07")
    e2 = ev.EvidenceSubmitted(
        event_id="C-OLD:E2", contract_id=CID, occurred_at=datetime(2025, 5, 2, tzinfo=UTC),
        actor="supplier:S07", evidence_id="E2", measure="NT1", quantity=Decimal("1.25"),
        period_start=date(2025, 4, 1), period_end=date(2025, 4, 30))
    data = json.loads(encode_event(e2))["data"]
    store.receive([Incoming(CID, e2.event_id, "EvidenceSubmitted", encode_event(e2).decode(),
                            request_digest("EvidenceSubmitted", e2.actor, data))],
                  Principal("supplier", "S07", token_id), "cli")
    states = dict(rebuilt.states)
    assert drain_inbox(repo, store, states) == 1
    feed(repo, contract_events("C-NEW", "S08", "mgr-new"), store=states)

    assert store.receipt(CID, "C-OLD:E2")["status"] == "accepted"  # type: ignore[index]
    assert verify_chains(repo.chain_rows(), repo.chain_heads()) == []
    assert repo.chain_heads()[CID][0] == len(OLD_CHAIN) + 1
    assert [r["chain_seq"] for r in repo.journal_rows(contract_id=CID)] == list(range(1, 8))
    totals = {m["measure"]: m for c in repo.report()["contracts"] for m in c["measures"]
              if c["contract_id"] == CID}
    assert totals["NT1"]["claimed"] == "3.75"
    assert repo.contract_ids() == ["C-NEW", CID]
    assert [t["party"] for t in store.tokens()] == ["S07"]


def test_fresh_database_and_upgraded_one_have_the_same_schema(engine: Engine) -> None:
    assert migrate.ensure_schema(engine) == HEAD  # empty: create_all, then stamped
    created = _schema(engine, column_order=False, version_table=True)
    assert set(created) == {t.name for t in SQLModel.metadata.sorted_tables} | {
        migrate.VERSION_TABLE}
    assert _differences(engine) == []
    assert _version_rows(engine) == [HEAD]

    _drop_everything(engine)
    assert migrate.upgrade(engine) == HEAD  # every revision from 0001, stamped by Alembic
    assert _schema(engine, column_order=False, version_table=True) == created
    assert _differences(engine) == []


def test_pre_alembic_first_release_database_is_adopted_by_init_database(
        database_url: str, engine: Engine, tmp_path: Path) -> None:
    _make_pre_alembic_first_release(engine)
    _insert_first_release_rows(engine)
    assert migrate.current_revision(engine) is None

    repo = init_database(Settings(database_url=database_url, data_dir=tmp_path))
    try:
        assert migrate.current_revision(repo.engine) == HEAD
        assert _version_rows(engine) == [HEAD]
        assert _differences(engine) == []
        assert verify_chains(repo.chain_rows(), repo.chain_heads()) == []
        assert repo.counts()["journal"] == len(OLD_CHAIN)
        IngestStore(repo).create_token("manager", "mgr-old")  # a table of 0002 is there
    finally:
        repo.engine.dispose()


def test_pre_alembic_database_of_the_second_release_is_stamped_not_rebuilt(
        engine: Engine) -> None:
    # what create_all made before migrations: the schema of revision 0002, unstamped
    migrate.upgrade(engine, "0002")
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))
    assert migrate.ensure_schema(engine) == HEAD  # stamped 0002, then upgraded
    assert _version_rows(engine) == [HEAD]
    assert _differences(engine) == []


def test_unrecognisable_or_newer_databases_are_refused(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE journal (seq INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE unrelated (x INTEGER)"))
    with pytest.raises(migrate.DatabaseSchemaError, match="journal"):
        migrate.ensure_schema(engine)
    assert migrate.current_revision(engine) is None  # nothing was stamped

    _drop_everything(engine)
    migrate.ensure_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(migrate.DatabaseSchemaError, match="9999"):
        migrate.ensure_schema(engine)


def test_downgrade_to_first_release_and_back(engine: Engine) -> None:
    migrate.ensure_schema(engine)
    assert migrate.downgrade(engine, "0001") == "0001"
    assert set(inspect(engine).get_table_names()) == FIRST_RELEASE_TABLES | {"alembic_version"}
    _insert_first_release_rows(engine)  # the first release's schema, data and all
    assert migrate.downgrade(engine, "base") is None
    assert inspect(engine).get_table_names() == ["alembic_version"]
    assert migrate.upgrade(engine) == HEAD
    assert _differences(engine) == []


def test_head_is_the_newest_file() -> None:
    """The fast path of ensure_schema reads the newest revision from the file names."""
    assert migrate.newest_by_file_name() == migrate.head()
    for script in migrate.script().walk_revisions():
        path = Path(script.path)
        assert path.name.startswith(f"{script.revision}_"), path.name
        if script.down_revision:
            assert int(script.revision) == int(str(script.down_revision)) + 1


def test_migrations_ship_with_the_package() -> None:
    """A non-editable install includes env.py, the template and every revision."""
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    # svmon/models links to models/: the one package "svmon" carries it (see test_packaging)
    assert cfg["packages"]["find"]["include"] == ["svmon*"]
    assert (migrate.MIGRATIONS / "__init__.py").exists()
    assert (migrate.MIGRATIONS / "versions" / "__init__.py").exists()  # a package: its .py ship
    assert "migrations/script.py.mako" in cfg["package-data"]["svmon.models"]
    assert (migrate.MIGRATIONS / "script.py.mako").exists()


def test_init_db_command_prints_the_revision(database_url: str, tmp_path: Path) -> None:
    from svmon.cli import main

    result = CliRunner().invoke(main, ["init-db"], env={"DATABASE_URL": database_url,
                                                        "SVMON_DATA_DIR": str(tmp_path)})
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"database ready at schema revision {HEAD}"


# --------------------------------------------------------------- the first release


def _git_show(spec: str) -> str | None:
    git = shutil.which("git")
    if git is None:
        return None
    done = subprocess.run([git, "show", spec], cwd=ROOT, capture_output=True, text=True)
    return done.stdout if done.returncode == 0 else None


FIRST_RELEASE_CREATE_ALL = textwrap.dedent("""
    import sys, types
    source, url = sys.stdin.read(), sys.argv[1]
    module = types.ModuleType("first_release_tables")
    sys.modules[module.__name__] = module
    exec(compile(source, "first_release_tables.py", "exec"), module.__dict__)
    from sqlalchemy import create_engine
    from sqlmodel import SQLModel
    # not svmon.models.repository.make_engine: importing it would define today's tables too
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://", 1))
    SQLModel.metadata.create_all(engine)
    engine.dispose()
""")


def test_revision_0001_is_the_first_release_schema(database_url: str, engine: Engine,
                                                   tmp_path: Path) -> None:
    """0001 against create_all of the first release's own models (from git history), then
    that genuine pre-migration database adopted by init_database."""
    source = _git_show(f"{FIRST_RELEASE_COMMIT}:models/tables.py")
    if source is None:
        pytest.skip(f"needs git and the history up to {FIRST_RELEASE_COMMIT}")
    migrate.upgrade(engine, "0001")
    by_revision = _schema(engine)
    _drop_everything(engine)

    subprocess.run([sys.executable, "-c", FIRST_RELEASE_CREATE_ALL, database_url],
                   input=source, text=True, cwd=ROOT, check=True)
    assert _schema(engine) == by_revision  # columns in the same order, too
    repo = init_database(Settings(database_url=database_url, data_dir=tmp_path))
    repo.engine.dispose()
    assert migrate.current_revision(engine) == HEAD
    assert _differences(engine) == []


# ------------------------------------------------------------------ concurrency


def _init_database_in_child(url: str, data_dir: str, barrier: Any, results: Any) -> None:
    from svmon.bootstrap import init_database
    from svmon.models.migrate import current_revision
    from svmon.settings import Settings

    settings = Settings(database_url=url, data_dir=Path(data_dir))
    barrier.wait(timeout=120)  # imports done: all three call init_database together
    try:
        repo = init_database(settings)
        results.put(("ok", current_revision(repo.engine)))
        repo.engine.dispose()
    except BaseException as err:  # reported to the test, which fails on it
        results.put(("error", f"{type(err).__name__}: {err}"))


def test_connections_switching_one_new_sqlite_file_to_wal_at_once_all_succeed(
        tmp_path: Path) -> None:
    """Three connections open on an SQLite file that is still new (rollback-journal
    mode) put it in WAL mode together, as ``make_engine``'s connections do: none is
    refused. SQLite refuses one of two connections switching at once without waiting
    out the busy timeout; without ``switch_to_wal``'s retry, 92 of 300 such rounds
    failed."""
    failures: list[str] = []
    for round_ in range(40):
        path = tmp_path / f"new-{round_}.db"
        conns = [sqlite3.connect(path, timeout=30, check_same_thread=False)
                 for _ in range(3)]
        barrier = threading.Barrier(len(conns))

        def switch(conn: sqlite3.Connection, barrier: threading.Barrier,
                   round_: int) -> None:
            barrier.wait(timeout=30)
            try:
                switch_to_wal(conn.cursor())
            except Exception as err:  # reported below: the test fails on it
                failures.append(f"round {round_}: {type(err).__name__}: {err}")

        threads = [threading.Thread(target=switch, args=(c, barrier, round_)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        modes = {c.execute("PRAGMA journal_mode").fetchone()[0] for c in conns}
        for c in conns:
            c.close()
        if modes != {"wal"}:
            failures.append(f"round {round_}: journal modes {modes}")
    assert failures == []


@pytest.mark.slow
@pytest.mark.parametrize("start", ["empty", "pre-alembic first release", "at 0001"])
def test_three_processes_initialise_one_database_at_once(
        database_url: str, engine: Engine, tmp_path: Path, start: str) -> None:
    if start == "pre-alembic first release":
        _make_pre_alembic_first_release(engine)
    elif start == "at 0001":
        migrate.upgrade(engine, "0001")
    ctx = multiprocessing.get_context("spawn")  # no engine or lock inherited by fork
    barrier, results = ctx.Barrier(3), ctx.Queue()
    children = [ctx.Process(target=_init_database_in_child,
                            args=(database_url, str(tmp_path), barrier, results))
                for _ in range(3)]
    for c in children:
        c.start()
    try:
        outcomes = [results.get(timeout=180) for _ in children]
    finally:
        for c in children:
            c.join(timeout=30)
            if c.is_alive():
                c.kill()
    assert outcomes == [("ok", HEAD)] * 3
    assert _version_rows(engine) == [HEAD]
    assert _differences(engine) == []
    with engine.connect() as conn:
        measures = conn.execute(select(func.count()).select_from(
            MeasureRow.__table__)).scalar_one()  # type: ignore[attr-defined]
    assert measures == len(list(load_catalogue()))
