"""The FEC generator itself: its files, re-read with plain Python (bytes, `str.split`, `csv`), hold what
`FecFile` says, and every variant of docs/fec.md is visible in the bytes.

Deliberately independent of the product's FEC parser: this is the reference the parser is tested against.
"""

from __future__ import annotations

import csv
import re
import time
from collections import defaultdict
from dataclasses import dataclass, replace
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from comptaflow.testkit.fec import COLUMNS, EXTRA_COLUMNS, FecFile, FecSpec, write_fec

BOM = b"\xef\xbb\xbf"


@dataclass
class ReadBack:
    header: list[str]
    rows: list[list[str]]  # data lines, fields unpadded, trailing separator removed
    raw_lines: list[str]  # decoded text lines (header first), without their line ending

    def column(self, name: str) -> list[str]:
        index = [h.lower() for h in self.header].index(name.lower())
        return [row[index] for row in self.rows]


def read_back(fec: FecFile) -> ReadBack:
    spec = fec.spec
    raw = fec.path.read_bytes()
    raw = raw.removeprefix(BOM) if spec.bom else raw
    text = raw.decode(spec.encoding)  # strict: an unrepresentable character would have failed to encode
    assert text.endswith(spec.line_ending)
    raw_lines = text[: -len(spec.line_ending)].split(spec.line_ending)
    if spec.separator == ",":
        parsed = list(csv.reader(raw_lines))
    else:
        parsed = [line.split(spec.separator) for line in raw_lines]
    width = len(spec.columns)
    cleaned = [[field.strip() for field in fields] for fields in parsed]
    for number, fields in enumerate(cleaned, start=1):
        trailing = spec.header_trailing if number == 1 else spec.trailing_separator
        if trailing and number != fec.truncated_line:
            assert fields[-1] == "", (number, fields)
            fields.pop()
        if number != fec.truncated_line:
            assert len(fields) == width, (number, fields)
    return ReadBack(cleaned[0], cleaned[1:], raw_lines)


def amount(text: str) -> Decimal:
    return Decimal(text.replace(",", "."))


def debits_credits(fec: FecFile, back: ReadBack) -> list[tuple[Decimal, Decimal]]:
    if fec.spec.amounts == "debit_credit":
        return [(amount(d), amount(c)) for d, c in zip(back.column("Debit"), back.column("Credit"), strict=True)]
    debit_sens = {"D", "+1"}
    return [
        (amount(m), Decimal("0.00")) if s in debit_sens else (Decimal("0.00"), amount(m))
        for m, s in zip(back.column("Montant"), back.column("Sens"), strict=True)
    ]


def entry_keys(fec: FecFile, back: ReadBack) -> list[tuple[str, str]]:
    journal, number = back.column("JournalCode"), back.column("EcritureNum")
    if not fec.spec.ecriture_num_zero:
        return list(zip(journal, number, strict=True))
    dates, pieces = back.column("EcritureDate"), back.column("PieceRef")
    return [(j, f"{d[:8]}/{p}") for j, d, p in zip(journal, dates, pieces, strict=True)]


