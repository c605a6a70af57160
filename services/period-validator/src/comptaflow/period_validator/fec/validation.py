"""Validating a FEC and turning it into the normalised tables, modelled on the DGFiP's Test Compta Demat.

Errors (the batch fails, nothing is loaded):

- `NOT_FEC` — not text, or not a FEC at all; `FEC_COLUMNS` — the header's columns are missing or out
  of the order of article A47 A-1 (18 columns, or Montant/Sens in place of Debit/Credit, optionally
  followed by DateRglt, ModeRglt, NatOp, IdClient);
- `FEC_FORMAT` with the line number — a byte no encoding explains, a line with the wrong number of
  fields, an empty mandatory field (JournalCode, JournalLib, EcritureNum, EcritureDate, CompteNum,
  CompteLib, PieceRef, PieceDate, EcritureLib, and Debit/Credit or Montant/Sens), a date that is not a
  valid `YYYYMMDD` (a time after it is accepted), an amount that is not a decimal number with at most two
  decimals, a Sens that is not D/C or +1/-1;
- `UNBALANCED` — an entry whose debits and credits differ (each one listed with its lines and the
  difference), and the file when its totals differ;
- `ENTRY_OUTSIDE_PERIOD` — lines dated outside the period named at upload (`period_start`/`period_end`).

Warnings (the batch loads; real files break these rules routinely):

- `MISSING_VALID_DATE` — ValidDate empty;
- `ENTRIES_NOT_NUMBERED` — in a journal, EcritureNum does not tell entries apart (`0` on every line, or
  one number on several dates): its entries are then told apart by EcritureDate + PieceRef;
- `UNBALANCED_PIECES` — in such a journal, some date + piece groups do not balance on their own while
  the journal as a whole does (typical of an opening-balance journal listing open items at their
  original dates); a difference that does not cancel out within the journal is an `UNBALANCED` error;
- `INCOMPLETE_FIELDS` — CompAuxNum without CompAuxLib (or the reverse), EcritureLet without DateLet,
  Montantdevise without Idevise;
- `SKIPPED_ROWS` — blank lines.

The period is the one named at upload, else the first to the last EcritureDate.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Final

import polars as pl

from comptaflow.period_validator.excel.schemas import CODE_JOURNAL, LEDGER, PLAN_COMPTES, PLAN_TIERS
from comptaflow.period_validator.fec import decoding
from comptaflow.period_validator.fec.header import SEPARATOR_NAMES, ColumnsProblem, Layout, read_header, too_long
from comptaflow.period_validator.fec.reading import (
    FILE,
    MAX_LINE_FINDINGS,
    Lines,
    NotUtf8,
    header_line,
    split_fields,
    summary,
)
from comptaflow.period_validator.findings import Code, FileKind, Finding, Period, ValidationResult

Progress = Callable[[str, float], None]

AMOUNT: Final = pl.Decimal(18, 2)
SUM: Final = pl.Decimal(38, 2)
MAX_ENTRY_FINDINGS: Final = 100
_SPACES: Final = (" ", "\u00a0", "\u202f")
_AMOUNT_TEXT: Final = r"^[+-]?\d+(?:[.,]\d{1,2})?$"
_DATE_TEXT: Final = r"^\d{8}(?:[ T]?\d{2}:?\d{2}(?::?\d{2}(?:[.,]\d+)?)?)?$"
MANDATORY: Final = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
)
DATES: Final = ("EcritureDate", "PieceDate", "DateLet", "ValidDate", "DateRglt")
# What the warehouse can hold: Date for the line's date, Date32 for the others (placeholders like 19000101 occur).
DATE_RANGES: Final = {"EcritureDate": (date(1970, 1, 1), date(2149, 6, 6)), "*": (date(1900, 1, 1), date(2299, 12, 31))}
PAIRS: Final = (("CompAuxNum", "CompAuxLib"), ("CompAuxLib", "CompAuxNum"), ("EcritureLet", "DateLet"))
_CLASSES: Final = {
    "1": "capitaux",
    "2": "immobilisations",
    "3": "stocks",
    "4": "tiers",
    "5": "financiers",
    "6": "charges",
    "7": "produits",
    "8": "speciaux",
}
_TIERS_TYPES: Final = (("40", "fournisseur"), ("41", "client"), ("42", "salarie"))


def _noop(stage: str, fraction: float) -> None:
    return None


@dataclass(frozen=True, slots=True)
class _Check:
    """A per-line condition: the lines where `bad` holds each get reported (up to a cap)."""

    name: str
    bad: pl.Expr
    what: str  # what is wrong, without the line: "Debit is not an amount …"


def _lines_finding(code: Code, what: str, lines: list[int], count: int) -> list[Finding]:
    """One finding per listed line (`line N: what`), and a summary when `count` lines are at fault in all."""
    findings = [Finding(code, f"line {line}: {what}", file=FILE, row=line) for line in lines]
    if count > len(lines):
        findings.append(summary(code, count, f"lines where {what}", len(lines), row=lines[0]))
    return findings


def _amount(frame: pl.DataFrame, name: str) -> tuple[pl.Expr, pl.Expr]:
    """(value as Decimal(18,2) or null, whether the text is unreadable given the value in `_{name}`)."""
    text = pl.col(name)
    column = frame.get_column(name)
    # Thousands separated by spaces (a spreadsheet round trip writes no-break ones): tested literally first.
    if any(column.str.contains(space, literal=True).any() for space in _SPACES):
        text = text.str.replace_all(f"[{''.join(_SPACES)}]", "")
    value = text.str.replace(",", ".", literal=True).cast(AMOUNT, strict=False)
    readable = (text.str.contains(_AMOUNT_TEXT) & pl.col(f"_{name}").is_not_null()).fill_null(False)
    return value, pl.col(name).is_not_null() & ~readable


def _date(name: str) -> tuple[pl.Expr, pl.Expr]:
    """(the date or null, whether the text is not a valid date in range given the value in `_{name}`)."""
    value = pl.col(name).str.slice(0, 8).str.to_date("%Y%m%d", strict=False)
    low, high = DATE_RANGES.get(name, DATE_RANGES["*"])
    readable = (pl.col(name).str.contains(_DATE_TEXT) & pl.col(f"_{name}").is_between(low, high)).fill_null(False)
    return value, pl.col(name).is_not_null() & ~readable


def _typed(frame: pl.DataFrame, layout: Layout) -> tuple[pl.DataFrame, list[_Check]]:
    """Typed columns next to the text ones, and one flag column `!{check}` per per-line check."""
    columns: dict[str, pl.Expr] = {}
    checks: list[_Check] = []
    for name in (*MANDATORY, *(("Montant", "Sens") if layout.montant_sens else ())):
        checks.append(_Check(f"empty:{name}", pl.col(name).is_null(), f"{name} is empty"))
    for name in DATES:
        if name in layout.columns:
            value, bad = _date(name)
            columns[f"_{name}"] = value
            low, high = DATE_RANGES.get(name, DATE_RANGES["*"])
            what = f"{name} is not a valid date YYYYMMDD between {low.year} and {high.year}"
            checks.append(_Check(f"date:{name}", bad, what))
    amounts = ("Montant", "Montantdevise") if layout.montant_sens else ("Debit", "Credit", "Montantdevise")
    for name in amounts:
        value, bad = _amount(frame, name)
        columns[f"_{name}"] = value
        what = f"{name} is not an amount (digits, a comma or point, 2 decimals)"
        checks.append(_Check(f"amount:{name}", bad, what))
    zero = pl.lit(Decimal("0.00"), dtype=AMOUNT)
    if layout.montant_sens:
        sens = pl.col("Sens").str.to_uppercase()
        debit_side, credit_side = sens.is_in(["D", "+1", "1"]), sens.is_in(["C", "-1"])
        checks.append(
            _Check(
                "sens",
                pl.col("Sens").is_not_null() & ~(debit_side | credit_side),
                "Sens must be D or C (or +1 or -1)",
            )
        )
        sides = {
            "_debit": pl.when(debit_side).then(pl.col("_Montant")).otherwise(zero).fill_null(zero),
            "_credit": pl.when(credit_side).then(pl.col("_Montant")).otherwise(zero).fill_null(zero),
        }
    else:
        checks.append(
            _Check(
                "empty:Debit/Credit",
                pl.col("Debit").is_null() & pl.col("Credit").is_null(),
                "Debit and Credit are both empty",
            )
        )
        sides = {"_debit": pl.col("_Debit").fill_null(zero), "_credit": pl.col("_Credit").fill_null(zero)}
    typed = frame.with_columns(**columns).with_columns(**sides, **{f"!{check.name}": check.bad for check in checks})
    return typed, checks


def _run_checks(typed: pl.DataFrame, checks: list[_Check]) -> list[Finding]:
    counts = typed.select(pl.col(f"!{check.name}").sum() for check in checks).row(0)
    findings: list[Finding] = []
    for check, count in zip(checks, counts, strict=True):
        if not count:
            continue
        lines = typed.filter(pl.col(f"!{check.name}"))["line"].head(MAX_LINE_FINDINGS).to_list()
        findings.extend(_lines_finding(Code.FEC_FORMAT, check.what, lines, int(count)))
    return findings


def _warnings(typed: pl.DataFrame, layout: Layout) -> list[Finding]:
    warnings: list[Finding] = []
    conditions = [
        (
            Code.MISSING_VALID_DATE,
            pl.col("ValidDate").is_null(),
            "ValidDate (the validation date) is empty on {count} lines",
        ),
        *(
            (
                Code.INCOMPLETE_FIELDS,
                pl.col(first).is_not_null() & pl.col(second).is_null(),
                f"{first} without {second} on {{count}} lines",
            )
            for first, second in PAIRS
        ),
        (
            Code.INCOMPLETE_FIELDS,
            pl.col("Montantdevise").is_not_null() & pl.col("Idevise").is_null(),
            "Montantdevise without Idevise on {count} lines",
        ),
    ]
    flags = typed.select(pl.col("line"), *(condition.alias(f"c{i}") for i, (_, condition, _) in enumerate(conditions)))
    counts = flags.select(pl.all().exclude("line").sum()).row(0)
    for i, ((code, _, message), count) in enumerate(zip(conditions, counts, strict=True)):
        if count:
            lines = flags.filter(pl.col(f"c{i}"))["line"].head(20).to_list()
            warnings.append(
                Finding(
                    code, message.format(count=count), file=FILE, row=lines[0], details={"count": count, "lines": lines}
                )
            )
    return warnings


def _euros(value: Decimal | None) -> str:
    return f"{(value or Decimal(0)):.2f}"


def _entry_finding(row: dict[str, Any], *, code: Code, numbered: bool) -> Finding:
    debit, credit = row["debit"] or Decimal(0), row["credit"] or Decimal(0)
    if numbered:
        name = f"entry {row['JournalCode']} {row['EcritureNum']}"
    else:
        name = f"entry {row['JournalCode']} of {row['_EcritureDate']} piece {row['PieceRef']}"
    lines: list[int] = row["lines"]
    return Finding(
        code,
        f"{name} (line {lines[0]}) does not balance: debit {_euros(debit)}, credit {_euros(credit)},"
        f" difference {_euros(debit - credit)}",
        file=FILE,
        row=lines[0],
        details={
            "journal": row["JournalCode"],
            "entry_num": row["EcritureNum"],
            "date": str(row["_EcritureDate"]) if row["_EcritureDate"] else None,
            "piece": row["PieceRef"],
            "debit": _euros(debit),
            "credit": _euros(credit),
            "difference": _euros(debit - credit),
            "lines": lines[:50],
        },
    )


def _capped(findings: list[Finding], code: Code, what: str) -> list[Finding]:
    if len(findings) <= MAX_ENTRY_FINDINGS:
        return findings
    return [*findings[:MAX_ENTRY_FINDINGS], summary(code, len(findings), what, MAX_ENTRY_FINDINGS)]


@dataclass(slots=True)
class _Balance:
    errors: list[Finding]
    warnings: list[Finding]
    entries: int
    unnumbered_journals: list[str]


def _with_lines(base: pl.DataFrame, groups: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """Attach the first 50 line numbers (and date and piece) of each group: only for the few unbalanced ones."""
    firsts = [pl.col(name).first() for name in ("_EcritureDate", "PieceRef") if name not in keys]
    lines = (
        base.join(groups.select(keys), on=keys, how="semi", nulls_equal=True)
        .sort("line")
        .group_by(keys)
        .agg(pl.col("line").head(50).alias("lines"), *firsts)
    )
    return groups.join(lines, on=keys, how="left", nulls_equal=True).sort(pl.col("lines").list.first())


def _balance(typed: pl.DataFrame) -> _Balance:
    """Every entry balances, and the file; see the module's docstring for how entries are told apart."""
    base = typed.filter(pl.col("JournalCode").is_not_null()).select(
        "line", "JournalCode", "EcritureNum", "_EcritureDate", "PieceRef", "_debit", "_credit"
    )
    number = ["JournalCode", "EcritureNum"]
    by_number = base.group_by(number).agg(
        debit=pl.col("_debit").sum(),
        credit=pl.col("_credit").sum(),
        one_date=pl.col("_EcritureDate").min() == pl.col("_EcritureDate").max(),
    )
    journals = by_number.group_by("JournalCode").agg(
        numbered=(pl.col("one_date") & pl.col("EcritureNum").is_not_null() & (pl.col("EcritureNum") != "0")).all()
    )
    unnumbered = sorted(journals.filter(~pl.col("numbered"))["JournalCode"].to_list())
    errors: list[Finding] = []
    warnings: list[Finding] = []
    numbered_groups = by_number.filter(~pl.col("JournalCode").is_in(unnumbered))
    off_numbers = _with_lines(base, numbered_groups.filter(pl.col("debit") != pl.col("credit")), number)
    errors.extend(_entry_finding(row, code=Code.UNBALANCED, numbered=True) for row in off_numbers.iter_rows(named=True))
    entries = numbered_groups.height
    if unnumbered:
        piece = [*number, "_EcritureDate", "PieceRef"]
        pieces = (
            base.filter(pl.col("JournalCode").is_in(unnumbered))
            .group_by(piece)
            .agg(debit=pl.col("_debit").sum(), credit=pl.col("_credit").sum())
        )
        entries += pieces.height
        balanced_numbers = by_number.filter(pl.col("debit") == pl.col("credit")).select(number)
        off = pieces.filter(pl.col("debit") != pl.col("credit")).join(
            balanced_numbers.with_columns(_cancels=pl.lit(True)), on=number, how="left", nulls_equal=True
        )
        for row in _with_lines(base, off, piece).iter_rows(named=True):
            cancels = bool(row["_cancels"])
            finding = _entry_finding(row, code=Code.UNBALANCED_PIECES if cancels else Code.UNBALANCED, numbered=False)
            (warnings if cancels else errors).append(finding)
        warnings = _capped(warnings, Code.UNBALANCED_PIECES, "date and piece groups do not balance on their own")
        warnings.insert(
            0,
            Finding(
                Code.ENTRIES_NOT_NUMBERED,
                f"EcritureNum does not tell entries apart in journal{'s' if len(unnumbered) > 1 else ''}"
                f" {', '.join(unnumbered)} (the same number on several dates, or 0): entries are told apart"
                " by EcritureDate and PieceRef there",
                file=FILE,
                details={"journals": unnumbered},
            ),
        )
    errors = _capped(errors, Code.UNBALANCED, "entries do not balance")
    sums = base.select(pl.col("_debit").sum(), pl.col("_credit").sum()).row(0)
    debit, credit = (Decimal(value or 0) for value in sums)
    if debit != credit:
        errors.append(
            Finding(
                Code.UNBALANCED,
                f"the file does not balance: debit {_euros(debit)}, credit {_euros(credit)},"
                f" difference {_euros(debit - credit)}",
                file=FILE,
                details={"debit": _euros(debit), "credit": _euros(credit)},
            )
        )
    return _Balance(errors, warnings, entries, unnumbered)


