"""Recognising uploads by content (pure functions, no infrastructure)."""

from __future__ import annotations

import io
import zipfile

import pytest

from comptaflow.gateway.sniff import FEC, REJECTED, XLS, XLSX, sniff_excel, sniff_fec


def zip_with(first_entry: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(first_entry, "x")
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (zip_with("[Content_Types].xml"), XLSX),
        (zip_with("_rels/.rels"), XLSX),
        (zip_with("docProps/app.xml"), XLSX),
        (zip_with("xl/workbook.xml"), XLSX),
        (zip_with("mimetype"), REJECTED),  # OpenDocument
        (zip_with("word/document.xml"), REJECTED),
        (bytes.fromhex("D0CF11E0A1B11AE1") + b"\x00" * 8, XLS),
        (b"compte;libelle\n411;Clients\n", REJECTED),
        (b"%PDF-1.7", REJECTED),
        (b"PK", REJECTED),
    ],
)
def test_excel_verdicts(head: bytes, verdict: object) -> None:
    assert sniff_excel(head, final=True) == verdict


def test_excel_waits_for_the_first_entry_name() -> None:
    data = zip_with("[Content_Types].xml")
    assert sniff_excel(data[:3], final=False) is None
    assert sniff_excel(data[:35], final=False) is None  # name incomplete
    assert sniff_excel(data[:49], final=False) == XLSX
    assert sniff_excel(b"XL", final=False) == REJECTED  # cannot become a known magic


@pytest.mark.parametrize(
    ("head", "verdict"),
    [
        (b"JournalCode\tJournalLib\n", FEC),
        (b"\xef\xbb\xbfJournalCode|JournalLib\r\n", FEC),
        (b"JOURNALCODE;JOURNALLIB\n", FEC),
        (b'"JournalCode","JournalLib"\n', FEC),
        (b"EcritureDate\tJournalCode\tCompteNum\n", FEC),
        (b"JournalCode\n", REJECTED),  # a single column: no separator
        (b"Journal\tCode\n", REJECTED),
        (b"Date;Compte\nJournalCode;x\n", REJECTED),  # only the first line counts
        ("JournalCode\tJournalLib\n".encode("utf-16"), REJECTED),
        (b"", REJECTED),
    ],
)
def test_fec_verdicts(head: bytes, verdict: object) -> None:
    assert sniff_fec(head, final=True) == verdict


def test_fec_waits_for_the_end_of_the_first_line() -> None:
    assert sniff_fec(b"JournalCode\tJour", final=False) is None
    assert sniff_fec(b"JournalCode\tJour", final=True) == FEC
    assert sniff_fec(b"x" * 70_000, final=False) == REJECTED  # no newline in 64 KiB: judged anyway
