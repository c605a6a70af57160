"""Finding the header row of each file and which column holds which field (docs/api.md, Excel exports).

The header row is the first row holding at least three known labels of the file's kind (or, for the
reference files whose required columns are fewer than three, the first row holding all of them).
Labels are compared in their normalised form (see `labels`). When two columns claim one field, the
better synonym wins and the other may take the field's fallback (`Libellé` + `Intitulé` in a ledger:
the entry label and the account label).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import polars as pl

from comptaflow.period_validator.excel.labels import normalise_all, normalised
from comptaflow.period_validator.findings import Code, FileKind, Finding

SEARCH_ROWS = 200
"""Header rows further down than this are not looked for."""

MIN_LABELS = 3


@dataclass(frozen=True, slots=True)
class Field:
    name: str
    display: str
    synonyms: tuple[str, ...]
    required: bool = False
    fallback: str | None = None


_DATE = Field(
    "date",
    "Date",
    ("Date", "Date écriture", "Date comptable", "Date pièce", "Date opération", "Date de saisie"),
    required=True,
)
_JOURNAL = Field(
    "journal", "Journal", ("Journal", "Code journal", "Jnl", "JL", "Jal", "Code jnl", "Code jal"), required=True
)
_LABEL = Field(
    "label",
    "Libellé",
    ("Libellé", "Libellé écriture", "Libellé opération", "Libellé mouvement", "Intitulé", "Désignation"),
    required=True,
    fallback="account_label",
)
_DEBIT = Field(
    "debit",
    "Débit",
    ("Débit", "Mouvement débit", "Mouvements débit", "Montant débit", "Débit mouvement"),
    required=True,
)
_CREDIT = Field(
    "credit",
    "Crédit",
    ("Crédit", "Mouvement crédit", "Mouvements crédit", "Montant crédit", "Crédit mouvement"),
    required=True,
)
_PIECE = Field(
    "piece",
    "Pièce",
    ("Pièce", "N° pièce", "Numéro de pièce", "Réf.", "Référence", "Réf. pièce", "Pièce n°", "N° de pièce"),
)
_BALANCE = Field("balance", "Solde", ("Solde", "Solde progressif", "Solde cumulé", "Solde cumul"))
_LETTRAGE = Field("lettrage", "Lettrage", ("Lettrage", "Let.", "Lettr.", "Code lettrage", "Lett."))
_DUE = Field("due_date", "Échéance", ("Échéance", "Date échéance", "Date d'échéance", "Date limite"))
_ACCOUNT_LABEL = Field(
    "account_label",
    "Intitulé compte",
    ("Intitulé compte", "Libellé compte", "Intitulé du compte", "Nom du compte", "Intitulé tiers", "Nom tiers"),
)
_GENERAL_ACCOUNT = (
    "Compte",
    "N° compte",
    "Numéro de compte",
    "Compte général",
    "Compte comptable",
    "N° compte général",
)
_TIERS_CODE = (
    "Tiers",
    "Compte tiers",
    "Code tiers",
    "Compte auxiliaire",
    "Auxiliaire",
    "N° tiers",
    "Compte aux.",
    "Code auxiliaire",
    "N° compte tiers",
)
_COLLECTIF = ("Compte collectif", "Collectif", "Compte de rattachement")

_LEDGER_COMMON = (_DATE, _JOURNAL, _PIECE, _LABEL, _DEBIT, _CREDIT, _BALANCE, _LETTRAGE, _DUE, _ACCOUNT_LABEL)

FIELDS: dict[FileKind, tuple[Field, ...]] = {
    FileKind.GRAND_LIVRE_COMPTES: (*_LEDGER_COMMON, Field("account", "Compte", _GENERAL_ACCOUNT)),
    FileKind.GRAND_LIVRE_TIERS: (
        *_LEDGER_COMMON,
        Field("account", "Tiers", _TIERS_CODE),
        Field("collectif", "Compte collectif", _COLLECTIF),
        Field("general_account", "Compte", _GENERAL_ACCOUNT),
    ),
    FileKind.PLAN_COMPTES: (
        Field(
            "account", "Compte", ("Compte", "N° compte", "Numéro", "Numéro de compte", "Compte général"), required=True
        ),
        Field("label", "Intitulé", ("Intitulé", "Libellé", "Intitulé compte", "Libellé compte", "Nom"), required=True),
        Field("account_type", "Type", ("Type", "Nature", "Type de compte", "Type compte")),
        Field("class", "Classe", ("Classe",)),
        Field("direction", "Sens", ("Sens",)),
    ),
    FileKind.PLAN_TIERS: (
        Field(
            "code",
            "Code",
            ("Code", "Code tiers", "Compte tiers", "Compte auxiliaire", "Tiers", "Auxiliaire"),
            required=True,
        ),
        Field(
            "name",
            "Nom",
            ("Nom", "Raison sociale", "Intitulé", "Libellé", "Dénomination", "Nom du tiers"),
            required=True,
        ),
        Field("collectif", "Compte collectif", _COLLECTIF),
        Field("tiers_type", "Type", ("Type", "Type tiers", "Type de tiers", "Nature", "Catégorie")),
        Field("siret", "SIRET", ("SIRET", "N° SIRET", "Siret / Siren", "SIREN")),
        Field("address", "Adresse", ("Adresse", "Adresse 1", "Adresse ligne 1", "Rue")),
        Field("postal_code", "Code postal", ("Code postal", "CP")),
        Field("city", "Ville", ("Ville", "Commune", "Localité")),
        Field("country", "Pays", ("Pays", "Code pays")),
        Field("email", "Email", ("Email", "E-mail", "Mail", "Courriel", "Adresse email", "Adresse e-mail")),
        Field("phone", "Téléphone", ("Téléphone", "Tél.", "Tel", "N° téléphone", "Portable")),
    ),
    FileKind.CODE_JOURNAL: (
        Field("code", "Code", ("Code", "Code journal", "Journal", "Jnl", "Code jnl"), required=True),
        Field(
            "label", "Libellé", ("Libellé", "Libelle", "Intitulé", "Libellé journal", "Intitulé journal"), required=True
        ),
        Field("journal_type", "Type", ("Type", "Type journal", "Type de journal", "Nature")),
    ),
}


def _lookup(fields: Sequence[Field]) -> dict[str, tuple[str, int]]:
    """Normalised label -> (field name, rank of the synonym: lower is better)."""
    table: dict[str, tuple[str, int]] = {}
    for item in fields:
        for rank, label in enumerate(normalise_all(item.synonyms)):
            table.setdefault(label, (item.name, rank))
    return table


LOOKUP: dict[FileKind, dict[str, tuple[str, int]]] = {kind: _lookup(fields) for kind, fields in FIELDS.items()}
KNOWN_LABELS: dict[FileKind, list[str]] = {kind: sorted(table) for kind, table in LOOKUP.items()}


@dataclass(frozen=True, slots=True)
class Header:
    """The header row (0-based index in the grid) and the grid column of each recognised field."""

    index: int
    columns: Mapping[str, str]
    labels: Mapping[str, str]

    @property
    def sheet_row(self) -> int:
        return self.index + 1


class HeaderNotFound(Exception):
    def __init__(self, message: str, row: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.row = row

    def finding(self, kind: FileKind) -> Finding:
        return Finding(Code.HEADER_NOT_FOUND, self.message, file=kind.value, row=self.row)


def _assign(
    kind: FileKind, normalised_row: Sequence[str | None], raw_row: Sequence[str | None], names: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    lookup = LOOKUP[kind]
    fallbacks = {item.name: item.fallback for item in FIELDS[kind]}
    claims = sorted(
        (lookup[value][1], position, lookup[value][0])
        for position, value in enumerate(normalised_row)
        if value and value in lookup
    )
    columns: dict[str, str] = {}
    labels: dict[str, str] = {}
    for _rank, position, name in claims:
        target: str | None = name
        if target in columns:
            target = fallbacks.get(name)
        if target is not None and target not in columns:
            columns[target] = names[position]
            labels[target] = str(raw_row[position])
    return columns, labels


def find_header(kind: FileKind, grid: pl.DataFrame) -> Header:
    """The header row of `grid` (a sheet read as strings), or HeaderNotFound saying what is missing."""
    head = grid.head(SEARCH_ROWS)
    names = head.columns
    raw_rows = head.rows()
    normal_rows = head.select(normalised(pl.col(name)) for name in names).rows()
    fields = FIELDS[kind]
    required = [item for item in fields if item.required]
    best: tuple[int, int, dict[str, str]] | None = None
    for index, (raw_row, normal_row) in enumerate(zip(raw_rows, normal_rows, strict=True)):
        columns, labels = _assign(kind, normal_row, raw_row, names)
        complete = all(item.name in columns for item in required)
        if len(columns) >= MIN_LABELS or (complete and len(columns) >= len(required)):
            if complete:
                return Header(index, columns, labels)
            if best is None:
                best = (index, len(columns), labels)
    if best is not None:
        index, _count, labels = best
        missing = [f"{item.display} ({', '.join(item.synonyms[1:4])}…)" for item in required if item.name not in labels]
        found = ", ".join(labels.values())
        raise HeaderNotFound(
            f"header row {index + 1} ({found}) lacks the required column(s): {'; '.join(missing)}", index + 1
        )
    expected = ", ".join(item.display for item in fields[:6])
    raise HeaderNotFound(
        f"no header row found in the first {min(len(raw_rows), SEARCH_ROWS)} rows "
        f"(expected a row with at least {MIN_LABELS} labels such as {expected})"
    )