def _period(typed: pl.DataFrame, declared: Period | None) -> tuple[Period | None, list[Finding]]:
    first, last = typed.select(
        pl.col("_EcritureDate").min().alias("first"), pl.col("_EcritureDate").max().alias("last")
    ).row(0)
    if declared is None:
        if first is None:
            return None, [Finding(Code.PERIOD_NOT_FOUND, "the file has no dated line", file=FILE)]
        return Period(first, last), []
    outside = typed.filter((pl.col("_EcritureDate") < declared.start) | (pl.col("_EcritureDate") > declared.end))[
        "line"
    ]
    if not outside.len():
        return declared, []
    lines = outside.head(MAX_LINE_FINDINGS).to_list()
    what = f"EcritureDate outside the period {declared.start} to {declared.end}"
    return declared, _lines_finding(Code.ENTRY_OUTSIDE_PERIOD, what, lines, outside.len())


def _first_by_code(frame: pl.DataFrame, code: str, **values: pl.Expr) -> pl.DataFrame:
    """One row per code, in order of first appearance, with the values of its first line."""
    return (
        frame.select(pl.col(code), **values)
        .filter(pl.col(code).is_not_null())
        .unique(subset=code, keep="first", maintain_order=True)
    )


def _tables(typed: pl.DataFrame, layout: Layout) -> dict[str, pl.DataFrame]:
    null_text = pl.lit(None, dtype=pl.String)
    common = {
        "row": pl.col("line"),
        "date": pl.col("_EcritureDate"),
        "journal": pl.col("JournalCode"),
        "piece": pl.col("PieceRef"),
        "label": pl.col("EcritureLib").fill_null(""),
        "debit": pl.col("_debit"),
        "credit": pl.col("_credit"),
        "lettrage": pl.col("EcritureLet"),
        "due_date": pl.lit(None, dtype=pl.Date),
        "entry_num": pl.col("EcritureNum"),
        "piece_date": pl.col("_PieceDate"),
        "lettrage_date": pl.col("_DateLet"),
        "valid_date": pl.col("_ValidDate"),
        "currency_amount": pl.col("_Montantdevise"),
        "currency": pl.col("Idevise"),
    }
    general = (
        typed.select(account=pl.col("CompteNum"), account_label=pl.col("CompteLib"), collectif=null_text, **common)
        .select(LEDGER.names())
        .cast(LEDGER)
    )
    tiers = (
        typed.filter(pl.col("CompAuxNum").is_not_null())
        .select(
            account=pl.col("CompAuxNum"),
            account_label=pl.col("CompAuxLib"),
            collectif=pl.col("CompteNum"),
            **common,
        )
        .select(LEDGER.names())
        .cast(LEDGER)
    )
    accounts = _first_by_code(typed, "CompteNum", label=pl.col("CompteLib")).select(
        account=pl.col("CompteNum"),
        label=pl.col("label").fill_null(""),
        account_type=pl.col("CompteNum").str.slice(0, 1).replace_strict(_CLASSES, default=None, return_dtype=pl.String),
    )
    parties = _first_by_code(typed, "CompAuxNum", name=pl.col("CompAuxLib"), collectif=pl.col("CompteNum"))
    tiers_type = pl.coalesce(
        *(pl.when(pl.col("collectif").str.starts_with(prefix)).then(pl.lit(kind)) for prefix, kind in _TIERS_TYPES),
        pl.lit("autre"),
    )
    plan_tiers = parties.select(
        code=pl.col("CompAuxNum"),
        name=pl.coalesce(pl.col("name"), pl.col("CompAuxNum")),
        collectif=pl.col("collectif"),
        tiers_type=tiers_type,
        **{name: null_text for name in PLAN_TIERS.names() if name not in ("code", "name", "collectif", "tiers_type")},
    ).select(PLAN_TIERS.names())
    journals = _first_by_code(typed, "JournalCode", label=pl.col("JournalLib")).select(
        code=pl.col("JournalCode"), label=pl.col("label").fill_null(""), journal_type=null_text
    )
    return {
        FileKind.GRAND_LIVRE_COMPTES.value: general,
        FileKind.GRAND_LIVRE_TIERS.value: tiers,
        FileKind.PLAN_COMPTES.value: accounts.cast(PLAN_COMPTES),
        FileKind.PLAN_TIERS.value: plan_tiers.cast(PLAN_TIERS),
        FileKind.CODE_JOURNAL.value: journals.cast(CODE_JOURNAL),
    }


