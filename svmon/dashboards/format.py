"""How every dashboard writes a figure, a date, a RAG status or an alert: one place, so
a finance officer sees `£7,751,543` in a tile and in the table beside it.

- money: whole pounds in tables and tiles (`gbp`), pence where one piece of evidence
  is shown (`gbp_pence`); half a pound rounds up, as a finance team would;
- units: by the measure's unit (`units`): £-valued measures as whole pounds, tonnes to
  one decimal place, counts and hours whole when they are large or whole;
- percentages (`pct`, `share`); UK dates (`uk_date`, `1 Dec 2026`), date-times in
  UK time (`uk_datetime`), months (`month`, `Oct 2026`);
- RAG with its stated bands (`RAG_RULE`, `rag_badge`), shown with a word and a symbol
  as well as a colour, so it never relies on red and green alone;
- alerts by a readable title (`alert_title`) instead of their ids.

Every function returns "–" for a missing value (None), so an empty cell is never
mistaken for zero.
"""

from __future__ import annotations

import html
from datetime import UTC, date, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from svmon.alerts.dispatch import TITLES
from svmon.core.rules import Policy

NONE = "–"
UK = ZoneInfo("Europe/London")
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
AMBER_BELOW = Policy().at_risk_threshold  # the fold's at-risk threshold (0.9)
RAG_RULE = (
    "Red: the term's target was missed, or a milestone was missed by more than "
    f"{(1 - AMBER_BELOW) * 100:.0f}% of its target, and the alert is not resolved. "
    f"Amber: milestones missed by less than that, a forecast below {AMBER_BELOW * 100:.0f}% "
    "of a target at the end of the term, or reporting overdue. Green: none of these.")
# WCAG AA: each colour has a contrast of at least 4.5:1 against white (text) and the
# chart colours at least 3:1 (graphics); the series differ in lightness as well as hue.
COLOURS = {"red": "#a3001b", "amber": "#8a5300", "green": "#1b6e34", "verified": "#1f4e79",
           "claimed": "#b34700", "committed": "#7fa7cf", "target": "#595959",
           "milestone": "#000000"}
RAG_SYMBOLS = {"red": "✖", "amber": "▲", "green": "●"}


def _dec(v: Any) -> Decimal:
    if isinstance(v, Decimal):
        return v
    try:
        return Decimal(str(v))
    except InvalidOperation:
        raise ValueError(f"amount: expected a number, got {v!r}") from None


def _sep(v: Decimal, places: int) -> str:
    q = v.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
    if q == 0:
        q = abs(q)  # no "-0"
    text = f"{abs(q):,.{places}f}"
    return f"−{text}" if q < 0 else text


def gbp(v: Any) -> str:
    """Whole pounds, for tables and tiles: ``£7,751,543``."""
    if v is None:
        return NONE
    d = _dec(v)
    text = _sep(d, 0)
    return f"−£{text[1:]}" if text.startswith("−") else f"£{text}"


def gbp_pence(v: Any) -> str:
    """Pounds and pence, for one piece of evidence: ``£57,550.93``."""
    if v is None:
        return NONE
    text = _sep(_dec(v), 2)
    return f"−£{text[1:]}" if text.startswith("−") else f"£{text}"


def _places(d: Decimal, unit: str) -> int:
    u = unit.lower()
    if u.startswith("£"):
        return 0
    if u.startswith(("tonne", "tco2")):
        return 1
    if d == d.to_integral_value() or abs(d) >= 100:
        return 0
    return 1


def units(v: Any, unit: str = "", with_unit: bool = False) -> str:
    """A quantity of a measure by its unit: ``678,655`` hours, ``12.5`` tCO2e,
    ``£80,000`` for a £-valued measure; ``with_unit`` adds the unit (``12.5 tCO2e``)."""
    if v is None:
        return NONE
    d = _dec(v)
    if unit.startswith("£"):
        money = gbp(d)
        rest = unit[1:].strip()
        return f"{money} {rest}".strip() if with_unit else money
    if unit == "%":
        return pct(d)
    text = _sep(d, _places(d, unit))
    return f"{text} {unit}" if with_unit and unit else text


def pct(v: Any, places: int = 0) -> str:
    """A percentage already multiplied by 100: ``pct(57.3)`` is ``57%``."""
    if v is None:
        return NONE
    return f"{_sep(_dec(v), places)}%"


def share(part: Any, whole: Any, places: int = 0) -> str:
    """``part`` as a percentage of ``whole``; "–" when ``whole`` is zero or missing."""
    if part is None or whole is None or _dec(whole) == 0:
        return NONE
    return pct(_dec(part) / _dec(whole) * 100, places)


