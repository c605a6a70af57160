"""Streaming `multipart/form-data` → S3 for a batch upload (docs/api.md, Upload and Upload refusals).

The body is never held whole: the request chunks are fed to python-multipart's streaming parser
(`form_stream`) as they arrive, and each file part goes straight into an S3 `ObjectWriter` (8 MiB parts, size and sha256
computed on the way) under `{tenant}/incoming/{batch_id}/{field}{ext}`. Only the first bytes of each
file are held back until `sniff` has recognised its kind.

The first problem stops the upload with an `UploadRejected` (a 422 for the client), or an
`UploadTimedOut` (a 408) when the body stops arriving for `idle_s` between two chunks, after everything
written so far has been aborted or deleted: a refused upload stores nothing.

    BAD_MULTIPART     the body is not well-formed multipart (no boundary, a part without a name, truncated)
    UNKNOWN_FIELD     a field that is neither a batch file nor an option
    DUPLICATE_FIELD   the same field twice
    MIXED_FIELDS      `fec` together with Excel fields
    MISSING_FILE      not the five Excel files nor one FEC (details.missing), or no multipart body at all
    EMPTY_FILE        a file of zero bytes
    NOT_EXCEL         an Excel field whose content is neither OOXML (.xlsx) nor OLE2 (.xls)
    NOT_FEC           a `fec` field whose first line is not a FEC header
    FILE_TOO_LARGE    a file over COMPTAFLOW_MAX_UPLOAD_MB (reading stops at once), or a declared
                      Content-Length no valid upload can reach
    INVALID_FIELD     a bad `auto_load`, `period_start` or `period_end` value
    UPLOAD_TIMEOUT    (408) no byte of the body for COMPTAFLOW_UPLOAD_IDLE_S: a stalled client would
                      otherwise hold its connection, its slot and an open S3 multipart upload forever
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

import structlog
from python_multipart.multipart import parse_options_header

from comptaflow.common.batches import BatchFile
from comptaflow.common.contracts import BatchKind
from comptaflow.common.layout import incoming_prefix
from comptaflow.common.storage import ObjectWriter, Storage
from comptaflow.gateway.errors import Refusal
from comptaflow.gateway.filename import clean_filename
from comptaflow.gateway.form_stream import FormEvent, FormStream, MalformedForm, PartHeaders
from comptaflow.gateway.sniff import Verdict, sniff_excel, sniff_fec

log = structlog.get_logger("comptaflow.gateway.upload")

EXCEL_FIELDS = ("grand_livre_comptes", "grand_livre_tiers", "plan_comptes", "plan_tiers", "code_journal")
FEC_FIELD = "fec"
FILE_FIELDS = (*EXCEL_FIELDS, FEC_FIELD)
TEXT_FIELDS = ("auto_load", "period_start", "period_end")
ALL_FIELDS = (*FILE_FIELDS, *TEXT_FIELDS)

MAX_TEXT_BYTES = 1024
MULTIPART_OVERHEAD = 1024 * 1024  # part headers, boundaries and option fields, generously
MAX_FILES_IN_BODY = 6  # five Excel files, plus room for one more to be reported as duplicated/mixed
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


class UploadRejected(Refusal):
    """The upload is refused (422); nothing of it is stored."""


class UploadTimedOut(Refusal):
    """The body stopped arriving (408); nothing of it is stored."""


@dataclass(frozen=True, slots=True)
class ReceivedBatch:
    kind: BatchKind
    files: tuple[BatchFile, ...]
    auto_load: bool
    options: dict[str, Any]

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)


def body_limit(max_file_bytes: int) -> int:
    """The largest body a valid upload can have."""
    return MAX_FILES_IN_BODY * max_file_bytes + MULTIPART_OVERHEAD


def boundary_of(content_type: str | None) -> bytes:
    media_type, params = parse_options_header(content_type)
    if media_type != b"multipart/form-data":
        # No file can travel in any other body (a form without files is sent url-encoded).
        raise UploadRejected(
            "MISSING_FILE",
            "send the files as multipart/form-data: the five Excel files or one FEC file",
            {"missing": list(EXCEL_FIELDS), "content_type": (content_type or "")[:100]},
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise UploadRejected("BAD_MULTIPART", "the multipart/form-data content type has no boundary")
    return boundary


def check_content_length(content_length: str | None, max_file_bytes: int) -> None:
    """Refuse before reading a body whose declared length no valid upload can reach."""
    if content_length is None or not content_length.strip().isdigit():
        return
    if int(content_length) > body_limit(max_file_bytes):
        raise UploadRejected(
            "FILE_TOO_LARGE",
            "the request body is larger than any valid upload",
            {"limit_bytes": max_file_bytes, "content_length": int(content_length)},
        )


# -- parts -------------------------------------------------------------------------------------------


class Sniffer(Protocol):
    def __call__(self, head: bytes, *, final: bool) -> Verdict | None: ...


@dataclass(slots=True)
class _FilePart:
    name: str
    filename: str
    sniffer: Sniffer
    head: bytearray = field(default_factory=bytearray)
    next_sniff_at: int = 64  # doubles, so a trickled head costs O(log n) sniffs, not O(n)
    writer: ObjectWriter | None = None
    size: int = 0

    @property
    def not_kind_code(self) -> str:
        return "NOT_FEC" if self.name == FEC_FIELD else "NOT_EXCEL"


@dataclass(slots=True)
class _TextPart:
    name: str
    value: bytearray = field(default_factory=bytearray)


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


class BatchReceiver:
    """Receives one batch upload; `receive()` either returns every file stored or stores nothing."""

    def __init__(
        self,
        storage: Storage,
        *,
        tenant_id: str,
        batch_id: uuid.UUID,
        boundary: bytes,
        max_file_bytes: int,
        idle_s: float,
    ) -> None:
        self._storage = storage
        self._prefix = incoming_prefix(tenant_id, batch_id)
        self._max_file_bytes = max_file_bytes
        self._idle_s = idle_s
        self._max_body = body_limit(max_file_bytes)
        try:
            self._form = FormStream(boundary)
        except MalformedForm as exc:
            raise UploadRejected("BAD_MULTIPART", str(exc)) from exc
        self._part: _FilePart | _TextPart | None = None
        self._seen: set[str] = set()
        self._files: dict[str, BatchFile] = {}
        self._texts: dict[str, str] = {}
        self._keys: list[str] = []  # every key a writer was opened for, completed or not
        self._open_writer: ObjectWriter | None = None

    async def receive(self, chunks: AsyncIterator[bytes]) -> ReceivedBatch:
        try:
            received = 0
            while (chunk := await self._next_chunk(chunks, received)) is not None:
                if not chunk:
                    continue
                received += len(chunk)
                if received > self._max_body:
                    raise UploadRejected(
                        "FILE_TOO_LARGE",
                        "the request body is larger than any valid upload",
                        {"limit_bytes": self._max_file_bytes},
                    )
                try:
                    events = self._form.feed(chunk)
                except MalformedForm as exc:
                    raise UploadRejected("BAD_MULTIPART", str(exc)) from exc
                for event in events:
                    await self._handle(event)
            if not self._form.finished:
                if received == 0:
                    raise UploadRejected("MISSING_FILE", "the body is empty", {"missing": list(EXCEL_FIELDS)})
                raise UploadRejected("BAD_MULTIPART", "the multipart body ended before its closing boundary")
            return self._result()
        except BaseException:
            await self.discard()
            raise

    async def _next_chunk(self, chunks: AsyncIterator[bytes], received: int) -> bytes | None:
        """The next piece of the body (None at its end), waited for at most `idle_s`.

        Only the wait for the client is timed, not the time spent storing what it sent: the limit is on
        idleness, so a large upload on a slow but steady link is never cut.
        """
        try:
            async with asyncio.timeout(self._idle_s):
                return await anext(chunks)
        except StopAsyncIteration:
            return None
        except TimeoutError:
            raise UploadTimedOut(
                "UPLOAD_TIMEOUT",
                f"the request body stopped arriving: nothing received for {self._idle_s:g} s (the upload idle limit)",
                {"idle_limit_s": self._idle_s, "received_bytes": received},
            ) from None

    async def discard(self) -> None:
        """Abort the file being written and delete those already stored (best effort, idempotent)."""
        if self._open_writer is not None:
            await self._open_writer.abort()
            self._open_writer = None
        if self._keys:
            keys, self._keys = self._keys, []
            try:
                await self._storage.delete_keys(keys)
            except Exception as exc:  # the caller's own error matters more; these objects are orphans now
                log.error("upload_cleanup_failed", keys=keys, error=type(exc).__name__)

    # -- events ------------------------------------------------------------------------------------
    async def _handle(self, event: FormEvent) -> None:
        if isinstance(event, PartHeaders):
            self._begin_part(event.headers)
        elif isinstance(event, bytes):
            await self._part_data(event)
        else:
            await self._end_part()

    def _begin_part(self, headers: dict[str, str]) -> None:
        disposition, params = parse_options_header(headers.get("content-disposition"))
        raw_name = params.get(b"name")
        if disposition != b"form-data" or raw_name is None:
            raise UploadRejected("BAD_MULTIPART", "a part has no form-data name")
        name = _text(raw_name)
        if name in self._seen:
            raise UploadRejected("DUPLICATE_FIELD", f"the field {name!r} is sent more than once", {"field": name})
        self._seen.add(name)
        if name in FILE_FIELDS:
            self._check_not_mixed(name)
            sniffer = sniff_fec if name == FEC_FIELD else sniff_excel
            raw_filename = params.get(b"filename")
            filename = clean_filename(_text(raw_filename) if raw_filename else "", name)
            self._part = _FilePart(name, filename, sniffer)
        elif name in TEXT_FIELDS:
            self._part = _TextPart(name)
        else:
            raise UploadRejected(
                "UNKNOWN_FIELD", f"unknown field {name[:100]!r}", {"field": name[:100], "allowed": list(ALL_FIELDS)}
            )

    def _check_not_mixed(self, name: str) -> None:
        other = set(EXCEL_FIELDS) if name == FEC_FIELD else {FEC_FIELD}
        if self._seen & other:
            raise UploadRejected(
                "MIXED_FIELDS",
                "send either the five Excel files or one FEC file, not both",
                {"fields": sorted(self._seen & set(FILE_FIELDS))},
            )

    async def _part_data(self, data: bytes) -> None:
        part = self._part
        if isinstance(part, _TextPart):
            part.value += data
            if len(part.value) > MAX_TEXT_BYTES:
                raise UploadRejected("INVALID_FIELD", f"the field {part.name!r} is too long", {"field": part.name})
            return
        assert part is not None
        part.size += len(data)
        if part.size > self._max_file_bytes:
            raise UploadRejected(
                "FILE_TOO_LARGE",
                f"the file {part.filename!r} is larger than {self._max_file_bytes} bytes",
                {"field": part.name, "filename": part.filename, "limit_bytes": self._max_file_bytes},
            )
        if part.writer is not None:
            await part.writer.write(data)
            return
        part.head += data
        if len(part.head) >= part.next_sniff_at:
            part.next_sniff_at = len(part.head) * 2
            verdict = part.sniffer(bytes(part.head), final=False)
            if verdict is not None:
                await self._start_writing(part, verdict)

    async def _start_writing(self, part: _FilePart, verdict: Verdict) -> None:
        if not verdict.ok:
            kind = "a FEC file" if part.name == FEC_FIELD else "an Excel workbook (.xlsx or .xls)"
            raise UploadRejected(
                part.not_kind_code,
                f"the file {part.filename!r} is not {kind}",
                {"field": part.name, "filename": part.filename},
            )
        key = f"{self._prefix}{part.name}{verdict.extension}"
        part.writer = self._storage.writer(key, content_type=verdict.content_type)
        self._open_writer = part.writer
        self._keys.append(key)
        head, part.head = bytes(part.head), bytearray()
        await part.writer.write(head)

    async def _end_part(self) -> None:
        part, self._part = self._part, None
        if isinstance(part, _TextPart):
            self._texts[part.name] = self._check_text(part.name, _text(bytes(part.value)).strip())
            return
        assert part is not None
        if part.size == 0:
            raise UploadRejected(
                "EMPTY_FILE", f"the file {part.filename!r} is empty", {"field": part.name, "filename": part.filename}
            )
        if part.writer is None:
            verdict = part.sniffer(bytes(part.head), final=True)
            assert verdict is not None
            await self._start_writing(part, verdict)
        assert part.writer is not None
        stored = await part.writer.complete()
        self._open_writer = None
        self._files[part.name] = BatchFile(part.name, part.filename, stored.size, stored.sha256, stored.key)

    @staticmethod
    def _check_text(name: str, value: str) -> str:
        if name == "auto_load":
            if value.lower() not in ("true", "false"):
                raise UploadRejected("INVALID_FIELD", "auto_load must be true or false", {"field": name})
            return value.lower()
        invalid = UploadRejected("INVALID_FIELD", f"{name} must be a date YYYY-MM-DD", {"field": name})
        if not _ISO_DATE.fullmatch(value):
            raise invalid
        try:
            return date.fromisoformat(value).isoformat()
        except ValueError:
            raise invalid from None

    # -- the end ---------------------------------------------------------------------------------------
    def _result(self) -> ReceivedBatch:
        if FEC_FIELD in self._files:
            kind = BatchKind.FEC
        else:
            missing = [name for name in EXCEL_FIELDS if name not in self._files]
            if missing:
                message = (
                    "send the five Excel files or one FEC file"
                    if len(missing) == len(EXCEL_FIELDS)
                    else "missing Excel file(s): " + ", ".join(missing)
                )
                raise UploadRejected("MISSING_FILE", message, {"missing": missing})
            kind = BatchKind.EXCEL
        options: dict[str, Any] = {}
        period: dict[str, str] = {n: self._texts[n] for n in ("period_start", "period_end") if n in self._texts}
        if period:
            if kind is not BatchKind.FEC:
                raise UploadRejected(
                    "INVALID_FIELD", "period_start/period_end only apply to a FEC batch", {"field": sorted(period)[0]}
                )
            if len(period) != 2:
                missing_bound = "period_end" if "period_start" in period else "period_start"
                raise UploadRejected(
                    "INVALID_FIELD", "give both period_start and period_end, or neither", {"field": missing_bound}
                )
            if period["period_start"] > period["period_end"]:
                raise UploadRejected("INVALID_FIELD", "period_start is after period_end", {"field": "period_start"})
            options.update(period)
        files = tuple(self._files[name] for name in FILE_FIELDS if name in self._files)
        return ReceivedBatch(kind, files, self._texts.get("auto_load") == "true", options)