def _read_text(raw: bytes) -> tuple[decoding.Decoded, Layout, Lines]:
    """Decode, read the header, split the lines; raises Unreadable or ColumnsProblem.

    A file is first taken for UTF-8 without decoding it in Python (the CSV reader checks UTF-8 itself);
    only when that fails is it decoded here, which finds its code page or the line at fault.
    """
    trusted = True
    while True:
        decoded = decoding.decode(raw, trust_utf8=trusted)
        try:
            first = header_line(decoded.data)
            if (problem := too_long(first)) is not None:
                raise problem
            layout = read_header(first.decode("utf-8"))
            return decoded, layout, split_fields(decoded.data, layout)
        except (NotUtf8, UnicodeDecodeError):
            if not trusted:
                raise
            trusted = False


def validate_fec(path: Path, *, period: Period | None = None, on_progress: Progress = _noop) -> ValidationResult:
    """Read, check and normalise one FEC file. Never raises on bad input: findings say what is wrong."""
    result = ValidationResult()
    try:
        decoded, layout, lines = _read_text(path.read_bytes())
    except decoding.Unreadable as exc:
        result.errors.append(Finding(Code.FEC_FORMAT, str(exc), file=FILE, row=exc.line))
        return result
    except ColumnsProblem as exc:
        code = Code.NOT_FEC if exc.not_fec else Code.FEC_COLUMNS
        result.errors.append(Finding(code, str(exc), file=FILE, row=1, details=exc.details))
        return result
    on_progress("parse", 0.5)
    result.errors.extend(lines.errors)
    if lines.frame.height == 0:
        result.errors.append(Finding(Code.FEC_FORMAT, "the file has a header but no line", file=FILE, row=2))
        return result
    on_progress("parse", 0.5)
    typed, checks = _typed(lines.frame, layout)
    result.errors.extend(_run_checks(typed, checks))
    result.warnings.extend(_warnings(typed, layout))
    on_progress("checks", 0.7)
    balance = _balance(typed)
    result.errors.extend(balance.errors)
    result.warnings.extend(balance.warnings)
    result.period, outside = _period(typed, period)
    result.errors.extend(outside)
    if lines.blank:
        result.warnings.append(
            Finding(
                Code.SKIPPED_ROWS, f"{lines.blank} blank lines were skipped", file=FILE, details={"total": lines.blank}
            )
        )
    on_progress("checks", 0.85)
    totals = typed.select(pl.col("_debit").sum(), pl.col("_credit").sum()).row(0)
    years = typed.select(pl.col("_EcritureDate").dt.year().unique().sort()).to_series().drop_nulls().to_list()
    result.stats = {
        "format": {
            "encoding": decoded.encoding,
            **({"encoding_note": decoded.note} if decoded.note else {}),
            "bom": decoded.bom,
            "line_endings": decoded.line_endings,
            "separator": SEPARATOR_NAMES[layout.separator],
            "quoted": layout.quoted,
            "trailing_separator": lines.trailing_separator,
            "padded": lines.padded,
            "columns": layout.width,
            "amounts": "Montant/Sens" if layout.montant_sens else "Debit/Credit",
        },
        "lines": typed.height,
        "blank_lines": lines.blank,
        "entries": balance.entries,
        "journals": typed["JournalCode"].n_unique(),
        "accounts": typed["CompteNum"].n_unique(),
        "tiers": typed["CompAuxNum"].drop_nulls().n_unique(),
        "years": years,
        "total_debit": _euros(totals[0]),
        "total_credit": _euros(totals[1]),
    }
    if result.ok:
        result.tables = _tables(typed, layout)
    on_progress("checks", 1.0)
    return result


def declared_period(options: dict[str, Any]) -> Period | None:
    """The period named at upload (`period_start`/`period_end`, ISO dates), if any."""
    start, end = options.get("period_start"), options.get("period_end")
    if not start or not end:
        return None
    return Period(date.fromisoformat(str(start)), date.fromisoformat(str(end)))