def _as_date(v: Any) -> date | datetime | None:
    if v is None or v == "":
        return None
    if isinstance(v, date):
        return v
    text = str(v)
    try:
        return datetime.fromisoformat(text) if len(text) > 10 else date.fromisoformat(text)
    except ValueError:
        raise ValueError(f"date: expected an ISO date, got {text!r}") from None


def uk_date(v: Any) -> str:
    """``1 Dec 2026``; a date-time is shown as its date in UK time."""
    d = _as_date(v)
    if d is None:
        return NONE
    if isinstance(d, datetime):
        d = (d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UK).date()
    return f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def uk_datetime(v: Any) -> str:
    """``5 Nov 2026, 10:00`` in UK time; a plain date is shown as ``uk_date``."""
    d = _as_date(v)
    if d is None:
        return NONE
    if not isinstance(d, datetime):
        return uk_date(d)
    local = (d if d.tzinfo else d.replace(tzinfo=UTC)).astimezone(UK)
    return f"{uk_date(local.date())}, {local:%H:%M}"


def month(v: str) -> str:
    """``2026-10`` as ``Oct 2026``."""
    try:
        y, m = v.split("-")[:2]
        return f"{MONTHS[int(m) - 1]} {int(y)}"
    except (ValueError, IndexError):
        raise ValueError(f"month: expected YYYY-MM, got {v!r}") from None


def rag_label(status: str) -> str:
    """``✖ Red``: the symbol and the word, so colour is never the only cue."""
    if status not in RAG_SYMBOLS:
        raise ValueError(f"rag: expected red, amber or green, got {status!r}")
    return f"{RAG_SYMBOLS[status]} {status.capitalize()}"


def rag_badge(status: str) -> str:
    """The RAG label as HTML in its colour (class ``rag-<status>``)."""
    return f"<span class='rag-{status}'>{html.escape(rag_label(status))}</span>"


def _subject(kind: str, contract_id: str, subject: str) -> str:
    if kind == "EvidenceRejected":
        # evidence ids are often "<contract>:evidence:<measure>:<YYYY-MM>"
        parts = subject.split(":")
        if len(parts) >= 4 and parts[-1][:4].isdigit():
            try:
                return f"evidence for {month(parts[-1])}"
            except ValueError:
                pass
        return "evidence " + (subject if len(subject) <= 24 else subject[:23] + "…")
    if kind == "KpiRating":
        return f"rated {subject}"
    if kind == "MilestoneMissed" and subject:
        return f"milestone {subject}"
    return subject


def alert_title(row: dict[str, Any]) -> str:
    """``C-011 · Evidence rejected: D-CLIM, evidence for Oct 2026`` for an alert row."""
    kind = str(row.get("kind", ""))
    title = TITLES.get(kind, kind)
    what = ", ".join(p for p in (str(row.get("measure") or ""),
                                 _subject(kind, str(row.get("contract_id", "")),
                                          str(row.get("subject") or ""))) if p)
    head = f"{row.get('contract_id', '')} · {title}"
    return f"{head}: {what}" if what else head


def status(v: str | None) -> str:
    """An evidence or alert status as a word a reader expects (``submitted`` is
    "Awaiting review")."""
    if not v:
        return NONE
    return {"submitted": "Awaiting review"}.get(v, v.capitalize())


class Html(str):
    """Text that is HTML already (a link, a coloured badge): tables do not escape it."""


def cell_gbp(v: Any, row: dict[str, Any] | None = None) -> str:
    return gbp(v)


def cell_pence(v: Any, row: dict[str, Any] | None = None) -> str:
    return gbp_pence(v)


def cell_units(v: Any, row: dict[str, Any] | None = None) -> str:
    """A quantity by the ``unit`` of its row."""
    return units(v, str((row or {}).get("unit") or ""))


def cell_pct(v: Any, row: dict[str, Any] | None = None) -> str:
    return pct(v)


def cell_date(v: Any, row: dict[str, Any] | None = None) -> str:
    return uk_date(v)


def cell_datetime(v: Any, row: dict[str, Any] | None = None) -> str:
    return uk_datetime(v)


def cell_rag(v: Any, row: dict[str, Any] | None = None) -> str:
    return Html(rag_badge(str(v))) if v in RAG_SYMBOLS else NONE


def cell_status(v: Any, row: dict[str, Any] | None = None) -> str:
    return status(v)


def cell_kinds(v: Any, row: dict[str, Any] | None = None) -> str:
    """A list of alert kinds as their titles."""
    return ", ".join(TITLES.get(k, k) for k in (v or ())) or NONE
