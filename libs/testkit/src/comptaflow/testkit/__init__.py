"""Fixture generators for Comptaflow's tests and benchmarks (dev-only; imports no service).

- `excel`: the five Excel exports of a period (`ExportSpec`, `write_period`, `render_period`,
  `write_grand_livre_rows` for large streamed ledgers) with the values a reader must find;
- `ledger`, `dimensions`, `preamble`, `notation`: how each file, row and cell is laid out;
- `entries`, `chart`: the seeded accounting data behind them;
- `sheet`: writing rows to `.xlsx` (xlsxwriter) or `.xls` (xlwt);
- `malformed`: broken files (truncated, corrupt, zip bombs, disguised text) for failure tests.

The five kinds are plain strings here (`grand_livre_comptes`, …), equal to the upload field names.
"""
