"""Measure catalogues: the demo file, lookups, £ values, rollups and the file loaders."""

from __future__ import annotations

import csv
from decimal import Decimal
from pathlib import Path

import pytest
from openpyxl import Workbook

from svmon.catalogue_files import (
    COLUMNS,
    CatalogueFileError,
    demo_catalogue_path,
    load_catalogue,
    read_measures,
)
from svmon.core.catalogue import Catalogue, Measure
from svmon.core.errors import InvalidInput, UnknownMeasure

D = Decimal
DEMO = "DEMO-2025"


@pytest.fixture(scope="module")
def cat() -> Catalogue:
    return load_catalogue()


def demo_rows() -> list[dict[str, str]]:
    with demo_catalogue_path().open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def write_csv(path: Path, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS
              ) -> Path:
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    return path


def local_row(**changes: str) -> dict[str, str]:
    row = {"edition": "BORSET-2026", "set_name": "local: parks", "code": "P-TREES",
           "theme": "Environment", "outcome": "Greener places", "category": "environmental",
           "title": "Trees planted in council parks", "unit": "no. trees", "proxy_gbp": "12.50",
           "illustrative": "false", "source": "https://example.org/borsetshire-proxies-2026"}
    row.update(changes)
    return row


# ---------------------------------------------------------------- demo file


def test_demo_catalogue_loads_every_row(cat: Catalogue) -> None:
    rows = demo_rows()
    assert len(cat) == len(rows) == 22
    assert cat.editions() == ["DEMO-2025", "TOMS-2017-EXAMPLES"]
    assert len(cat.measures(DEMO)) == 19
    assert {m.code for m in cat.measures("TOMS-2017-EXAMPLES")} == {
        "X17-DIS", "X17-CO2T", "X17-VOL"}


def test_demo_measures_carry_their_file_values(cat: Catalogue) -> None:
    nt1 = cat.measure(DEMO, "NT1")
    assert (nt1.theme, nt1.category, nt1.unit, nt1.proxy_gbp, nt1.set_name) == (
        "Jobs", "economic", "no. people FTE", D("28500.00"), "national")
    lvol = cat.measure(DEMO, "L-VOL")
    assert (lvol.set_name, lvol.proxy_gbp, lvol.illustrative) == (
        "local: community", D("14.43"), True)


def test_every_non_illustrative_value_names_a_source(cat: Catalogue) -> None:
    sourced = [m for m in cat if not m.illustrative and not m.record_only]
    assert len(sourced) == 3  # the 2017 examples quoted by CIPS
    for m in sourced:
        assert m.source.startswith("https://"), m.code
    # illustrative values say so in their source text too
    for m in cat:
        assert m.source.strip(), m.code
        if m.illustrative:
            assert "illustrative" in m.source or "record only" in m.source, m.code


def test_value_in_pounds_is_units_times_the_editions_proxy(cat: Catalogue) -> None:
    assert cat.measure(DEMO, "NT1").value_gbp(D("2.5")) == D("71250.0000")
    assert cat.measure(DEMO, "L-VOL").value_gbp(D(100)) == D("1443.00")
    assert cat.measure("TOMS-2017-EXAMPLES", "X17-CO2T").value_gbp(D(3)) == D("193.98")


def test_record_only_measure_counts_units_but_no_pounds(cat: Catalogue) -> None:
    m = cat.measure(DEMO, "D-LOCALPCT")
    assert m.record_only
    assert m.proxy_gbp is None
    assert m.value_gbp(D("45")) == D(0)
    assert not cat.measure(DEMO, "NT1").record_only


def test_rollup_sums_by_theme_category_and_set(cat: Catalogue) -> None:
    units = {"NT1": D(2), "D-DIS": D(1), "L-VOL": D("100.5"), "D-SME": D(5000),
             "L-DIGI-SKILLS": D(10), "NT31": D("3.25")}
    assert cat.rollup(DEMO, units, "theme") == {
        "Jobs": D(3), "Social": D("110.5"), "Growth": D(5000), "Environment": D("3.25")}
    assert cat.rollup(DEMO, units, "category") == {
        "economic": D(5003), "social": D("110.5"), "environmental": D("3.25")}
    assert cat.rollup(DEMO, units, "set_name") == {
        "national": D("5006.25"), "local: community": D("100.5"),
        "local: digital inclusion": D(10)}
    assert cat.rollup(DEMO, units, "outcome")["More local people in employment"] == D(2)
    assert cat.rollup(DEMO, {}, "theme") == {}


