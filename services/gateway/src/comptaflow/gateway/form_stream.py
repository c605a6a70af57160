"""python-multipart's streaming parser, turned into a list of events per chunk.

The parser calls back synchronously, while what we do with a part (write to S3) awaits. So each
chunk is fed to the parser, its callbacks are collected as events, and the caller handles them in
order with awaits before feeding the next chunk: at most one chunk of data is held at a time.

    PartHeaders(headers)   a part starts; its headers, names lower-cased
    bytes                  a piece of the current part's content (never empty)
    PART_END               the current part is complete
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser


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
            self._parser = MultipartParser(boundary, callbacks)  # type: ignore[arg-type]  # a dict of the TypedDict's keys
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
        self._headers[self._field.decode("latin-1").strip().lower()] = self._value.decode("latin-1").strip()
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
