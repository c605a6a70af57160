"""Rendering the three reference files: plan comptable, plan tiers, codes journaux."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from comptaflow.testkit.chart import ACCOUNTS, JOURNALS, TIERS, Account, Journal, Tiers
from comptaflow.testkit.sheet import Cell

PlanStyle = Literal["canonical", "variant", "minimal"]

TIERS_OPTIONAL_COLUMNS: tuple[str, ...] = (
    "collectif",
    "tiers_type",
    "siret",
    "address",
    "postal_code",
    "city",
    "country",
    "email",
    "phone",
)

_TIERS_LABELS: dict[PlanStyle, dict[str, str]] = {
    "canonical": {
        "code": "Code", "name": "Nom", "collectif": "Compte collectif", "tiers_type": "Type",
        "siret": "SIRET", "address": "Adresse", "postal_code": "Code postal", "city": "Ville",
        "country": "Pays", "email": "Email", "phone": "Téléphone",
    },
    "variant": {
        "code": "Compte auxiliaire", "name": "Raison sociale", "collectif": "Collectif",
        "tiers_type": "TYPE", "siret": "N° SIRET", "address": "Adresse", "postal_code": "Code Postal",
        "city": "VILLE", "country": "Pays", "email": "E-mail", "phone": "Tél.",
    },
    "minimal": {"code": "Code tiers", "name": "Intitulé"},
}  # fmt: skip


def _title(title: str) -> list[list[Cell]]:
    return [["ACME SARL"], [title], ["Edité le 05/02/2025"], []]


def _code(code: str, numeric: bool) -> Cell:
    return int(code) if numeric and code.isdigit() and not code.startswith("0") else code


def plan_comptes_rows(
    style: PlanStyle = "canonical", *, numeric_accounts: bool = False, accounts: Sequence[Account] = ACCOUNTS
) -> list[list[Cell]]:
    headers: dict[PlanStyle, list[Cell]] = {
        "canonical": ["Compte", "Intitulé", "Type"],
        "variant": ["N° compte", "Libellé", "Nature", "Classe", "Sens"],
        "minimal": ["Numéro", "Libelle"],
    }
    rows = [*_title("Plan comptable"), headers[style]]
    for account in accounts:
        row: list[Cell] = [_code(account.code, numeric_accounts), account.label]
        if style == "canonical":
            row.append(account.account_type)
        elif style == "variant":
            row += [account.account_type, account.code[0], "D" if account.code[0] in "2356" else "C"]
        rows.append(row)
    return rows


def plan_tiers_rows(
    style: PlanStyle = "canonical",
    *,
    columns: Sequence[str] = TIERS_OPTIONAL_COLUMNS,
    numeric_accounts: bool = False,
    tiers: Sequence[Tiers] = TIERS,
) -> list[list[Cell]]:
    labels = _TIERS_LABELS[style]
    names = ["code", "name"] + [c for c in columns if c in labels]
    rows: list[list[Cell]] = [*_title("Plan tiers"), [labels[name] for name in names]]
    for item in tiers:
        values: dict[str, Cell] = {
            "code": item.code,
            "name": item.name,
            "collectif": _code(item.collectif, numeric_accounts),
            "tiers_type": item.tiers_type,
            "siret": item.siret or None,
            "address": item.address,
            "postal_code": item.postal_code,
            "city": item.city,
            "country": item.country,
            "email": item.email,
            "phone": item.phone,
        }
        rows.append([values[name] for name in names])
    return rows


def code_journal_rows(style: PlanStyle = "canonical", *, journals: Sequence[Journal] = JOURNALS) -> list[list[Cell]]:
    headers: dict[PlanStyle, list[Cell]] = {
        "canonical": ["Code", "Libellé", "Type"],
        "variant": ["Code journal", "Intitulé", "TYPE"],
        "minimal": ["Journal", "Intitulé"],
    }
    rows = [*_title("Journaux"), headers[style]]
    for journal in journals:
        row: list[Cell] = [journal.code, journal.label]
        if style != "minimal":
            row.append(journal.journal_type)
        rows.append(row)
    return rows