def test_rollup_of_pounds_matches_the_hand_sum(cat: Catalogue) -> None:
    units = {"NT1": D(2), "L-VOL": D(100), "D-LOCALPCT": D(40), "D-SME": D(1000)}
    pounds = {code: cat.measure(DEMO, code).value_gbp(q) for code, q in units.items()}
    by_category = cat.rollup(DEMO, pounds, "category")
    # NT1 2 × 28,500 + D-SME 1,000 × 0.60 + D-LOCALPCT record only
    assert by_category == {"economic": D("57600.00"), "social": D("1443.00")}
    assert sum(by_category.values()) == sum(pounds.values())


def test_unknown_measure_and_edition(cat: Catalogue) -> None:
    with pytest.raises(UnknownMeasure) as caught:
        cat.measure(DEMO, "NT999")
    assert caught.value.field == "measure" and caught.value.got == "NT999"
    assert isinstance(caught.value, ValueError)
    with pytest.raises(UnknownMeasure) as caught:
        cat.measure("NT2099", "NT1")
    assert caught.value.field == "catalogue_edition"
    assert "DEMO-2025" in caught.value.expected  # says which editions exist
    with pytest.raises(UnknownMeasure):
        cat.measure(DEMO, "X17-VOL")  # in the catalogue, but another edition
    with pytest.raises(UnknownMeasure):
        cat.rollup(DEMO, {"NOPE": D(1)}, "theme")
    assert cat.has(DEMO, "NT1") and not cat.has(DEMO, "X17-VOL")


# ----------------------------------------------------------- measure checks


