"""Turning the bytes of a FEC into UTF-8 text lines, honestly.

Line endings: LF, CRLF, CR CR LF (a CRLF file that went through a second CR→CRLF conversion) and bare
CR are all folded to LF before anything else.

Encodings: a UTF-8 BOM means UTF-8. Otherwise the file is UTF-8 if it decodes as UTF-8. If it does not,
it is a single-byte French code page, and the bytes above 127 decide which one:

- a file that is mostly valid UTF-8 with a few broken sequences is a damaged UTF-8 file: `FEC_FORMAT`
  at the first line that cannot be read, rather than a guess that would turn every accent into mojibake;
- ISO-8859-15 has no printable characters in 0x80-0x9F (C1 controls), Windows-1252 has (`€`, `œ`, `\u2019`...),
  CP850 (the DOS code page) puts its accented letters there (`é` = 0x82, `à` = 0x85…) and box drawing
  characters in 0xB0-0xDF;
- each candidate that decodes every byte is scored by how many of the decoded characters are letters
  and symbols of French accounting text; a candidate that would produce control or box-drawing
  characters is out. The best one wins; when no candidate yields plausible text the file is refused
  (`FEC_FORMAT`, with the first line holding an implausible byte).

Characters are never replaced: a byte that the chosen encoding cannot decode is an error with its line.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

UTF8_BOM = b"\xef\xbb\xbf"
_ASCII = bytes(range(128))
# What a French ledger's non-ASCII characters look like.
_FRENCH = frozenset("àâäçéèêëîïôöùûüÿæœÀÂÄÇÉÈÊËÎÏÔÖÙÛÜŸÆŒ€°²³µ§£«»…—·÷" + "\u2018\u2019\u201c\u201d\u2013\u00d7\u00a0")
_CANDIDATES = ("iso-8859-15", "cp1252", "cp850")
NAMES = {"utf-8": "UTF-8", "iso-8859-15": "ISO-8859-15", "cp1252": "Windows-1252", "cp850": "CP850"}


class Unreadable(Exception):
    """The file cannot be read as text; `line` is the 1-based line of the first unreadable byte."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True, slots=True)
class Decoded:
    data: bytes  # UTF-8, LF line endings, no BOM
    encoding: str  # display name
    line_endings: str  # "LF", "CRLF", "CR CR LF", "CR" or "mixed"
    bom: bool
    note: str | None = None  # e.g. that two code pages decode this file identically


def line_of(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def normalise_line_endings(raw: bytes) -> tuple[bytes, str]:
    if b"\r" not in raw:
        return raw, "LF"
    crcrlf = raw.count(b"\r\r\n")
    crlf = raw.count(b"\r\n") - crcrlf
    lf = raw.count(b"\n") - crlf - crcrlf
    if crcrlf:
        raw = raw.replace(b"\r\r\n", b"\n")
    if crlf:
        raw = raw.replace(b"\r\n", b"\n")
    if b"\n" not in raw:
        return raw.replace(b"\r", b"\n"), "CR"
    kinds = [name for name, count in (("CR CR LF", crcrlf), ("CRLF", crlf), ("LF", lf)) if count]
    # A bare CR left inside a line is whitespace of a field; fields are stripped later.
    return raw, kinds[0] if len(kinds) == 1 else "mixed (" + ", ".join(kinds) + ")"


def _plausible(char: str) -> bool:
    if char in _FRENCH:
        return True
    category = unicodedata.category(char)
    return category[0] in "LN" or category in ("Sc", "Sm", "Pd", "Pi", "Pf", "Po", "Ps", "Pe", "Zs", "So")


def _box_or_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Co", "Cn") or "\u2500" <= char <= "\u259f"


def _single_byte(raw: bytes) -> tuple[str, str | None]:
    """Choose among the single-byte code pages; raises Unreadable."""
    high = raw.translate(None, _ASCII)
    counts = {byte: high.count(bytes([byte])) for byte in set(high)}
    scored: list[tuple[int, str, str]] = []
    for candidate in _CANDIDATES:
        try:
            chars = {byte: bytes([byte]).decode(candidate) for byte in counts}
        except UnicodeDecodeError:
            continue
        if any(_box_or_control(char) for char in chars.values()):
            continue
        if not all(_plausible(char) for char in chars.values()):
            continue
        score = sum(count for byte, count in counts.items() if chars[byte] in _FRENCH)
        scored.append((score, candidate, "".join(sorted(chars.values()))))
    if not scored:
        first = min(raw.find(bytes([byte])) for byte in counts)
        raise Unreadable(
            "the file is neither UTF-8 nor text in a French code page (ISO-8859-15, Windows-1252, CP850):"
            f" byte 0x{raw[first]:02X} makes no sense in any of them",
            line_of(raw, first),
        )
    scored.sort(key=lambda item: -item[0])
    _, best, best_chars = scored[0]
    twins = [NAMES[name] for score, name, chars in scored[1:] if chars == best_chars]
    note = f"decodes identically as {', '.join(twins)}" if twins else None
    return best, note


def decode(raw: bytes, *, trust_utf8: bool = False) -> Decoded:
    """Return the file as UTF-8 with LF line endings; raises Unreadable.

    With `trust_utf8`, a file without BOM is handed on as UTF-8 without decoding it here: the CSV reader
    validates UTF-8 anyway, and the caller comes back without the flag when it does not hold.
    """
    bom = raw.startswith(UTF8_BOM)
    if bom:
        raw = raw[len(UTF8_BOM) :]
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise Unreadable("the file is UTF-16: export the FEC as UTF-8 or a French code page", 1)
    raw, endings = normalise_line_endings(raw)
    if trust_utf8 and not bom:
        return Decoded(raw, NAMES["utf-8"], endings, bom)
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        if bom:
            raise Unreadable(
                f"the file starts with a UTF-8 BOM but byte 0x{raw[exc.start]:02X} is not UTF-8",
                line_of(raw, exc.start),
            ) from exc
        if _mostly_utf8(raw):
            raise Unreadable(
                f"the file is UTF-8 but byte 0x{raw[exc.start]:02X} cannot be decoded", line_of(raw, exc.start)
            ) from exc
        encoding, note = _single_byte(raw)
        text = raw.decode(encoding)  # every byte was checked above: strict cannot fail
        return Decoded(text.encode("utf-8"), NAMES[encoding], endings, bom, note)
    return Decoded(raw, NAMES["utf-8"], endings, bom)


def _mostly_utf8(raw: bytes) -> bool:
    """Whether the non-ASCII bytes hold more valid UTF-8 sequences than bad ones (a damaged UTF-8 file)."""
    decoded = raw.translate(None, _ASCII).decode("utf-8", errors="replace")
    bad = decoded.count("\ufffd")
    return len(decoded) - bad > bad
