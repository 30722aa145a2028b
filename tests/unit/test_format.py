"""svmon.dashboards.format: how every dashboard writes money, units, dates, RAG and
alerts, by example (the examples are the ones the dashboards' issue quotes)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from svmon.dashboards import format as fmt
from svmon.dashboards import kit


def test_money_is_whole_pounds_in_tables_and_pence_in_evidence() -> None:
    assert fmt.gbp(Decimal("7751542.77")) == "£7,751,543"
    assert fmt.gbp(Decimal("0.5")) == "£1"  # half a pound rounds up
    assert fmt.gbp(Decimal("0.49")) == "£0"
    assert fmt.gbp(Decimal("-1234.5")) == "−£1,235"
    assert fmt.gbp(Decimal("-0.2")) == "£0"  # never "-£0"
    assert fmt.gbp(None) == "–"
    assert fmt.gbp(12) == "£12"
    assert fmt.gbp_pence(Decimal("57550.932")) == "£57,550.93"
    assert fmt.gbp_pence(Decimal("0.005")) == "£0.01"


def test_units_follow_the_measures_unit() -> None:
    assert fmt.units(Decimal("678654.6137"), "no. hrs x no. attendees") == "678,655"
    assert fmt.units(Decimal("57550.932"), "£") == "£57,551"
    assert fmt.units(Decimal("57550.932"), "£ invested", with_unit=True) == "£57,551 invested"
    assert fmt.units(Decimal("12.345"), "tCO2e", with_unit=True) == "12.3 tCO2e"
    assert fmt.units(Decimal("120"), "tonnes") == "120.0"
    assert fmt.units(Decimal("2.5"), "no. people FTE") == "2.5"
    assert fmt.units(Decimal("3.00"), "no. people FTE") == "3"
    assert fmt.units(Decimal("57.3"), "%") == "57%"
    assert fmt.units(None, "hours") == "–"


def test_percentages_and_shares() -> None:
    assert fmt.pct(Decimal("57.3")) == "57%"
    assert fmt.pct(Decimal("57.35"), 1) == "57.4%"
    assert fmt.share(Decimal(1), Decimal(3)) == "33%"
    assert fmt.share(Decimal(1), Decimal(0)) == "–"
    assert fmt.share(None, Decimal(3)) == "–"


def test_dates_the_uk_way() -> None:
    assert fmt.uk_date(date(2026, 12, 1)) == "1 Dec 2026"
    assert fmt.uk_date("2026-12-01 00:00:00+00:00") == "1 Dec 2026"
    assert fmt.uk_date("2026-12-01") == "1 Dec 2026"
    # 23:30 UTC on 30 June is already 1 July in London (summer time)
    assert fmt.uk_date(datetime(2026, 6, 30, 23, 30, tzinfo=UTC)) == "1 Jul 2026"
    assert fmt.uk_datetime(datetime(2026, 7, 5, 10, tzinfo=UTC)) == "5 Jul 2026, 11:00"
    assert fmt.uk_datetime(datetime(2026, 12, 5, 10, tzinfo=UTC)) == "5 Dec 2026, 10:00"
    assert fmt.uk_datetime(date(2026, 12, 5)) == "5 Dec 2026"
    assert fmt.month("2026-10") == "Oct 2026"
    assert fmt.uk_date(None) == "–"
    with pytest.raises(ValueError, match="date: expected an ISO date, got 'soon'"):
        fmt.uk_date("soon")
    with pytest.raises(ValueError, match="month: expected YYYY-MM"):
        fmt.month("October")


def test_rag_states_its_amber_band_and_never_relies_on_colour_alone() -> None:
    assert "below 90% of a target" in fmt.RAG_RULE and "by more than 10%" in fmt.RAG_RULE
    assert fmt.rag_label("red") == "✖ Red"
    assert fmt.rag_label("amber") == "▲ Amber"
    assert fmt.rag_label("green") == "● Green"
    assert fmt.rag_badge("amber") == "<span class='rag-amber'>▲ Amber</span>"
    with pytest.raises(ValueError, match="rag: expected red, amber or green, got 'blue'"):
        fmt.rag_label("blue")


def _contrast(hex_colour: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = (int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    lum = 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)
    return 1.05 / (lum + 0.05)


def test_colours_pass_wcag_aa_against_white() -> None:
    for name in ("red", "amber", "green", "verified", "claimed", "target"):
        assert _contrast(fmt.COLOURS[name]) >= 4.5, name  # text
    # the committed bar is pale on purpose: its outline (the verified colour) carries
    # the contrast; the legend says which is which
    assert _contrast(fmt.COLOURS["verified"]) >= 3


def test_alerts_have_readable_titles_instead_of_ids() -> None:
    rejected = {"kind": "EvidenceRejected", "contract_id": "C-011", "measure": "D-CLIM",
                "subject": "C-011:evidence:D-CLIM:2026-10",
                "alert_id": "C-011/C-011:evidence:D-CLIM:2026-10:rejected/EvidenceRejected"}
    assert fmt.alert_title(rejected) == \
        "C-011 · Evidence rejected: D-CLIM, evidence for Oct 2026"
    assert fmt.alert_title({"kind": "MilestoneMissed", "contract_id": "C-004",
                            "measure": "NT1", "subject": "NT1-Q3"}) == \
        "C-004 · Milestone missed: NT1, milestone NT1-Q3"
    assert fmt.alert_title({"kind": "ReportingOverdue", "contract_id": "C-006",
                            "measure": "", "subject": ""}) == "C-006 · Reporting overdue"
    assert fmt.status("submitted") == "Awaiting review"


def test_tables_format_by_column_and_downloads_keep_raw_numbers() -> None:
    rows = [{"measure": "NT31", "unit": "tCO2e", "verified": Decimal("54.9213"),
             "verified_gbp": Decimal("13435.4"), "rag": "amber", "due": date(2026, 9, 30)}]
    cols = [("measure", "Measure"), ("verified", "Verified", fmt.cell_units),
            ("verified_gbp", "Verified £", fmt.cell_gbp), ("rag", "RAG", fmt.cell_rag),
            ("due", "Due")]
    html = kit.table(rows, cols, "t")
    assert "<td data-col='verified' class='num'>54.9</td>" in html
    assert "<td data-col='verified_gbp' class='num'>£13,435</td>" in html
    assert "<span class='rag-amber'>▲ Amber</span>" in html  # HTML, not escaped
    assert "<td data-col='due'>30 Sep 2026</td>" in html
    import base64
    import re

    csv_b64 = re.findall(r"base64,([A-Za-z0-9+/=]+)'", kit.download_links(rows, cols, "t"))[0]
    text = base64.b64decode(csv_b64).decode()
    assert "NT31,54.9213,13435.4,amber,2026-09-30" in text


def test_a_deep_link_is_an_escaped_relative_link() -> None:
    assert kit.link("contract", "C-004", contract="C-004") == \
        "<a href='contract.ipynb?contract=C-004'>C-004</a>"
    assert kit.link("contract", "<b>", contract="a'b") == \
        "<a href='contract.ipynb?contract=a%27b'>&lt;b&gt;</a>"
