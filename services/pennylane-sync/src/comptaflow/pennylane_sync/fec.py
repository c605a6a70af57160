"""Reading the FEC file of a Pennylane export (`/exports/fecs`) into rows of the `fec` table.

A FEC (article A47 A-1 of the Livre des procédures fiscales) is a text file with a header line naming
its 18 fields, separated by tabs or pipes. Each row becomes an item keyed by the regulatory field names,
values kept exactly as written (the schema's typed columns read dates `YYYYMMDD` and amounts with a
decimal comma). A file that is not that is refused with the line at fault, nothing stored.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator

from comptaflow.common.fec import FIELDS
from comptaflow.pennylane_sync.writer import BadItem

_CANONICAL = {name.lower(): name for name in FIELDS}


def _text(data: bytes) -> str:
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1")


def rows(data: bytes) -> Iterator[tuple[int, dict[str, str]]]:
    """`(line number, item)` for each entry line of the file (the header is line 1)."""
    text = _text(data)
    first, _, _ = text.partition("\n")
    separator = "\t" if first.count("\t") >= first.count("|") else "|"
    reader = csv.reader(io.StringIO(text), delimiter=separator, quoting=csv.QUOTE_NONE, strict=False)
    header = next(reader, None)
    if header is None:
        raise BadItem("the FEC export is empty")
    names = [_CANONICAL.get(h.strip().lower()) for h in header]
    missing = [f for f in FIELDS if f not in names]
    if missing:
        raise BadItem(f"the FEC export's header lacks {', '.join(missing)}")
    for line_no, values in enumerate(reader, start=2):
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        if len(values) != len(names):
            raise BadItem(f"line {line_no} of the FEC export has {len(values)} fields, its header {len(names)}")
        yield line_no, {name: value for name, value in zip(names, values, strict=True) if name is not None}
