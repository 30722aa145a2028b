"""Token creation refuses the party ids the system reserves (issue 21): a manager's
actor is its bare id, so a manager token for "system" would write the clock's actor on
its events; names a reader takes for no one, and ids of dots alone, are refused too."""

from __future__ import annotations

import pytest

from svmon.core import authority
from svmon.core.errors import InvalidInput
from tests.integration.conftest import Api


@pytest.mark.parametrize(("kind", "party"), [
    ("manager", "system"), ("supplier", "system"), ("manager", "System"),
    ("supplier", "SYSTEM"), ("manager", "svmon"), ("manager", "admin"), ("supplier", "root"),
    ("manager", "anonymous"), ("supplier", "unknown"), ("manager", "null"),
    ("supplier", "."), ("manager", "..")])
def test_a_reserved_party_id_is_refused_naming_field_expectation_and_value(
        api: Api, kind: str, party: str) -> None:
    before = len(api.store.tokens())
    with pytest.raises(InvalidInput) as info:
        api.store.create_token(kind, party)
    err = info.value
    assert err.field == "party" and err.got == party
    assert "reserve" in err.expected and authority.SYSTEM_ACTOR in err.expected
    assert len(api.store.tokens()) == before  # nothing stored


@pytest.mark.parametrize("party", ["system-team", "mgr.system", "S.01", "root@council.gov.uk"])
def test_ids_that_merely_contain_a_reserved_name_are_fine(api: Api, party: str) -> None:
    token_id, token = api.store.create_token("manager", party)
    found = api.store.principal(token)
    assert not isinstance(found, str) and found.party == party
    assert authority.parse_actor(found.actor) == ("manager", party)
    assert found.token_id == token_id
