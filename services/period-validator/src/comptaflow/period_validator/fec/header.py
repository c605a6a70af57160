"""The FEC header line: separator, quoting, trailing separator and the columns (article A47 A-1 LPF).

18 columns in the order of the law — or the variant with `Montant` and `Sens` in place of `Debit` and
`Credit` — optionally followed by the four BNC/BA columns `DateRglt`, `ModeRglt`, `NatOp`, `IdClient`.
Names match case-insensitively, surrounding spaces and quotes ignored; `IdDevise` is read as `Idevise`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from comptaflow.common.fec import EXTRA as FEC_EXTRA
from comptaflow.common.fec import FIELDS

SEPARATORS: Final = ("\t", "|", ";", ",")
SEPARATOR_NAMES: Final = {"\t": "TAB", "|": "|", ";": ";", ",": ","}

# Canonical names, in order; the key is the column's name in our frames.
STANDARD: Final = FIELDS
MONTANT_SENS: Final = (*STANDARD[:11], "Montant", "Sens", *STANDARD[13:])
EXTRA: Final = FEC_EXTRA
_ALIASES: Final = {"iddevise": "idevise"}


class ColumnsProblem(Exception):
    def __init__(self, message: str, details: dict[str, object], *, not_fec: bool = False) -> None:
        super().__init__(message)
        self.details = details
        self.not_fec = not_fec  # no FEC header at all, rather than a FEC header with wrong columns


@dataclass(frozen=True, slots=True)
class Layout:
    separator: str
    quoted: bool
    columns: tuple[str, ...]  # canonical names, in file order
    header_trailing: bool  # the header line ends with a separator

    @property
    def montant_sens(self) -> bool:
        return "Montant" in self.columns

    @property
    def width(self) -> int:
        return len(self.columns)


def _fold(name: str) -> str:
    folded = name.strip().strip('"').strip().lower()
    return _ALIASES.get(folded, folded)


def _split(line: str, separator: str, quoted: bool) -> list[str]:
    if not quoted:
        return line.split(separator)
    # A header never holds a quoted separator; stripping the quotes per name is enough.
    return [name.strip().strip('"') for name in line.split(separator)]


MAX_HEADER_CHARS = 4096
"""The longest header the standard allows is 22 short names; a longer first line is not a FEC header."""


def too_long(first_line: bytes | str) -> ColumnsProblem | None:
    """The refusal of a first line too long to be a header (checked before it is decoded), else None."""
    length = len(first_line.rstrip(b"\r\n") if isinstance(first_line, bytes) else first_line.rstrip("\r\n"))
    if length <= MAX_HEADER_CHARS:
        return None
    return ColumnsProblem(
        f"the first line is {len(first_line):,} {'bytes' if isinstance(first_line, bytes) else 'characters'} long: "
        f"not a FEC header (at most {MAX_HEADER_CHARS:,} characters)",
        {"length": len(first_line)},
        not_fec=True,
    )


def read_header(line: str) -> Layout:
    """Parse the first line (already decoded, BOM removed); raises ColumnsProblem."""
    line = line.rstrip("\r\n")
    if (problem := too_long(line)) is not None:
        raise problem
    best: tuple[int, str] | None = None
    for separator in SEPARATORS:
        names = [_fold(name) for name in line.split(separator)]
        if "journalcode" in names and (best is None or len(names) > best[0]):
            best = (len(names), separator)
    if best is None:
        raise ColumnsProblem(
            "the first line is not a FEC header: no JournalCode column with a TAB, |, ; or , separator",
            {"header": line[:300]},
            not_fec=True,
        )
    separator = best[1]
    quoted = separator == "," or line.lstrip().startswith('"')
    names = [_fold(name) for name in _split(line, separator, quoted)]
    trailing = len(names) > 1 and names[-1] == ""
    if trailing:
        names = names[:-1]
    for reference in (STANDARD, MONTANT_SENS):
        expected = [name.lower() for name in reference]
        if names[:18] == expected:
            extra = names[18:]
            known = [name.lower() for name in EXTRA]
            if extra and extra != known:
                raise ColumnsProblem(
                    f"after the 18 columns of the FEC only {', '.join(EXTRA)} may follow (found {', '.join(extra)})",
                    {"expected": [*reference, *EXTRA], "found": names},
                )
            return Layout(separator, quoted, (*reference, *(EXTRA if extra else ())), trailing)
    canonical = [name.lower() for name in STANDARD]
    variant = [name.lower() for name in MONTANT_SENS]
    reference_names = MONTANT_SENS if "sens" in names else STANDARD
    wanted = variant if "sens" in names else canonical
    missing = [reference_names[i] for i, name in enumerate(wanted) if name not in names]
    if missing:
        message = f"the header lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}"
    else:
        position = next(i for i, name in enumerate(wanted) if i >= len(names) or names[i] != name)
        message = (
            f"the columns are not in the order of article A47 A-1: column {position + 1} should be"
            f" {reference_names[position]}, found {names[position] if position < len(names) else 'nothing'}"
        )
    raise ColumnsProblem(message, {"expected": list(reference_names), "found": names, "missing": missing})
