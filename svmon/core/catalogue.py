"""Measure catalogues: themes, outcomes and measures with a £ proxy value per edition.

A catalogue is reference data that a user loads (see ``svmon.catalogue_files``). Each
measure belongs to one edition (for example ``DEMO-2025`` or ``NT2022``) and to a set:
the national framework or a local set that a council adds beside it. Every proxy value
carries its source, and values without a source are flagged as illustrative.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from svmon.core.errors import InvalidInput, UnknownMeasure

Category = Literal["social", "environmental", "economic"]
CATEGORIES: tuple[Category, ...] = ("social", "environmental", "economic")
RollupKey = Literal["theme", "outcome", "category", "set_name"]


@dataclass(frozen=True, slots=True)
class Measure:
    edition: str
    code: str
    title: str
    unit: str
    theme: str
    outcome: str
    category: Category
    proxy_gbp: Decimal | None  # None: a "record only" measure, counted in units, no £
    source: str
    illustrative: bool
    set_name: str = "national"

    def __post_init__(self) -> None:
        if not self.code:
            raise InvalidInput("code", "a non-empty measure code", self.code)
        if self.category not in CATEGORIES:
            raise InvalidInput("category", f"one of {', '.join(CATEGORIES)}", self.category)
        if self.proxy_gbp is not None and (
            not self.proxy_gbp.is_finite() or self.proxy_gbp < 0
        ):
            raise InvalidInput("proxy_gbp", "a finite amount ≥ 0 or empty", self.proxy_gbp)
        if self.proxy_gbp is not None and not self.illustrative and not self.source:
            raise InvalidInput(
                "source", "a source for every proxy value not marked illustrative", ""
            )

    @property
    def record_only(self) -> bool:
        return self.proxy_gbp is None

    def value_gbp(self, units: Decimal) -> Decimal:
        """£ for ``units`` of this measure (0 for a record-only measure)."""
        return units * self.proxy_gbp if self.proxy_gbp is not None else Decimal(0)


class Catalogue:
    """All loaded editions, looked up by (edition, code)."""

    def __init__(self, measures: Iterable[Measure]) -> None:
        self._by_key: dict[tuple[str, str], Measure] = {}
        for m in measures:
            key = (m.edition, m.code)
            if key in self._by_key:
                raise InvalidInput(
                    "code", f"unique within edition {m.edition!r}", m.code
                )
            self._by_key[key] = m

    def __len__(self) -> int:
        return len(self._by_key)

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._by_key.values())

    def editions(self) -> list[str]:
        return sorted({e for e, _ in self._by_key})

    def has(self, edition: str, code: str) -> bool:
        return (edition, code) in self._by_key

    def measure(self, edition: str, code: str) -> Measure:
        try:
            return self._by_key[(edition, code)]
        except KeyError:
            if not any(e == edition for e, _ in self._by_key):
                raise UnknownMeasure(
                    "catalogue_edition", f"one of {self.editions()}", edition
                ) from None
            raise UnknownMeasure(
                "measure", f"a measure code of catalogue edition {edition!r}", code
            ) from None

    def measures(self, edition: str) -> list[Measure]:
        return [m for (e, _), m in self._by_key.items() if e == edition]

    def rollup(
        self, edition: str, amounts: Mapping[str, Decimal], by: RollupKey
    ) -> dict[str, Decimal]:
        """Sum per-measure amounts (units of £) by theme, outcome, category or set."""
        out: dict[str, Decimal] = {}
        for code, amount in amounts.items():
            group = getattr(self.measure(edition, code), by)
            out[group] = out.get(group, Decimal(0)) + amount
        return out
