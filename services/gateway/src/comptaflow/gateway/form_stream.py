"""python-multipart's streaming parser, turned into a list of events per chunk.

The parser calls back synchronously, while what we do with a part (write to S3) awaits. So each
chunk is fed to the parser, its callbacks are collected as events, and the caller handles them in
order with awaits before feeding the next chunk: at most one chunk of data is held at a time.

    PartHeaders(headers)   a part starts; its headers, names lower-cased
    bytes                  a piece of the current part's content (never empty)
    PART_END               the current part is complete

A part header ends at the first CR, even inside a quoted parameter: a raw CRLF in a filename cuts the
Content-Disposition there (`filename="a.xlsx`, its closing quote lost, which `filename` then cleans) and
what follows is parsed as another header of the part, or is malformed. A part that so repeats a header
(a second Content-Disposition, which would otherwise silently replace the first) is malformed too.
A header line may be up to MAX_PART_HEADER_BYTES long: a 5,000-character file name fits (and is then
shortened by `filename`), where python-multipart's default (4 KiB) refused it as a malformed body.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser

MAX_PART_HEADER_BYTES = 32 * 1024  # 5,000 characters of 4 UTF-8 bytes each, and their parameter syntax


class MalformedForm(Exception):
    """The body is not well-formed multipart."""


@dataclass(frozen=True, slots=True)
class PartHeaders:
    headers: dict[str, str]


class _PartEnd:
    def __repr__(self) -> str:
        return "PART_END"


PART_END = _PartEnd()
FormEvent = PartHeaders | bytes | _PartEnd


class FormStream:
    def __init__(self, boundary: bytes) -> None:
        self.finished = False  # the closing boundary was seen
        self._events: list[FormEvent] = []
        self._headers: dict[str, str] = {}
        self._field = bytearray()
        self._value = bytearray()
        callbacks: dict[str, Callable[..., None]] = {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_header_field,
            "on_header_value": self._on_header_value,
            "on_header_end": self._on_header_end,
            "on_headers_finished": self._on_headers_finished,
            "on_part_data": self._on_part_data,
            "on_part_end": self._on_part_end,
            "on_end": self._on_end,
        }
        try:
            self._parser = MultipartParser(
                boundary,
                callbacks,  # type: ignore[arg-type]  # a dict of the TypedDict's keys
                max_header_size=MAX_PART_HEADER_BYTES,
            )
        except FormParserError as exc:
            raise MalformedForm("the multipart boundary is not usable") from exc

    def feed(self, chunk: bytes) -> list[FormEvent]:
        """Parse one chunk of the body; return the events it completed, in order."""
        try:
            self._parser.write(chunk)
        except FormParserError as exc:
            raise MalformedForm("the multipart body is malformed") from exc
        events, self._events = self._events, []
        return events

    def _on_part_begin(self) -> None:
        self._headers = {}

    def _on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        name = self._field.decode("latin-1").strip().lower()
        if name in self._headers:  # raised through the parser's `write`, out of `feed`
            raise MalformedForm(f"a part has the header {name[:100]!r} more than once")
        self._headers[name] = self._value.decode("latin-1").strip()
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        self._events.append(PartHeaders(self._headers))

    def _on_part_data(self, data: bytes, start: int, end: int) -> None:
        if end > start:
            self._events.append(data[start:end])

    def _on_part_end(self) -> None:
        self._events.append(PART_END)

    def _on_end(self) -> None:
        self.finished = True
