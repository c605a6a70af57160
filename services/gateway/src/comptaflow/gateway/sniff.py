"""Recognise an upload by its first bytes, not by its name (docs/api.md, Upload: "recognised by their content").

    Excel  .xlsx  a ZIP (`PK\\x03\\x04`) whose first entry belongs to an OOXML package
                  (`[Content_Types].xml`, `_rels/…`, `docProps/…`, `xl/…`)
           .xls   an OLE2 compound document (`D0 CF 11 E0 A1 B1 1A E1`)
    FEC           text whose first line (after an optional UTF-8 BOM) has a `JournalCode` column,
                  separated by tab, `|`, `;` or `,`

Each sniffer looks at the head of a file seen so far and answers a `Verdict`, or None while it needs
more bytes (`final=True` means the file has ended: the answer is then definite).
"""

from __future__ import annotations

from dataclasses import dataclass

ZIP_MAGIC = b"PK\x03\x04"
OLE2_MAGIC = bytes.fromhex("D0CF11E0A1B11AE1")
UTF8_BOM = b"\xef\xbb\xbf"
_ZIP_HEADER_LEN = 30  # fixed part of a ZIP local file header; the entry name follows it
_OOXML_FIRST_ENTRIES = ("[Content_Types].xml", "_rels/", "docProps/", "xl/")
FEC_SEPARATORS = ("\t", "|", ";", ",")
FEC_HEAD_LIMIT = 64 * 1024  # a FEC header line is ~250 bytes; past this without a newline, judge what we have


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    extension: str = ""
    content_type: str = "application/octet-stream"


XLSX = Verdict(True, ".xlsx", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
XLS = Verdict(True, ".xls", "application/vnd.ms-excel")
FEC = Verdict(True, ".txt", "text/plain")
REJECTED = Verdict(False)


def sniff_excel(head: bytes, *, final: bool) -> Verdict | None:
    if head.startswith(OLE2_MAGIC):
        return XLS
    if head.startswith(ZIP_MAGIC):
        if len(head) < _ZIP_HEADER_LEN:
            return REJECTED if final else None
        name_len = int.from_bytes(head[26:28], "little")
        end = _ZIP_HEADER_LEN + name_len
        if len(head) < end:
            return REJECTED if final else None
        name = head[_ZIP_HEADER_LEN:end].decode("utf-8", errors="replace")
        return XLSX if name == _OOXML_FIRST_ENTRIES[0] or name.startswith(_OOXML_FIRST_ENTRIES[1:]) else REJECTED
    could_still_match = ZIP_MAGIC.startswith(head) or OLE2_MAGIC.startswith(head)
    return None if could_still_match and not final else REJECTED


def sniff_fec(head: bytes, *, final: bool) -> Verdict | None:
    newline = head.find(b"\n")
    if newline < 0 and not final and len(head) < FEC_HEAD_LIMIT:
        return None
    line = head[:newline] if newline >= 0 else head[:FEC_HEAD_LIMIT]
    line = line.removeprefix(UTF8_BOM).rstrip(b"\r")
    if b"\x00" in line:  # binary, or UTF-16: not a FEC the validator could read
        return REJECTED
    header = line.decode("latin-1").lower()  # the header is ASCII; latin-1 never fails to decode
    for separator in FEC_SEPARATORS:
        columns = [column.strip().strip('"').strip() for column in header.split(separator)]
        if len(columns) > 1 and "journalcode" in columns:
            return FEC
    return REJECTED