def recount(fec: FecFile, back: ReadBack) -> None:
    """Everything `FecFile` claims, recomputed from the text."""
    assert len(back.rows) == fec.lines
    amounts = debits_credits(fec, back)
    accounts: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    tiers: dict[str, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for (debit, credit), account, aux in zip(amounts, back.column("CompteNum"), back.column("CompAuxNum"), strict=True):
        accounts[account][0] += debit
        accounts[account][1] += credit
        if aux:
            tiers[aux][0] += debit
            tiers[aux][1] += credit
    assert {k: tuple(v) for k, v in accounts.items()} == fec.accounts
    assert {k: tuple(v) for k, v in tiers.items()} == fec.tiers
    assert dict(zip(back.column("CompteNum"), back.column("CompteLib"), strict=True)) == fec.account_labels
    assert {
        k: v for k, v in zip(back.column("CompAuxNum"), back.column("CompAuxLib"), strict=True) if k
    } == fec.tiers_labels
    assert dict(zip(back.column("JournalCode"), back.column("JournalLib"), strict=True)) == fec.journals
    assert sum(d for d, _ in amounts) == fec.total_debit
    assert sum(c for _, c in amounts) == fec.total_credit
    assert len(set(entry_keys(fec, back))) == fec.entries
    days = [datetime.strptime(d[:8], "%Y%m%d").date() for d in back.column("EcritureDate")]
    assert (min(days), max(days)) == (fec.period_start, fec.period_end)


def entry_balances(fec: FecFile, back: ReadBack) -> dict[tuple[str, str], Decimal]:
    balances: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for key, (debit, credit) in zip(entry_keys(fec, back), debits_credits(fec, back), strict=True):
        balances[key] += debit - credit
    return balances


def test_default_file_is_balanced_canonical_and_matches_its_record(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt")
    back = read_back(fec)
    assert back.header == list(COLUMNS)
    assert 2000 <= fec.lines <= 2004
    recount(fec, back)
    assert fec.total_debit == fec.total_credit > 0
    assert set(entry_balances(fec, back).values()) == {Decimal(0)}
    sizes = defaultdict(int)
    for key in entry_keys(fec, back):
        sizes[key] += 1
    assert set(sizes.values()) <= {2, 3, 4, 5}
    assert (fec.period_start, fec.period_end) == (date(2024, 1, 1), date(2024, 12, 31))
    assert (fec.unbalanced_entry, fec.truncated_line) == (None, None)


def test_content_is_realistic_french_bookkeeping(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt")
    back = read_back(fec)
    assert fec.journals == {
        "AN": "À nouveaux",
        "AC": "Achats",
        "VT": "Ventes",
        "BQ": "Banque",
        "OD": "Opérations diverses",
    }
    first = back.rows[0]
    assert first[0] == "AN"
    assert first[3] == "20240101"
    for code, label in {
        "401000": "Fournisseurs",
        "411000": "Clients",
        "101300": "Capital souscrit appelé versé",
        "606100": "Achats non stockés de matières et fournitures",
        "706000": "Prestations de services",
    }.items():
        assert fec.account_labels[code] == label
    assert {"512000", "445660", "445710", "641000"} <= set(fec.accounts)
    assert all(re.fullmatch(r"[FC]\d{4}", code) for code in fec.tiers)
    assert {code[0] for code in fec.tiers} == {"F", "C"}
    supplier_lines = {
        aux[0] for aux, acc in zip(back.column("CompAuxNum"), back.column("CompteNum"), strict=True) if acc == "401000"
    }
    assert supplier_lines == {"F"}
    text = "\n".join(back.raw_lines)
    for char in "éèàçôœ€":
        assert char in text, char
    lettered = [(let, day) for let, day in zip(back.column("EcritureLet"), back.column("DateLet"), strict=True) if let]
    assert ("AA", lettered[0][1]) == lettered[0]
    assert all(re.fullmatch(r"[A-Z]{2}", let) and re.fullmatch(r"\d{8}", day) for let, day in lettered)
    lettered_accounts = {
        acc for acc, let in zip(back.column("CompteNum"), back.column("EcritureLet"), strict=True) if let
    }
    assert lettered_accounts == {"401000", "411000"}
    currencies = [(m, i) for m, i in zip(back.column("Montantdevise"), back.column("Idevise"), strict=True) if i]
    assert currencies
    assert all(i == "USD" and amount(m) > 0 for m, i in currencies)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    a = write_fec(tmp_path / "a.txt", FecSpec(lines=500, seed=3))
    b = write_fec(tmp_path / "b.txt", FecSpec(lines=500, seed=3))
    c = write_fec(tmp_path / "c.txt", FecSpec(lines=500, seed=4))
    assert a.path.read_bytes() == b.path.read_bytes() != c.path.read_bytes()


SPECS = {
    "pipe-trailing": FecSpec(lines=600, separator="|", trailing_separator=True, header_trailing=True),
    "semicolon-padded": FecSpec(lines=600, separator=";", padded=True, zero_padded_amounts=True),
    "comma-quoted": FecSpec(lines=600, separator=",", amounts="montant_sens_dc"),
    "sens-pm1-extra": FecSpec(lines=600, amounts="montant_sens_pm1", extra_columns=True, header_style="upper"),
    "iso-8859-15-crlf": FecSpec(lines=600, encoding="iso-8859-15", line_ending="\r\n", header_style="lower"),
    "cp1252-crcrlf": FecSpec(lines=600, encoding="cp1252", line_ending="\r\r\n", header_style="variant"),
    "cp850-datetime": FecSpec(lines=600, encoding="cp850", date_time=True, empty_valid_date=True),
    "bom-num-zero": FecSpec(lines=600, bom=True, ecriture_num_zero=True, lowercase_journals=True),
    "decimal-point": FecSpec(lines=600, decimal_point=True, separator="|", padded=True, trailing_separator=True),
    "three-years": FecSpec(lines=3000, fiscal_years=3, start=date(2023, 7, 1)),
}


@pytest.mark.parametrize("name", sorted(SPECS))
def test_every_variant_reads_back_balanced(tmp_path: Path, name: str) -> None:
    spec = SPECS[name]
    fec = write_fec(tmp_path / f"{name}.txt", spec)
    back = read_back(fec)
    assert back.header == spec.header_names()
    assert [h.lower() for h in back.header] == [c.lower() for c in spec.columns] or spec.header_style == "variant"
    recount(fec, back)
    assert fec.total_debit == fec.total_credit
    assert set(entry_balances(fec, back).values()) == {Decimal(0)}


def test_bom_only_when_asked(tmp_path: Path) -> None:
    with_bom = write_fec(tmp_path / "a.txt", FecSpec(lines=50, bom=True))
    without = write_fec(tmp_path / "b.txt", FecSpec(lines=50))
    assert with_bom.path.read_bytes().startswith(BOM + b"JournalCode\tJournalLib\t")
    assert without.path.read_bytes().startswith(b"JournalCode\tJournalLib\t")
    with pytest.raises(ValueError, match="bom"):
        FecSpec(bom=True, encoding="cp850")


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r\r\n"])
def test_line_endings(tmp_path: Path, ending: str) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=100, line_ending=ending))
    raw = fec.path.read_bytes()
    assert raw.count(b"\n") == fec.lines + 1
    assert raw.count(ending.encode()) == fec.lines + 1
    assert raw.count(b"\r") == (fec.lines + 1) * ending.count("\r")


def test_trailing_separator_on_data_and_header_independently(tmp_path: Path) -> None:
    data_only = write_fec(tmp_path / "a.txt", FecSpec(lines=50, separator=";", trailing_separator=True))
    lines = data_only.path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(";Idevise")
    assert {line.count(";") for line in lines} == {17, 18}
    assert all(line.count(";") == 18 and line.endswith(";") for line in lines[1:])
    header_only = write_fec(tmp_path / "b.txt", FecSpec(lines=50, separator=";", header_trailing=True))
    lines = header_only.path.read_text(encoding="utf-8").splitlines()
    assert lines[0].endswith(";Idevise;")
    assert lines[0].count(";") == 18
    assert {line.count(";") for line in lines[1:]} == {17}


def test_padded_fields_have_a_fixed_width_per_column(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=300, separator="|", padded=True))
    lines = fec.path.read_text(encoding="utf-8").splitlines()
    widths = {tuple(len(field) for field in line.split("|")) for line in lines}
    assert len(widths) == 1  # every line, header included, has the same field widths
    debit_index = COLUMNS.index("Debit")
    for line in lines[1:]:
        fields = line.split("|")
        assert fields[0].startswith(("AN ", "AC ", "VT ", "BQ ", "OD "))  # text: padded on the right
        assert fields[debit_index].startswith(" ")  # amount: padded on the left
        assert re.fullmatch(r" +\d+,\d\d", fields[debit_index])


