"""One table of environment variables (svmon.settings.VARIABLES) drives to_env,
from_env and the operations guide."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest

from svmon.settings import VARIABLES, Settings, markdown_table

ROOT = Path(__file__).resolve().parents[2]


def test_every_variable_names_a_setting_once() -> None:
    names = {f.name for f in fields(Settings)}
    assert len({v.env for v in VARIABLES}) == len({v.field for v in VARIABLES}) == len(VARIABLES)
    assert {v.field for v in VARIABLES} <= names
    # what no variable sets is for tests and benchmarks only
    assert names - {v.field for v in VARIABLES} == {"relay_seconds", "session_timeout"}


def test_every_setting_survives_the_environment() -> None:
    odd = Settings(broker_url="kafka://b1:9092;kafka://b2:9092", data_dir=Path("/srv/x"),
                   partitions=12, tick_seconds=2.5, check_partitions=False,
                   catalogue_files=("a.csv", "b.xlsx"), smtp_url="smtp://u:p@h:587",
                   api_port=9999, min_insync_replicas=2)
    assert Settings.from_env(odd.to_env()) == odd
    assert Settings.from_env({}) == Settings()


@pytest.mark.parametrize(("name", "text", "expected"), [
    ("SVMON_PARTITIONS", "four", "SVMON_PARTITIONS must be an integer, not 'four'"),
    ("SVMON_TICK_SECONDS", "1m", "SVMON_TICK_SECONDS must be a number, not '1m'"),
])
def test_a_bad_number_names_the_variable(name: str, text: str, expected: str) -> None:
    with pytest.raises(ValueError, match=expected):
        Settings.from_env({name: text})


@pytest.mark.parametrize("text", ["0", "false", "No", "off"])
def test_switches_read_the_usual_words_for_off(text: str) -> None:
    assert Settings.from_env({"SVMON_CHECK_PARTITIONS": text}).check_partitions is False
    assert Settings.from_env({"SVMON_CHECK_PARTITIONS": "1"}).check_partitions is True


def test_the_operations_guide_shows_the_table() -> None:
    page = (ROOT / "docs" / "operations.md").read_text()
    assert markdown_table() in page, "run `python -m svmon.settings` and paste its table"
    assert "| `DATABASE_URL` | `sqlite:///<SVMON_DATA_DIR>/svmon.db` |" in page
