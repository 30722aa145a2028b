"""What the API knows of a contract: its journal folded, plus events received but not
yet settled by the worker, with the same fold the worker uses.

Checking a request against this state gives the same answer the stream will give, at
request time: unknown measure, a period outside the term, verifying retracted
evidence... The journal part is cached per contract and grown from the journal's new
rows; the pending part is folded on top. Reads go inbox first, then journal: if the
worker commits in between, an event is folded twice, which the fold ignores.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from models.ingest import IngestStore
from svmon.core.catalogue import Catalogue
from svmon.core.errors import InvalidInput
from svmon.core.fold import fold
from svmon.core.rules import DEFAULT_POLICY, Policy
from svmon.core.state import ContractState
from svmon.schemas import decode_event


@dataclass(slots=True)
class _Entry:
    length: int  # journal rows folded into ``base``
    base: ContractState
    last_pending: int  # highest inbox id folded into ``view``
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
            entry = self._cache.get(contract_id)
            if entry is not None:
                newer = self.store.pending(contract_id, entry.last_pending)
                if self.store.chain_length(contract_id) == entry.length:
                    entry.view, entry.last_pending = self._apply(entry.view, newer,
                                                                 entry.last_pending)
                    self._cache.move_to_end(contract_id)
                    return entry.view
            pending = self.store.pending(contract_id)
            length, base = (entry.length, entry.base) if entry else \
                (0, ContractState(contract_id))
            for seq, payload in self.store.journal_since(contract_id, length):
                base, length = self._fold(base, payload), seq
            view, last = self._apply(base, pending, 0)
            self._cache[contract_id] = _Entry(length, base, last, view)
            self._cache.move_to_end(contract_id)
            while len(self._cache) > self.capacity:
                self._cache.popitem(last=False)
            return view

    def _apply(self, state: ContractState, pending: list[tuple[int, str]], last: int
               ) -> tuple[ContractState, int]:
        for row_id, payload in pending:
            state = self._fold(state, payload)
            last = max(last, row_id)
        return state, last

    def _fold(self, state: ContractState, payload: str) -> ContractState:
        try:
            new, _ = fold(state, decode_event(payload), self.catalogue, self.policy)
        except InvalidInput:  # the stream will refuse it too; it changes nothing
            return state
        return new