def test_zero_padded_and_decimal_point_amounts(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "a.txt", FecSpec(lines=200, zero_padded_amounts=True))
    back = read_back(fec)
    assert all(re.fullmatch(r"\d{10},\d\d", value) for value in back.column("Debit") + back.column("Credit"))
    assert "0000000000,00" in back.column("Credit")
    fec = write_fec(tmp_path / "b.txt", FecSpec(lines=200, decimal_point=True))
    back = read_back(fec)
    assert all(re.fullmatch(r"\d+\.\d\d", value) for value in back.column("Debit") + back.column("Credit"))


def test_comma_separator_quotes_every_field(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=100, separator=","))
    lines = fec.path.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith('"JournalCode","JournalLib","EcritureNum",')
    for line in lines[1:]:
        assert line.startswith('"')
        assert line.endswith('"')
        assert line.count('","') == len(COLUMNS) - 1
    back = read_back(fec)
    assert all("," in value for value in back.column("Debit"))


def test_montant_sens_columns(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "a.txt", FecSpec(lines=100, amounts="montant_sens_dc"))
    back = read_back(fec)
    assert back.header[11:13] == ["Montant", "Sens"]
    assert set(back.column("Sens")) == {"D", "C"}
    fec = write_fec(tmp_path / "b.txt", FecSpec(lines=100, amounts="montant_sens_pm1"))
    assert set(read_back(fec).column("Sens")) == {"+1", "-1"}


def test_header_styles_and_extra_columns(tmp_path: Path) -> None:
    expected = {
        "lower": [c.lower() for c in COLUMNS],
        "upper": [c.upper() for c in COLUMNS],
        "variant": [*COLUMNS[:16], "MontantDevise", "IdDevise"],
    }
    for style, names in expected.items():
        fec = write_fec(tmp_path / f"{style}.txt", FecSpec(lines=20, header_style=style))
        assert read_back(fec).header == names
    fec = write_fec(tmp_path / "extra.txt", FecSpec(lines=300, extra_columns=True))
    back = read_back(fec)
    assert back.header == [*COLUMNS, *EXTRA_COLUMNS]
    assert {"VIR", "CHQ"} <= set(back.column("ModeRglt"))
    assert {value for value in back.column("IdClient") if value} <= set(fec.tiers)


