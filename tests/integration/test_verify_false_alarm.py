"""``svmon replay --verify`` must not raise a false alarm (issue #21, C).

Evidence for a measure the contract has no commitment for, retracted at once (in the
same batch the live worker applies), leaves that measure in the contract's state with
nothing claimed or verified. The live projection and the replay must agree on whether
that measure has a totals row.

The cause: the replay expects a row for every measure of the state
(``Repository.expected_totals`` -> ``total_rows(s)`` -> ``ContractState.measures()``, i.e.
every committed measure and every key of ``totals``), while the live worker writes only
the rows that ``svmon.models.repository.changed_measures`` says differ from the state before
the batch; it compares (commitment, totals, at risk, met), and a measure absent before
has ``NO_TOTALS`` = ``Totals(0, 0)``, the same as a measure whose only evidence was
retracted. So a measure that enters the state and is back at zero within one batch is
never written, and whether the live table has the row depends on where the batches
were cut. The fix is there: whether the measure is in the state at all is part of its
row.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from svmon.audit.replay import compare, rebuild
from svmon.bootstrap import init_database
from svmon.cli import main
from svmon.core import events as ev
from svmon.models.repository import Repository
from svmon.settings import Settings
from tests.helpers import feed
from tests.unit._builders import committed, registered, retracted, submitted


@pytest.fixture
def repo(database_url: str, tmp_path: Path) -> Repository:
    return init_database(Settings(database_url=database_url, data_dir=tmp_path))


MANAGER, SUPPLIER = "mgr-aoife", "supplier:S01"  # as the API writes them (S01's contract)


def _log() -> list[ev.ContractEvent]:
    """C-001 commits to L-VOL only; evidence for D-SME comes and is retracted at once."""
    return [replace(registered(), actor=MANAGER),
            replace(committed("L-VOL", "100"), actor=MANAGER),
            replace(submitted("E1", "D-SME", "250", "2025-02-01", "2025-02-28", "2025-03-03"),
                    actor=SUPPLIER),
            replace(retracted("E1", "2025-03-03"), actor=SUPPLIER)]


def _mismatches(repo: Repository) -> list[str]:
    rebuilt = rebuild(repo.journal_events(), repo.catalogue)
    return [str(m) for m in compare(rebuilt, repo.live_totals(),
                                    repo.expected_totals(rebuilt.states.values()),
                                    repo.open_alert_identities(),
                                    repo.manually_resolved_identities())]


@pytest.mark.parametrize("batch", [
    1, 2, 200,
], ids=["one-by-one", "submit-and-retract-in-one-batch", "all-in-one-batch"])
def test_uncommitted_measure_retracted_at_once_verifies(repo: Repository, batch: int) -> None:
    feed(repo, _log(), batch=batch)
    assert _mismatches(repo) == []


def test_replay_verify_exits_0_after_the_retraction(repo: Repository, database_url: str,
                                                    tmp_path: Path) -> None:
    feed(repo, _log(), batch=2)  # the registration first, then submit and retract together
    env = Settings(database_url=database_url, data_dir=tmp_path).to_env()
    result = CliRunner().invoke(main, ["replay", "--verify"], env=env)
    assert "row rebuilt 'present' but live 'absent'" not in result.output
    assert result.exit_code == 0, result.output