def _measure(**changes: object) -> Measure:
    base: dict[str, object] = dict(edition="E", code="C1", title="t", unit="u", theme="T",
                                   outcome="O", category="social", proxy_gbp=D(1),
                                   source="https://example.org", illustrative=False)
    base.update(changes)
    return Measure(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "field"), [
    ({"code": ""}, "code"),
    ({"category": "cultural"}, "category"),
    ({"proxy_gbp": D(-1)}, "proxy_gbp"),
    ({"proxy_gbp": D("NaN")}, "proxy_gbp"),
    ({"proxy_gbp": D("Infinity")}, "proxy_gbp"),
    ({"source": ""}, "source"),
], ids=["empty-code", "category", "negative", "nan", "infinite", "unsourced"])
def test_invalid_measure(changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        _measure(**changes)
    assert caught.value.field == field


def test_unsourced_values_are_allowed_when_illustrative_or_record_only() -> None:
    assert _measure(source="", illustrative=True).illustrative
    assert _measure(source="", proxy_gbp=None).record_only


def test_duplicate_code_within_an_edition_is_refused() -> None:
    with pytest.raises(InvalidInput) as caught:
        Catalogue([_measure(), _measure(title="again")])
    assert caught.value.field == "code"
    assert len(Catalogue([_measure(), _measure(edition="E2")])) == 2  # other edition: fine


# -------------------------------------------------------------- file loader


def test_extra_csv_edition_loads_beside_the_demo(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "borsetshire.csv", [
        local_row(),
        local_row(code="P-BENCH", proxy_gbp="", illustrative="no", source="",
                  category="social"),
        local_row(code="P-LITTER", illustrative="Yes", source="", proxy_gbp="0.5"),
    ])
    cat = load_catalogue([path])
    assert cat.editions() == ["BORSET-2026", "DEMO-2025", "TOMS-2017-EXAMPLES"]
    assert cat.measure("BORSET-2026", "P-TREES").proxy_gbp == D("12.50")
    assert cat.measure("BORSET-2026", "P-BENCH").record_only
    assert cat.measure("BORSET-2026", "P-LITTER").illustrative
    assert len(cat) == 25


def test_blank_set_name_means_national(tmp_path: Path) -> None:
    [m] = read_measures(write_csv(tmp_path / "c.csv", [local_row(set_name="")]))
    assert m.set_name == "national"


@pytest.mark.parametrize(("changes", "column"), [
    ({"proxy_gbp": "twelve"}, "proxy_gbp"),
    ({"illustrative": "maybe"}, "illustrative"),
    ({"category": "cultural"}, "category"),
    ({"proxy_gbp": "-3"}, "proxy_gbp"),
    ({"source": ""}, "source"),
    ({"code": ""}, "code"),
])
def test_bad_csv_row_names_file_row_and_column(tmp_path: Path, changes: dict[str, str],
                                               column: str) -> None:
    path = write_csv(tmp_path / "council.csv", [local_row(code="OK-1"), local_row(**changes)])
    with pytest.raises(CatalogueFileError) as caught:
        read_measures(path)
    err = caught.value
    assert isinstance(err, ValueError)
    assert err.field == f"council.csv row 3: {column}"
    assert "council.csv row 3" in str(err)


def test_missing_column_names_file_and_column(tmp_path: Path) -> None:
    columns = tuple(c for c in COLUMNS if c != "source")
    path = write_csv(tmp_path / "short.csv", [local_row()], columns)
    with pytest.raises(CatalogueFileError) as caught:
        read_measures(path)
    assert caught.value.field == "short.csv row 2: column source"


def test_unsupported_file_type(tmp_path: Path) -> None:
    with pytest.raises(CatalogueFileError) as caught:
        read_measures(tmp_path / "catalogue.ods")
    assert caught.value.field == "path"
    assert "catalogue.ods" in str(caught.value)


def test_csv_with_byte_order_mark_loads(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "excel.csv", [local_row()])
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    [m] = read_measures(path)
    assert (m.edition, m.code) == ("BORSET-2026", "P-TREES")


def test_row_number_counts_blank_lines(tmp_path: Path) -> None:
    # rows used to be counted after blank lines were skipped (fixed in catalogue_files.py)
    path = write_csv(tmp_path / "gappy.csv", [local_row(code="OK-1")])
    bad = tmp_path / "bad.csv"
    write_csv(bad, [local_row(code="BAD", category="cultural")])
    # header (row 1), good row (2), blank (3), bad row (4)
    path.write_text(path.read_text() + "\r\n" + bad.read_text().splitlines()[1] + "\r\n")
    with pytest.raises(CatalogueFileError) as caught:
        read_measures(path)
    assert caught.value.field == "gappy.csv row 4: category"


def test_duplicate_code_in_a_file_names_the_file(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "dupes.csv", [local_row(), local_row(title="again")])
    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue([path])
    assert "dupes.csv" in caught.value.field
    assert caught.value.field.endswith(": code")
    assert caught.value.got == "P-TREES"


def test_file_redefining_a_demo_measure_names_both_files(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "clash.csv", [local_row(edition=DEMO, code="NT1")])
    with pytest.raises(CatalogueFileError) as caught:
        load_catalogue([path])
    assert "clash.csv" in caught.value.field
    assert "catalogue-demo.csv" in caught.value.expected


def test_xlsx_round_trip(tmp_path: Path) -> None:
    rows = demo_rows()
    wb = Workbook()
    ws = wb.active
    ws.append(list(reversed(COLUMNS)))  # any column order
    for i, row in enumerate(rows):
        values = dict(row)
        cells: list[object] = []
        for col in reversed(COLUMNS):
            value: object = values[col]
            if col == "proxy_gbp" and value:
                value = float(str(value))  # spreadsheets hold numbers ...
            elif col == "illustrative":
                value = value == "true"  # ... and booleans
            elif value == "":
                value = None
            cells.append(value)
        ws.append(cells)
        if i == 5:
            ws.append([None] * len(COLUMNS))  # a blank row is skipped
    path = tmp_path / "catalogue.xlsx"
    wb.save(path)

    from_xlsx = read_measures(path)
    from_csv = read_measures(demo_catalogue_path())
    assert from_xlsx == from_csv
    assert {m.code: m.proxy_gbp for m in from_xlsx}["D-DIS"] == D("12769.68")
    assert {m.code: m.record_only for m in from_xlsx}["D-LOCALPCT"]
    assert load_catalogue([]).measures(DEMO) == Catalogue(from_xlsx).measures(DEMO)


def test_xlsx_bad_cell_names_file_row_and_column(tmp_path: Path) -> None:
    wb = Workbook()
    ws = wb.active
    ws.append(list(COLUMNS))
    ws.append([local_row()[c] for c in COLUMNS])
    ws.append([None] * len(COLUMNS))  # row 3 left blank
    ws.append([local_row(code="P-2", proxy_gbp="lots")[c] for c in COLUMNS])
    path = tmp_path / "local.xlsx"
    wb.save(path)
    with pytest.raises(CatalogueFileError) as caught:
        read_measures(path)
    assert caught.value.field == "local.xlsx row 4: proxy_gbp"
