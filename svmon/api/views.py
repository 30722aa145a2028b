"""What the API knows of a contract: its journal folded, plus events received but not
yet settled by the worker, with the same fold the worker uses.

Checking a request against this state gives the same answer the stream will give, at
request time: unknown measure, a period outside the term, verifying retracted
evidence... The journal part is cached per contract and grown from the journal's new
rows. The pending part is folded on top: grown when new rows were only added, folded
again when any row left the pending set (settled, possibly refused) or a row appeared
below one already folded (ids from a sequence can commit out of order). The pending
ids are read before the journal, so an event settled in between is folded twice,
which the fold ignores, rather than not at all.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from svmon.core.catalogue import Catalogue
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold
from svmon.core.rules import DEFAULT_POLICY, Policy
from svmon.core.state import ContractState
from svmon.models.ingest import IngestStore
from svmon.schemas import decode_event


@dataclass(slots=True)
class _Entry:
    length: int  # journal rows folded into ``base``
    base: ContractState
    pending: list[int]  # inbox ids folded into ``view``, in order
    view: ContractState


class ContractViews:
    def __init__(self, store: IngestStore, catalogue: Catalogue,
                 policy: Policy = DEFAULT_POLICY, capacity: int = 4096) -> None:
        self.store, self.catalogue, self.policy = store, catalogue, policy
        self.capacity = capacity
        self._cache: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def state(self, contract_id: str) -> ContractState:
        with self._lock:
            ids = self.store.pending_ids(contract_id)
            length = self.store.chain_length(contract_id)
            entry = self._cache.get(contract_id)
            if entry is None or entry.length != length:
                have, base = (entry.length, entry.base) if entry is not None \
                    and entry.length < length else (0, ContractState(contract_id))
                for seq, payload in self.store.journal_since(contract_id, have):
                    base, have = self._fold(base, payload), seq
                entry = _Entry(have, base, [], base)
            n = len(entry.pending)
            if ids[:n] != entry.pending:  # a row left, or an earlier one appeared
                entry.pending, entry.view, n = [], entry.base, 0
            for _, payload in self.store.payloads(ids[n:]):
                entry.view = self._fold(entry.view, payload)
            entry.pending = ids
            self._cache[contract_id] = entry
            self._cache.move_to_end(contract_id)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
            return entry.view

    def _fold(self, state: ContractState, payload: str) -> ContractState:
        try:
            new, _ = fold(state, decode_event(payload), self.catalogue, self.policy)
        except InvalidInput:  # the stream will refuse it too; it changes nothing
            return state
        return new
