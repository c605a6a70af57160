"""The name an uploaded file is kept under, shown back in `files[].filename`: a display name, never a path.

The `filename` parameter of a part's Content-Disposition is whatever the client chose. The name kept
is, in this order:

    visible        without control characters (C0, DEL, C1), line/paragraph separators, and format
                   characters (Unicode category Cf: the bidi marks, embeddings, overrides and isolates
                   U+200E-200F, U+202A-202E, U+2066-2069, U+061C; the zero-width U+200B-200D, U+2060, U+FEFF;
                   the soft hyphen, tags, …). Controls break log lines and headers; format characters let a
                   name display as another one ("report", U+202E, "xcod.exe" displays as "reportexe.docx").
    NFC            the name typed on macOS (decomposed, NFD) and on Windows is the same string
    a base name    the last `/` or `\\` segment (old browsers send "C:\\Users\\…\\a.xlsx")
    unquoted       stray `"` at either end are dropped: they are what is left of a quoted value whose
                   header was cut by a raw CRLF (see `form_stream`)
    bounded        at most MAX_FILENAME_CHARS characters, the extension kept
    the field name when nothing is left.

Object keys never derive from it (`{tenant}/incoming/{batch_id}/{field}{ext}`, the extension from the
content), so the name is only ever displayed.
"""

from __future__ import annotations

import unicodedata

MAX_FILENAME_CHARS = 255
MAX_EXTENSION_CHARS = 16  # a longer tail after the last dot is part of the name, not an extension
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


def clean_filename(raw: str, fallback: str) -> str:
    """The display name for the (decoded) `filename` parameter of a part; `fallback` when nothing is left."""
    name = "".join(ch for ch in raw if unicodedata.category(ch) not in _INVISIBLE_CATEGORIES)
    name = unicodedata.normalize("NFC", name)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = name.strip().strip('"').strip()
    return _bounded(name) or fallback


def _bounded(name: str) -> str:
    """`name` cut to MAX_FILENAME_CHARS, from the end of the stem so that "….xlsx" stays an .xlsx."""
    if len(name) <= MAX_FILENAME_CHARS:
        return name
    stem, dot, extension = name.rpartition(".")
    if not (dot and stem) or len(extension) >= MAX_EXTENSION_CHARS:
        return name[:MAX_FILENAME_CHARS].rstrip()
    return stem[: MAX_FILENAME_CHARS - len(extension) - 1].rstrip() + "." + extension
