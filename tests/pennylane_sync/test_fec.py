"""Reading a Pennylane FEC export: its 18 fields by name, tab or pipe, values kept as written."""

from __future__ import annotations

from pathlib import Path

import pytest

from comptaflow.pennylane_sync import fec
from comptaflow.pennylane_sync.writer import BadItem

HEADER = "\t".join(fec.FIELDS)
ENTRY = ("VE", "Ventes", "VE1", "20240131", "411000", "Clients", "C001", "Dupont", "F1", "20240131", "Facture F1")
LINE = "\t".join((*ENTRY, "1 200,50", "0,00", "", "", "20240201", "", ""))


def test_rows_are_keyed_by_the_regulatory_names_with_their_line_numbers() -> None:
    data = f"{HEADER}\n{LINE}\n\n{LINE}\n".encode()
    rows = list(fec.rows(data))
    assert [n for n, _ in rows] == [2, 4]
    item = rows[0][1]
    assert list(item) == list(fec.FIELDS)
    assert item["Debit"] == "1 200,50"
    assert item["EcritureDate"] == "20240131"
    assert item["Idevise"] == ""


def test_pipes_cp1252_and_a_header_in_another_case_are_read() -> None:
    header = "|".join(name.upper() for name in fec.FIELDS)
    line = LINE.replace("\t", "|").replace("Dupont", "Société Générale")
    rows = list(fec.rows(f"{header}\r\n{line}\r\n".encode("cp1252")))
    assert rows[0][1]["CompAuxLib"] == "Société Générale"
    assert rows[0][1]["Idevise"] == ""


def test_a_file_that_is_not_a_fec_is_refused_with_what_is_wrong() -> None:
    with pytest.raises(BadItem, match="empty"):
        list(fec.rows(b""))
    with pytest.raises(BadItem, match="lacks Idevise"):
        list(fec.rows("\t".join(fec.FIELDS[:-1]).encode()))
    with pytest.raises(BadItem, match=r"line 2 .* 3 fields"):
        list(fec.rows(f"{HEADER}\na\tb\tc\n".encode()))


def test_the_real_fec_files_of_the_fixtures_are_read_whole() -> None:
    folder = Path(__file__).parents[1] / "fixtures" / "fec"
    files = sorted(folder.glob("*FEC*.txt"))
    assert files
    for path in files:
        data = path.read_bytes()
        lines = [line for line in data.splitlines()[1:] if line.strip()]
        rows = list(fec.rows(data))
        assert len(rows) == len(lines), path.name
        assert all(set(item) == set(fec.FIELDS) for _, item in rows)