@pytest.mark.parametrize(
    ("encoding", "present", "absent"),
    [
        ("utf-8", "éèàçôœ€", ""),
        ("iso-8859-15", "éèàçôœ€", ""),
        ("cp1252", "éèàçôœ€", ""),
        ("cp850", "éèàçôêÉ", "œ€"),
    ],
)
def test_encodings_round_trip(tmp_path: Path, encoding: str, present: str, absent: str) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=500, encoding=encoding))
    raw = fec.path.read_bytes()
    text = raw.decode(encoding)
    assert text.encode(encoding) == raw
    for char in present:
        assert char.encode(encoding) in raw, char
    for char in absent:
        assert char not in text, char
    if encoding != "utf-8":
        with pytest.raises(UnicodeDecodeError):
            raw.decode("utf-8")
    if encoding == "cp850":
        assert "Oenothèque Bordelaise" in fec.tiers_labels.values()
        assert "Frais de tenue de compte forfait EUR" in text
    recount(fec, read_back(fec))


def test_dates_with_time_and_empty_valid_date(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=100, date_time=True, empty_valid_date=True))
    back = read_back(fec)
    assert all(re.fullmatch(r"\d{8} 00:00:00", d) for d in back.column("EcritureDate") + back.column("PieceDate"))
    assert set(back.column("ValidDate")) == {""}
    plain = read_back(write_fec(tmp_path / "plain.txt", FecSpec(lines=100)))
    assert all(re.fullmatch(r"\d{8}", d) for d in plain.column("ValidDate"))


def test_ecriture_num_zero_and_lowercase_journals(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=400, ecriture_num_zero=True, lowercase_journals=True))
    back = read_back(fec)
    assert set(back.column("EcritureNum")) == {"0"}
    assert set(back.column("JournalCode")) == {"an", "ac", "vt", "bq", "od"} == set(fec.journals)
    assert len(set(zip(back.column("EcritureDate"), back.column("PieceRef"), strict=True))) == fec.entries


@pytest.mark.parametrize("num_zero", [False, True])
def test_one_unbalanced_entry(tmp_path: Path, num_zero: bool) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=400, unbalanced_cents=7, ecriture_num_zero=num_zero))
    back = read_back(fec)
    recount(fec, back)
    off = {key: balance for key, balance in entry_balances(fec, back).items() if balance}
    assert fec.unbalanced_entry is not None
    assert off == {fec.unbalanced_entry: Decimal("0.07")}
    assert fec.total_debit - fec.total_credit == Decimal("0.07")


def test_truncated_line(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=200, truncate_line=50))
    assert fec.truncated_line == 50
    lines = fec.path.read_text(encoding="utf-8").splitlines()
    counts = [len(line.split("\t")) for line in lines]
    assert counts[49] == len(COLUMNS) // 2
    assert set(counts[:49] + counts[50:]) == {len(COLUMNS)}
    back = read_back(fec)
    short = back.rows.pop(48)
    recount(replace(fec, lines=fec.lines - 1), back)  # the truncated line's amounts were never written: in no sum
    assert short[: len(COLUMNS) // 2] == short
    with pytest.raises(ValueError, match="truncate_line"):
        FecSpec(truncate_line=1)


def test_several_fiscal_years(tmp_path: Path) -> None:
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=3000, fiscal_years=3, start=date(2023, 7, 1)))
    back = read_back(fec)
    assert fec.period_start == date(2023, 7, 1)
    assert date(2026, 5, 1) <= fec.period_end <= date(2026, 6, 30)
    openings = sorted(
        {d for j, d in zip(back.column("JournalCode"), back.column("EcritureDate"), strict=True) if j == "AN"}
    )
    assert openings == ["20230701", "20240701", "20250701"]
    years = defaultdict(int)
    for day in back.column("EcritureDate"):
        years[(int(day[:6]) - 202307) // 100] += 1
    assert all(950 <= count <= 1050 for count in years.values()), years
    assert back.column("EcritureDate") == sorted(back.column("EcritureDate"))


def test_large_file_is_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    fec = write_fec(tmp_path / "fec.txt", FecSpec(lines=100_000))
    elapsed = time.perf_counter() - started
    assert fec.lines >= 100_000
    assert fec.total_debit == fec.total_credit
    assert elapsed < 5, elapsed  # ~0.4 s on a 2-core machine; 1,000,000 lines take ~4 s
