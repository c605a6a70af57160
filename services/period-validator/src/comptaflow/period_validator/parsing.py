"""What runs inside the parsing child (`comptaflow.common.sandbox`): validate a batch's files, stage its tables.

`validate_files` is the only entry point the validator calls there. It reads and checks the files (Excel or
FEC), then, when the batch is valid, writes each normalised table insert-ready (`encode_staged`) as a Parquet
file in `out_dir`. It returns plain JSON — findings, period, statistics, the staged file names — so no frame is
ever pickled or copied through a pipe: the parent uploads the files as they are.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any, Final

import polars as pl

from comptaflow.common import layout as shared_layout
from comptaflow.common.warehouse.schema import DIMENSIONS, FACTS
from comptaflow.period_validator.findings import FileKind, Finding, Period, ValidationResult

ENTRY: Final = "comptaflow.period_validator.parsing:validate_files"
PRELOAD: Final = (
    "polars",
    "fastexcel",
    "comptaflow.period_validator.excel.validation",
    "comptaflow.period_validator.fec.validation",
    "comptaflow.period_validator.parsing",
)
"""Imported by each warm child before it is given a job."""

_STAGED_COLUMNS: Final = dict((*DIMENSIONS.values(), *FACTS.values()))
"""Each staged table's own columns, in the warehouse table's order."""


def encode_staged(table: str, frame: pl.DataFrame, *, tenant_id: str, load_id: uuid.UUID) -> bytes:
    """A table as the loader forwards it to the warehouse without decoding it: the tag columns (tenant, load =
    the batch), then the warehouse table's columns in its order, as Parquet."""
    tags = [
        pl.lit(value, dtype=pl.String).alias(name)
        for name, value in zip(shared_layout.STAGED_TAGS, (tenant_id, str(load_id)), strict=True)
    ]
    out = io.BytesIO()
    # Read once, by the warehouse: fast lz4 rather than small zstd, one row group per insert block.
    frame.select(*tags, *_STAGED_COLUMNS.get(table, frame.columns)).write_parquet(
        out, compression="lz4", statistics=False, row_group_size=shared_layout.STAGED_ROW_GROUP_ROWS
    )
    return out.getvalue()


def validate_files(
    *,
    kind: str,
    paths: dict[str, str],
    period: list[str] | None,
    out_dir: str,
    tenant_id: str,
    load_id: str,
    on_progress: Callable[..., None],
) -> dict[str, Any]:
    """Validate the files; when valid, report the verdict (`on_progress("validated", 1.0, verdict)`), then
    stage the tables in `out_dir`."""
    if kind == "fec":
        from comptaflow.period_validator.fec import validate_fec

        declared = Period(date.fromisoformat(period[0]), date.fromisoformat(period[1])) if period else None
        result = validate_fec(Path(paths["fec"]), period=declared, on_progress=on_progress)
    else:
        from comptaflow.period_validator.excel import validate_excel

        result = validate_excel({FileKind(field): Path(path) for field, path in paths.items()}, on_progress=on_progress)
    staged: dict[str, str] = {}
    verdict = {
        "period": [result.period.start.isoformat(), result.period.end.isoformat()] if result.period else None,
        "errors": [finding.as_dict() for finding in result.errors],
        "warnings": [finding.as_dict() for finding in result.warnings],
        "stats": result.stats,
    }
    if result.ok and result.period is not None:
        # The parent files the uploaded files while the tables are encoded here.
        on_progress("validated", 1.0, verdict)
        for table, frame in result.tables.items():
            target = Path(out_dir) / f"{table}.parquet"
            target.write_bytes(encode_staged(table, frame, tenant_id=tenant_id, load_id=uuid.UUID(load_id)))
            staged[table] = str(target)
    return verdict | {"staged": staged}


def outcome(raw: dict[str, Any]) -> tuple[ValidationResult, dict[str, Path]]:
    """The parent's view of `validate_files`' answer: the result (without tables) and the staged files."""
    period = raw.get("period")
    result = ValidationResult(
        period=Period(date.fromisoformat(period[0]), date.fromisoformat(period[1])) if period else None,
        errors=[Finding.from_dict(item) for item in raw["errors"]],
        warnings=[Finding.from_dict(item) for item in raw["warnings"]],
        stats=raw["stats"],
    )
    return result, {table: Path(path) for table, path in raw.get("staged", {}).items()}
