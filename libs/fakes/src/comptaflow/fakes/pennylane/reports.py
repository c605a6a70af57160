"""What is computed from the ledger entry lines: the trial balance, the FEC and the general ledgers.

- Trial balance (`/trial_balance`): per account, the debits and credits of the lines dated in the
  period; `formatted_number` is the number padded with zeros to 8 characters (`512` → `51200000`). With
  `is_auxiliary=true` every customer and supplier account is its own row; otherwise (the default) they
  are summed into their collective account (411000, 401000), as in a balance générale.
- FEC (`/exports/fecs`): the 18 columns of article A47 A-1 of the LPF, tab-separated, a header line,
  UTF-8, dates `YYYYMMDD`, amounts with a decimal comma; one line per ledger entry line dated in the
  period, by date then entry. EcritureNum is the entry id, PieceRef its piece number, ValidDate the day
  it was recorded; a customer's or supplier's line carries the collective account as CompteNum and the
  third party's own account as CompAuxNum/CompAuxLib; lettered lines carry their EcritureLet/DateLet.
  Montantdevise/Idevise stay empty: every amount is in euros.
- General ledger (`/exports/general_ledgers`) and analytical general ledger
  (`/exports/analytical_general_ledgers`, `in_line` or `in_column`): xlsx workbooks of the same lines.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from typing import Any

from comptaflow.fakes.pennylane.formats import ZERO, fec_amount, fec_date, money
from comptaflow.fakes.pennylane.store import Company, Row

FEC_COLUMNS: tuple[str, ...] = (
    "JournalCode",
    "JournalLib",
    "EcritureNum",
    "EcritureDate",
    "CompteNum",
    "CompteLib",
    "CompAuxNum",
    "CompAuxLib",
    "PieceRef",
    "PieceDate",
    "EcritureLib",
    "Debit",
    "Credit",
    "EcritureLet",
    "DateLet",
    "ValidDate",
    "Montantdevise",
    "Idevise",
)


def trial_balance(company: Company, start: date, end: date, *, auxiliary: bool) -> list[Row]:
    accounts = company.rows("ledger_accounts")
    totals: dict[str, list[Any]] = {}
    for line in company.rows("ledger_entry_lines").values():
        if not start <= line["date"] <= end:
            continue
        account = accounts.get(line["ledger_account_id"])
        if account is None:
            continue
        if not auxiliary and account["collective"] and account["collective"] in company.accounts_by_number:
            account = accounts[company.accounts_by_number[account["collective"]]]
        total = totals.setdefault(account["number"], [account["label"], ZERO, ZERO])
        total[1] += line["debit"]
        total[2] += line["credit"]
    return [
        {
            "id": number,
            "number": number,
            "formatted_number": number.ljust(8, "0"),
            "label": label,
            "debits": money(debits),
            "credits": money(credits),
        }
        for number, (label, debits, credits) in sorted(totals.items())
    ]


def period_lines(company: Company, start: date, end: date) -> Iterator[tuple[Row, Row]]:
    """(entry, line) for every line of an entry dated in the period, by date, entry id, line id."""
    lines = company.rows("ledger_entry_lines")
    entries = sorted(
        (entry for entry in company.rows("ledger_entries").values() if start <= entry["date"] <= end),
        key=lambda entry: (entry["date"], entry["id"]),
    )
    for entry in entries:
        for line_id in entry["line_ids"]:
            if line_id in lines:
                yield entry, lines[line_id]


def _text(value: str | None) -> str:
    return (value or "").replace("\t", " ").replace("\r", " ").replace("\n", " ")


def fec(company: Company, start: date, end: date) -> str:
    accounts = company.rows("ledger_accounts")
    journals = company.rows("journals")
    out = ["\t".join(FEC_COLUMNS)]
    for entry, line in period_lines(company, start, end):
        journal = journals.get(entry["journal_id"], {"code": "", "label": ""})
        account = accounts.get(line["ledger_account_id"], {"number": "", "label": "", "collective": None})
        number, label, aux_number, aux_label = account["number"], account["label"], "", ""
        collective = account["collective"] and company.accounts_by_number.get(account["collective"])
        if collective:
            aux_number, aux_label = number, label
            number, label = accounts[collective]["number"], accounts[collective]["label"]
        lettering = company.letterings.get(line.get("lettering_id") or 0)
        out.append(
            "\t".join(
                (
                    journal["code"],
                    _text(journal["label"]),
                    str(entry["id"]),
                    fec_date(entry["date"]),
                    number,
                    _text(label),
                    aux_number,
                    _text(aux_label),
                    _text(entry["piece_number"]) or str(entry["id"]),
                    fec_date(entry["date"]),
                    _text(line["label"]) or _text(entry["label"]),
                    fec_amount(line["debit"]),
                    fec_amount(line["credit"]),
                    lettering.code if lettering else "",
                    fec_date(lettering.on) if lettering else "",
                    fec_date(entry["created_at"].date()),
                    "",
                    "",
                )
            )
        )
    return "\n".join(out) + "\n"


GL_COLUMNS = ("Date", "Journal", "Compte", "Libellé du compte", "Pièce", "Libellé", "Débit", "Crédit", "Lettrage")


def general_ledger(company: Company, start: date, end: date) -> list[list[Any]]:
    """Rows of the general ledger (header first), by account number then date."""
    accounts = company.rows("ledger_accounts")
    journals = company.rows("journals")
    rows: list[tuple[tuple[str, date, int], list[Any]]] = []
    for entry, line in period_lines(company, start, end):
        account = accounts.get(line["ledger_account_id"], {"number": "", "label": ""})
        lettering = company.letterings.get(line.get("lettering_id") or 0)
        rows.append(
            (
                (account["number"], entry["date"], line["id"]),
                [
                    entry["date"].isoformat(),
                    journals.get(entry["journal_id"], {"code": ""})["code"],
                    account["number"],
                    account["label"],
                    entry["piece_number"] or "",
                    line["label"],
                    Decimal(line["debit"]),
                    Decimal(line["credit"]),
                    lettering.code if lettering else "",
                ],
            )
        )
    rows.sort(key=lambda item: item[0])
    return [list(GL_COLUMNS), *(row for _, row in rows)]


def analytical_general_ledger(company: Company, start: date, end: date, *, mode: str) -> list[list[Any]]:
    """The general ledger with its analytical allocation: one row per (line, category) `in_line`, or one
    column per category group `in_column`."""
    base = general_ledger(company, start, end)
    categories = company.rows("categories")
    lines = {line["id"]: line for _, line in period_lines(company, start, end)}
    accounts = company.rows("ledger_accounts")
    ordered = sorted(
        lines.values(),
        key=lambda line: (accounts.get(line["ledger_account_id"], {"number": ""})["number"], line["date"], line["id"]),
    )
    if mode == "in_column":
        groups = sorted({category["category_group_id"] for category in categories.values()})
        out = [[*base[0], *(f"Groupe {group}" for group in groups)]]
        for row, line in zip(base[1:], ordered, strict=True):
            by_group = {categories[c]["category_group_id"]: categories[c]["label"] for c, _ in _known(line, categories)}
            out.append([*row, *(by_group.get(group, "") for group in groups)])
        return out
    out = [[*base[0], "Catégorie", "Code analytique", "Pondération", "Montant ventilé"]]
    for row, line in zip(base[1:], ordered, strict=True):
        allocations = _known(line, categories)
        if not allocations:
            out.append([*row, "", "", "", ""])
        for category_id, weight in allocations:
            category = categories[category_id]
            signed = (line["debit"] - line["credit"]) * weight
            out.append([*row, category["label"], category["analytical_code"] or "", weight, signed])
    return out


def _known(line: Row, categories: dict[int, Row]) -> list[tuple[int, Decimal]]:
    return [(category_id, weight) for category_id, weight in line["category_weights"] if category_id in categories]
