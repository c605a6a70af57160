"""The Excel side of the period validator: five exports in, normalised tables and findings out.

`validate_excel(paths)` reads `grand_livre_comptes`, `grand_livre_tiers`, `plan_comptes`, `plan_tiers`
and `code_journal` (docs/api.md, Excel exports) and returns a `ValidationResult`: the period, errors that
block the batch, warnings that do not, per-file statistics, and the tables described in `schemas`.

Module map: `workbook` (safe opening, zip-bomb guard, raw grid) → `headers` + `labels` (header row,
column synonyms) → `period` (the preamble's period) → `ledger` (`cells`, `row_kinds`, `totals`) or `dimensions` →
`checks` (across files) ← `validation` (orchestration). Internal exceptions (`NotExcel`,
`HeaderNotFound`, `PeriodProblem`) never leave this package: each becomes a Finding.
"""

from comptaflow.period_validator.excel.validation import Progress, validate_excel

__all__ = ["Progress", "validate_excel"]
