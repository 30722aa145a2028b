"""The README's commands, run as a user would run them, and the documentation's examples."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from svmon.infra.broker import EmbeddedBroker, free_port
from svmon.schemas import decode_event

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
ARCHITECTURE = (ROOT / "docs" / "architecture.md").read_text()  # the wire format


def svmon(*args: str, env: dict[str, str], cwd: Path, timeout: float = 300) -> str:
    proc = subprocess.run([sys.executable, "-m", "svmon.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, f"svmon {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@pytest.mark.broker
@pytest.mark.slow
def test_up_demo_then_report_json(tmp_path: Path) -> None:
    """`svmon up --demo` brings everything up; alerts appear in `svmon report --json`."""
    api_port = free_port()
    env = {"SVMON_BROKER_URL": f"kafka://127.0.0.1:{free_port()}",
           "SVMON_DATA_DIR": str(tmp_path / ".svmon"), "PYTHONPATH": str(ROOT),
           "SVMON_API_PORT": str(api_port), "SVMON_DASHBOARD_PORT": str(free_port())}
    env.pop("DATABASE_URL", None)
    out = svmon("up", "--demo", "--contracts", "12", "--exit-after-load", env=env,
                cwd=tmp_path)
    assert "embedded Tansu" in out and "stopped." in out
    assert f"api      http://127.0.0.1:{api_port}/v1/openapi.json" in out
    m = re.search(r"(\d+) contracts, (\d+) events journalled, (\d+) open alerts", out)
    assert m and m.group(1) == "12" and int(m.group(3)) > 0
    report = json.loads(svmon("report", "--json", env=env, cwd=tmp_path))
    assert report["summary"]["contracts"] == 12
    assert report["summary"]["open_alerts"] == int(m.group(3))
    kinds = report["summary"]["open_alerts_by_kind"]
    assert kinds.get("MilestoneMissed", 0) > 0 and kinds.get("TargetAtRisk", 0) > 0
    first = report["contracts"][0]["measures"][0]
    assert {"target", "claimed", "verified", "verified_gbp", "shortfall"} <= first.keys()
    assert (tmp_path / ".svmon" / "svmon.db").exists()


def test_up_refuses_a_port_in_use(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "svmon.cli", "up", "--exit-after-load"], cwd=tmp_path,
            env={**os.environ, "SVMON_BROKER_URL": f"kafka://127.0.0.1:{port}",
                 "SVMON_DATA_DIR": str(tmp_path)}, capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert f"port {port}" in proc.stderr and "Traceback" not in proc.stderr


def test_catalogue_command_lists_measures(tmp_path: Path) -> None:
    out = svmon("catalogue", "--edition", "DEMO-2025", env={}, cwd=tmp_path)
    assert "NT1" in out and "L-CARE-INT" in out and "record only" in out
    assert "TOMS-2017-EXAMPLES" not in out


def test_docs_wire_example_decodes() -> None:
    block = re.search(r"```json\n(.*?)```", ARCHITECTURE, re.S)
    assert block, "docs/architecture.md shows a wire-format example"
    e = decode_event(block.group(1))
    assert e.contract_id == "C-001" and type(e).__name__ == "EvidenceSubmitted"


def test_readme_names_the_commands_ci_runs() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert "make test" in README and "make test" in ci
    assert "make demo" in README
    makefile = (ROOT / "Makefile").read_text()
    assert "svmon up --demo" in makefile


@pytest.mark.broker
def test_topics_creates_checks_and_refuses_a_partition_change(broker: EmbeddedBroker) -> None:
    """`svmon topics` (the compose file's init step) creates the three topics, is safe to
    repeat, and fails when SVMON_PARTITIONS no longer matches the topics on the broker."""
    from click.testing import CliRunner
    from kafka.admin import KafkaAdminClient

    from svmon.cli import main

    prefix = f"cli{uuid.uuid4().hex[:8]}"
    env = {"SVMON_BROKER_URL": broker.url, "SVMON_TOPIC_PREFIX": prefix,
           "SVMON_PARTITIONS": "3"}
    runner = CliRunner()
    for _ in range(2):  # the second run finds them all and changes nothing
        result = runner.invoke(main, ["topics"], env=env)
        assert result.exit_code == 0, result.output
    assert f"{prefix}.contract-events" in result.output and "partitions=3" in result.output
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        names = set(admin.list_topics())
    finally:
        admin.close()
    assert {f"{prefix}.contract-events", f"{prefix}.alerts", f"{prefix}.dead-letter"} <= names
    result = runner.invoke(main, ["topics"], env={**env, "SVMON_PARTITIONS": "6"})
    assert result.exit_code != 0
    assert "3 partitions where 6 are expected" in result.output


def test_the_command_line_package_keeps_its_entry_points(tmp_path: Path) -> None:
    """`python -m svmon.cli` (how `svmon up` starts its children) and the console script
    `svmon = "svmon.cli:main"` reach the same group with every command registered."""
    import importlib.metadata

    from svmon.cli import main

    (script,) = [e for e in importlib.metadata.entry_points(group="console_scripts")
                 if e.name == "svmon"]
    assert script.value == "svmon.cli:main" and script.load() is main
    out = svmon("--help", env={}, cwd=tmp_path)
    listed = {line.split()[0] for line in out.split("Commands:")[1].splitlines()
              if line.strip()}
    assert listed == set(main.commands) == {
        "alerts", "api", "catalogue", "dashboards", "demo", "dispatch", "evidence",
        "export", "init-db", "intake", "lab", "recipient", "replay", "report", "token",
        "topics", "up", "worker"}
    assert "--delivered-by" in svmon("replay", "--help", env={}, cwd=tmp_path)
