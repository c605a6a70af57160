"""Staged tables: what the validator writes, the loader forwards untouched; anything else is tagged or refused."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, date, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import polars as pl
import pytest

from comptaflow.common import batches
from comptaflow.common.contracts import BatchKind, BatchStatus
from comptaflow.common.errors import PermanentError
from comptaflow.common.infra import Infra
from comptaflow.common.warehouse.schema import DIMENSIONS, FACTS, LEDGER_COLUMNS
from comptaflow.loader.staging import _prepare
from comptaflow.period_validator.excel.schemas import LEDGER, SCHEMAS
from comptaflow.period_validator.findings import FileKind, ValidationResult
from comptaflow.period_validator.handler import ValidationHandler
from comptaflow.period_validator.parsing import encode_staged
from tests.loader.support import FEC_ONLY_NULLS, ledger, staged_parquet

TENANT = "acme"
LOAD = uuid.UUID("00000000-0000-4000-8000-000000000001")
TAGS = ("tenant_id", "load_id")


def _ledger(lines: int = 30) -> pl.DataFrame:
    return ledger(lines, date(2024, 1, 1), 1).with_columns(**FEC_ONLY_NULLS)


def _prepared(raw: bytes, **overrides: Any) -> Any:
    options: dict[str, Any] = {"table": "grand_livre", "tenant_id": TENANT, "load_id": LOAD, "columns": LEDGER_COLUMNS}
    return _prepare(raw, **(options | overrides))


def test_an_insert_ready_table_is_forwarded_as_it_is() -> None:
    raw = staged_parquet(_ledger(), table="grand_livre_comptes", tenant_id=TENANT, load_id=LOAD)
    staged = _prepared(raw)
    assert staged.data is raw
    assert staged.rows == 30
    assert staged.columns == (*TAGS, *LEDGER_COLUMNS)


def test_an_empty_insert_ready_table_is_forwarded() -> None:
    raw = staged_parquet(_ledger().clear(), table="grand_livre_comptes", tenant_id=TENANT, load_id=LOAD)
    staged = _prepared(raw)
    assert (staged.data, staged.rows) == (raw, 0)


def test_a_table_staged_without_tags_is_tagged_here() -> None:
    frame = _ledger()
    staged = _prepared(staged_parquet(frame, table="grand_livre_comptes", tenant_id=None, load_id=None))
    assert staged.rows == 30
    assert staged.columns == (*TAGS, *LEDGER_COLUMNS)
    tagged = pl.read_parquet(io.BytesIO(staged.data))
    assert tagged.columns == list(staged.columns)
    assert tagged["tenant_id"].unique().to_list() == [TENANT]
    assert tagged["load_id"].unique().to_list() == [str(LOAD)]
    assert tagged.drop(TAGS).equals(frame.select(LEDGER_COLUMNS))


@pytest.mark.parametrize("tagged", [True, False])
def test_a_table_lacking_a_column_is_refused(tagged: bool) -> None:
    frame = _ledger().drop("debit", "currency")
    raw = staged_parquet(
        frame.select(pl.lit(TENANT).alias("tenant_id"), pl.lit(str(LOAD)).alias("load_id"), pl.all())
        if tagged
        else frame,
        table="plan_tiers",  # any table: the frame is written as given when untagged
        tenant_id=None,
        load_id=None,
    )
    with pytest.raises(PermanentError, match=r"grand_livre lacks the columns debit, currency"):
        _prepared(raw)


@pytest.mark.parametrize(
    ("tenant", "load"),
    [
        (pl.lit("other"), pl.lit(str(LOAD))),
        (pl.lit(TENANT), pl.lit(str(uuid.uuid4()))),
        (pl.lit(TENANT), pl.when(pl.col("row") == 5).then(pl.lit(str(uuid.uuid4()))).otherwise(pl.lit(str(LOAD)))),
        (pl.when(pl.col("row") == 5).then(None).otherwise(pl.lit(TENANT)), pl.lit(str(LOAD))),
    ],
    ids=["other-tenant", "other-load", "two-loads", "null-tenant"],
)
def test_a_table_tagged_for_another_load_is_refused(tenant: pl.Expr, load: pl.Expr) -> None:
    frame = _ledger().select(tenant.alias("tenant_id"), load.alias("load_id"), *LEDGER_COLUMNS)
    raw = staged_parquet(frame, table="grand_livre_comptes", tenant_id=None, load_id=None)
    with pytest.raises(PermanentError, match="tagged for another load"):
        _prepared(raw)


def test_an_unreadable_table_is_refused() -> None:
    with pytest.raises(PermanentError, match="grand_livre is unreadable"):
        _prepared(b"PAR1 not parquet at all")


class _Storage:
    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    async def put_bytes(self, key: str, data: bytes, **_: Any) -> None:
        self.objects[key] = data


async def test_what_the_validator_stages_the_loader_forwards_untouched(tmp_path: Path) -> None:
    storage = _Storage()
    settings = SimpleNamespace(delivery_limit=5, parse_memory_mb=3072, parse_timeout_s=60.0)
    infra = cast(Infra, SimpleNamespace(settings=settings, storage=storage))
    tables = {kind.value: pl.DataFrame(schema=SCHEMAS[kind]) for kind in FileKind}
    tables[FileKind.GRAND_LIVRE_COMPTES.value] = _ledger().select(LEDGER.names()).cast(LEDGER)
    result = ValidationResult(tables=tables)
    batch = batches.Batch(
        id=LOAD,
        tenant_id=TENANT,
        kind=BatchKind.EXCEL,
        status=BatchStatus.VALIDATING,
        stage="store",
        progress=0.9,
        period_start=None,
        period_end=None,
        errors=[],
        warnings=[],
        stats={},
        auto_load=False,
        created_by="t",
        created_at=datetime.now(UTC),
        updated_at=datetime.now(UTC),
        status_seq=1,
        options={},
    )
    staged = {}
    for table, frame in result.tables.items():
        staged[table] = tmp_path / f"{table}.parquet"
        staged[table].write_bytes(encode_staged(table, frame, tenant_id=TENANT, load_id=LOAD))
    await ValidationHandler(infra)._store_tables(batch, staged)

    assert len(storage.objects) == len(DIMENSIONS) + len(FACTS)
    for table, (staged_as, columns) in {**DIMENSIONS, **FACTS}.items():
        raw = storage.objects[f"{TENANT}/staging/{LOAD}/{staged_as}.parquet"]
        staged = _prepare(raw, table=table, tenant_id=TENANT, load_id=LOAD, columns=columns)
        assert staged.data is raw, table
        assert staged.rows == tables[staged_as].height
        assert pl.read_parquet_schema(io.BytesIO(raw)).names() == [*TAGS, *columns]
