"""FEC files (Fichier des Écritures Comptables, docs/fec.md) with the values a reader must find.

`write_fec(path, spec)` writes a balanced FEC of about `spec.lines` data lines (whole entries of 2-5
lines: purchases, sales, payments, bank fees, salaries, VAT settlements, one opening entry `AN` on the
first day of every fiscal year) and returns a `FecFile`: line and entry counts, period, per-account and
per-third-party sums, labels and totals, all accumulated from the values as they were written, with
Python `Decimal` arithmetic, independently of any reader.

Each `FecSpec` field switches on one real-world quirk of §B (separator, trailing separator, padding,
zero-padded amounts, Montant/Sens, 22 columns, header case, BOM, encoding, line ending, dates with a
time, empty ValidDate, EcritureNum `0`, lower-case journal codes, decimal point, one unbalanced entry,
one truncated line). Lines are built with string joins per line and written in large encoded chunks,
so a 1,000,000-line file takes seconds.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

SEPARATORS = ("\t", "|", ";", ",")
ENCODINGS = ("utf-8", "iso-8859-15", "cp1252", "cp850")
LINE_ENDINGS = ("\n", "\r\n", "\r\r\n")
AMOUNT_STYLES = ("debit_credit", "montant_sens_dc", "montant_sens_pm1")
HEADER_STYLES = ("canonical", "lower", "upper", "variant")

COLUMNS: tuple[str, ...] = (
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
EXTRA_COLUMNS: tuple[str, ...] = ("DateRglt", "ModeRglt", "NatOp", "IdClient")
# Padded layout: width of every column (amount columns are left-padded, the others right-padded).
_WIDTHS: dict[str, int] = {
    "JournalCode": 11,
    "JournalLib": 24,
    "EcritureNum": 11,
    "EcritureDate": 17,
    "CompteNum": 9,
    "CompteLib": 50,
    "CompAuxNum": 10,
    "CompAuxLib": 34,
    "PieceRef": 14,
    "PieceDate": 17,
    "EcritureLib": 60,
    "Debit": 16,
    "Credit": 16,
    "Montant": 16,
    "Sens": 4,
    "EcritureLet": 11,
    "DateLet": 17,
    "ValidDate": 17,
    "Montantdevise": 16,
    "Idevise": 7,
    "DateRglt": 17,
    "ModeRglt": 8,
    "NatOp": 24,
    "IdClient": 8,
}
_AMOUNT_COLUMNS = frozenset({"Debit", "Credit", "Montant", "Montantdevise"})

JOURNALS: dict[str, str] = {
    "AC": "Achats",
    "VT": "Ventes",
    "BQ": "Banque",
    "OD": "Opérations diverses",
    "AN": "À nouveaux",
}
ACCOUNTS: dict[str, str] = {
    "101300": "Capital souscrit appelé versé",
    "110000": "Report à nouveau (solde créditeur)",
    "401000": "Fournisseurs",
    "411000": "Clients",
    "421000": "Personnel - rémunérations dues",
    "431000": "Sécurité sociale",
    "437000": "Autres organismes sociaux",
    "445510": "TVA à décaisser",
    "445660": "TVA déductible sur biens et services",
    "445710": "TVA collectée",
    "512000": "Banque Crédit Coopératif",
    "606100": "Achats non stockés de matières et fournitures",
    "606400": "Fournitures administratives",
    "613200": "Locations immobilières",
    "622600": "Honoraires",
    "626000": "Frais postaux et de télécommunications",
    "627000": "Services bancaires et assimilés",
    "641000": "Rémunérations du personnel",
    "645100": "Cotisations à l'URSSAF",
    "706000": "Prestations de services",
    "708500": "Ports et frais accessoires facturés",
}
_SUPPLIER_NAMES = (
    "Électricité de France",
    "Orange Business",
    "Bureau Vallée Créteil",
    "Cœur de Forge SARL",
    "Hôtel du Lac",
    "Librairie Pérec",
    "Façades & Rénovation",
    "Crêperie de l'Étang",
    "SCI du Château",
    "Transports Lefèvre",
    "Bœuf & Compagnie",
    "Imprimerie Lenôtre",
)
_CLIENT_NAMES = (
    "Boulangerie Léa",
    "Éditions Hélios",
    "Garçon Boucher SAS",
    "Cabinet Hervé Médecin",
    "Œnothèque Bordelaise",
    "Pâtisserie Ménard",
    "Agence Côté Mer",
    "Fêtes et Événements",
    "Brasserie du Théâtre",
    "Menuiserie Gérôme",
    "Pharmacie de la Gare",
    "Société Nîmoise de Conseil",
    "Atelier Noël",
    "Crèche Les Écureuils",
)
# Characters of the labels that CP850 lacks, and how a DOS program writes them instead.
_CP850_FALLBACK = str.maketrans({"œ": "oe", "Œ": "Oe", "€": "EUR"})
_CENT = Decimal("0.01")
_ZERO = Decimal("0.00")
_VAT = Decimal("0.20")


@dataclass(frozen=True)
class FecSpec:
    """One generated FEC; every field but `lines`, `seed`, `start` and `fiscal_years` is one quirk of §B.

    - `lines`: data lines wanted (whole entries of 2-5 lines, so the file has a few more: `FecFile.lines`);
    - `separator`: `\\t`, `|`, `;` or `,` (comma: every field quoted with `"`, amounts keep their comma);
    - `trailing_separator`: a separator after the last field of every data line; `header_trailing`: the
      same on the header line (independent, so either can be tested alone);
    - `padded`: every field padded with spaces to a fixed width per column (amounts on the left);
    - `amounts`: Debit/Credit, or Montant + Sens (`D`/`C` or `+1`/`-1`);
    - `header_style`: canonical names, all lower case, all upper case, or `MontantDevise`/`IdDevise`;
    - `bom` needs `encoding="utf-8"`; with `cp850` the labels use `oe` and `EUR` for `œ` and `€`;
    - `unbalanced_cents`: the first debit line of one entry (`FecFile.unbalanced_entry`) is off by that
      many cents (the sums of `FecFile` include the offset: they are what was written);
    - `truncate_line`: that file line (header = 1, so ≥ 2) keeps only its first half of fields; its amounts
      are not written, so they are in no sum, but it counts in `FecFile.lines`.
    """

    lines: int = 2000
    seed: int = 1
    start: date = date(2024, 1, 1)
    fiscal_years: int = 1
    separator: str = "\t"
    trailing_separator: bool = False
    header_trailing: bool = False
    padded: bool = False
    zero_padded_amounts: bool = False
    amounts: str = "debit_credit"
    extra_columns: bool = False
    header_style: str = "canonical"
    bom: bool = False
    encoding: str = "utf-8"
    line_ending: str = "\n"
    date_time: bool = False
    empty_valid_date: bool = False
    ecriture_num_zero: bool = False
    lowercase_journals: bool = False
    decimal_point: bool = False
    unbalanced_cents: int = 0
    truncate_line: int | None = None

    def __post_init__(self) -> None:
        choices = {
            "separator": (self.separator, SEPARATORS),
            "encoding": (self.encoding, ENCODINGS),
            "line_ending": (self.line_ending, LINE_ENDINGS),
            "amounts": (self.amounts, AMOUNT_STYLES),
            "header_style": (self.header_style, HEADER_STYLES),
        }
        for name, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"FecSpec.{name}={value!r}: expected one of {allowed}")
        if self.bom and self.encoding != "utf-8":
            raise ValueError("FecSpec.bom needs encoding='utf-8'")
        if self.lines < 1 or self.fiscal_years < 1 or self.unbalanced_cents < 0:
            raise ValueError("FecSpec: lines and fiscal_years must be ≥ 1, unbalanced_cents ≥ 0")
        if self.truncate_line is not None and not 2 <= self.truncate_line <= self.lines + 1:
            raise ValueError(f"FecSpec.truncate_line must be a data line, 2..{self.lines + 1}")

    @property
    def columns(self) -> tuple[str, ...]:
        """Column names in file order, canonical spelling (before `header_style`)."""
        amounts = ("Debit", "Credit") if self.amounts == "debit_credit" else ("Montant", "Sens")
        names = (*COLUMNS[:11], *amounts, *COLUMNS[13:])
        return (*names, *EXTRA_COLUMNS) if self.extra_columns else names

    def header_names(self) -> list[str]:
        names = list(self.columns)
        if self.header_style == "lower":
            return [name.lower() for name in names]
        if self.header_style == "upper":
            return [name.upper() for name in names]
        if self.header_style == "variant":
            return [{"Montantdevise": "MontantDevise", "Idevise": "IdDevise"}.get(name, name) for name in names]
        return names


EVERY_QUIRK = FecSpec(
    separator=";",
    trailing_separator=True,
    padded=True,
    zero_padded_amounts=True,
    amounts="montant_sens_pm1",
    extra_columns=True,
    header_style="variant",
    encoding="cp850",
    line_ending="\r\r\n",
    date_time=True,
    empty_valid_date=True,
    ecriture_num_zero=True,
    lowercase_journals=True,
    fiscal_years=2,
)
"""Every variant of docs/fec.md that can be combined, at once (`dataclasses.replace` for size and seed)."""


@dataclass(frozen=True)
class FecFile:
    """What was written, counted as it was written. Keys are codes as written (journal case included);
    `unbalanced_entry` is (JournalCode, EcritureNum), or (JournalCode, "YYYYMMDD/PieceRef") when every
    EcritureNum is `0`."""

    path: Path
    spec: FecSpec
    lines: int
    entries: int
    period_start: date
    period_end: date
    accounts: dict[str, tuple[Decimal, Decimal]]
    tiers: dict[str, tuple[Decimal, Decimal]]
    account_labels: dict[str, str]
    tiers_labels: dict[str, str]
    journals: dict[str, str]
    total_debit: Decimal
    total_credit: Decimal
    unbalanced_entry: tuple[str, str] | None
    truncated_line: int | None


# One line of an entry before rendering: account, (tiers code, name) or None, label, debit, credit,
# lettered?, (Montantdevise, Idevise) or None.
_Line = tuple[str, tuple[str, str] | None, str, Decimal, Decimal, bool, tuple[Decimal, str] | None]
# Entry kinds and their line counts (the AN opening entry, 5 lines, is added once per fiscal year).
_KINDS: tuple[tuple[str, int], ...] = (
    ("purchase", 3),
    ("purchase", 4),
    ("sale", 3),
    ("sale", 4),
    ("supplier_payment", 2),
    ("customer_receipt", 2),
    ("customer_receipt", 2),
    ("bank_fees", 3),
    ("salary", 4),
    ("salary", 5),
    ("vat", 3),
)
_JOURNAL_OF = {
    "purchase": "AC",
    "sale": "VT",
    "supplier_payment": "BQ",
    "customer_receipt": "BQ",
    "bank_fees": "BQ",
    "salary": "OD",
    "vat": "OD",
}
_PIECE_PREFIX = {"AC": "FF", "VT": "FA", "BQ": "RB", "OD": "OD", "AN": "AN"}


def _cents(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low, high)).scaleb(-2)


def _amount(rng: random.Random) -> Decimal:
    """Mostly everyday amounts, sometimes six or seven figures."""
    return _cents(rng, 100_000_00, 900_000_00) if rng.random() < 0.05 else _cents(rng, 5_00, 25_000_00)


def _vat(net: Decimal) -> Decimal:
    return (net * _VAT).quantize(_CENT, rounding=ROUND_HALF_UP)


class _Content:
    """Seeded entries of a small French company, labels fitted to the target encoding."""

    def __init__(self, spec: FecSpec) -> None:
        self.rng = random.Random(spec.seed)  # noqa: S311 - seeded fixture data, not security
        self.cp850 = spec.encoding == "cp850"
        fit = self.fit
        self.accounts = {code: fit(label) for code, label in ACCOUNTS.items()}
        self.suppliers = [(f"F{i + 1:04d}", fit(name)) for i, name in enumerate(_SUPPLIER_NAMES)]
        self.clients = [(f"C{i + 1:04d}", fit(name)) for i, name in enumerate(_CLIENT_NAMES)]
        self.euro = fit("€")

    def fit(self, text: str) -> str:
        """The label as the target encoding can write it (CP850 has no `œ`, `Œ`, `€`)."""
        return text.translate(_CP850_FALLBACK) if self.cp850 else text

    def opening(self) -> list[_Line]:
        rng = self.rng
        capital, reserve = Decimal("10000.00"), _cents(rng, 1_000_00, 50_000_00)
        owed, due = _cents(rng, 500_00, 9_000_00), _cents(rng, 500_00, 9_000_00)
        label = self.fit("Reprise des soldes à nouveau")
        return [
            ("512000", None, label, capital + reserve + owed - due, _ZERO, False, None),
            ("411000", self.clients[0], label, due, _ZERO, False, None),
            ("101300", None, label, _ZERO, capital, False, None),
            ("110000", None, label, _ZERO, reserve, False, None),
            ("401000", self.suppliers[0], label, _ZERO, owed, False, None),
        ]

    def entry(self, kind: str, size: int, piece: str) -> list[_Line]:  # noqa: PLR0911 - one return per kind
        rng = self.rng
        lettered = rng.random() < 0.4
        if kind == "purchase":
            tiers = rng.choice(self.suppliers)
            label = f"Facture n°{piece} {tiers[1]}"
            nets = [_amount(rng) for _ in range(size - 2)]
            expenses = rng.sample(("606100", "606400", "613200", "622600", "626000"), size - 2)
            vat = sum((_vat(net) for net in nets), _ZERO)
            total = sum(nets, vat)
            currency = ((total * Decimal("1.08")).quantize(_CENT), "USD") if rng.random() < 0.05 else None
            lines: list[_Line] = [
                (code, None, label, net, _ZERO, False, None) for code, net in zip(expenses, nets, strict=True)
            ]
            lines.append(("445660", None, label, vat, _ZERO, False, None))
            lines.append(("401000", tiers, label, _ZERO, total, lettered, currency))
            return lines
        if kind == "sale":
            tiers = rng.choice(self.clients)
            label = f"Facture n°{piece} {tiers[1]}"
            net = _amount(rng)
            freight = _cents(rng, 10_00, 150_00) if size == 4 else _ZERO
            vat = _vat(net + freight)
            lines = [
                ("411000", tiers, label, net + freight + vat, _ZERO, lettered, None),
                ("706000", None, label, _ZERO, net, False, None),
            ]
            if size == 4:
                lines.append(("708500", None, label, _ZERO, freight, False, None))
            lines.append(("445710", None, label, _ZERO, vat, False, None))
            return lines
        if kind == "supplier_payment":
            tiers = rng.choice(self.suppliers)
            amount = _amount(rng)
            label = f"Virement {tiers[1]}"
            return [
                ("401000", tiers, label, amount, _ZERO, lettered, None),
                ("512000", None, label, _ZERO, amount, False, None),
            ]
        if kind == "customer_receipt":
            tiers = rng.choice(self.clients)
            amount = _amount(rng)
            label = f"Règlement {tiers[1]} (chèque reçu)"
            return [
                ("512000", None, label, amount, _ZERO, False, None),
                ("411000", tiers, label, _ZERO, amount, lettered, None),
            ]
        if kind == "bank_fees":
            fees = _cents(rng, 5_00, 80_00)
            vat = _vat(fees)
            label = f"Frais de tenue de compte forfait {self.euro}"
            return [
                ("627000", None, label, fees, _ZERO, False, None),
                ("445660", None, label, vat, _ZERO, False, None),
                ("512000", None, label, _ZERO, fees + vat, False, None),
            ]
        if kind == "salary":
            gross = _cents(rng, 1_800_00, 6_000_00)
            employee = (gross * Decimal("0.22")).quantize(_CENT)
            employer = (gross * Decimal("0.42")).quantize(_CENT)
            label = f"Paie du mois - {self.fit('Hélène Crémieux')}"
            other = (employer * Decimal("0.15")).quantize(_CENT) if size == 5 else _ZERO
            lines = [
                ("641000", None, label, gross, _ZERO, False, None),
                ("645100", None, label, employer, _ZERO, False, None),
                ("421000", None, label, _ZERO, gross - employee, False, None),
                ("431000", None, label, _ZERO, employee + employer - other, False, None),
            ]
            if size == 5:
                lines.append(("437000", None, label, _ZERO, other, False, None))
            return lines
        collected = _cents(rng, 1_000_00, 40_000_00)
        deductible = (collected * Decimal(rng.randint(10, 90)) / 100).quantize(_CENT)
        label = self.fit("Déclaration de TVA (CA3) à décaisser")
        return [
            ("445710", None, label, collected, _ZERO, False, None),
            ("445660", None, label, _ZERO, deductible, False, None),
            ("445510", None, label, _ZERO, collected - deductible, False, None),
        ]


def _add_months(day: date, months: int) -> date:
    month = day.month - 1 + months
    year, month = day.year + month // 12, month % 12 + 1
    for last in (31, 30, 29, 28):
        try:
            return date(year, month, min(day.day, last))
        except ValueError:
            continue
    raise AssertionError("unreachable")


def _plan(spec: FecSpec, rng: random.Random) -> list[tuple[date, str, int]]:
    """(date, kind, size) of every entry in file order: each year opens with `AN` on its first day,
    then entries on sorted random days of that year."""
    share, extra = divmod(spec.lines, spec.fiscal_years)
    plan: list[tuple[date, str, int]] = []
    for year in range(spec.fiscal_years):
        first = _add_months(spec.start, 12 * year)
        days = (_add_months(spec.start, 12 * (year + 1)) - first).days
        target = share + (1 if year < extra else 0)
        plan.append((first, "opening", 5))
        kinds: list[tuple[str, int]] = []
        count = 5
        while count < target:
            kinds.append(rng.choice(_KINDS))
            count += kinds[-1][1]
        offsets = sorted(rng.randrange(days) for _ in kinds)
        plan.extend(
            (first + timedelta(days=offset), kind, size) for offset, (kind, size) in zip(offsets, kinds, strict=True)
        )
    return plan


class _Renderer:
    """Turns one line's field values into text, with the spec's separator, padding and quoting."""

    def __init__(self, spec: FecSpec) -> None:
        self.spec = spec
        self.eol = spec.line_ending
        self.trail = spec.separator if spec.trailing_separator else ""
        columns = spec.columns
        self.widths = [_WIDTHS[name] for name in columns]
        self.left = [name in _AMOUNT_COLUMNS for name in columns]

    def join(self, fields: list[str], *, trailing: str) -> str:
        spec = self.spec
        if spec.padded:
            fields = [
                field.rjust(width) if left else field.ljust(width)
                for field, width, left in zip(fields, self.widths, self.left, strict=False)
            ]
        if spec.separator == ",":
            return '"' + '","'.join(fields) + '"' + trailing
        return spec.separator.join(fields) + trailing

    def line(self, fields: list[str]) -> str:
        return self.join(fields, trailing=self.trail) + self.eol

    def header(self) -> str:
        return self.join(self.spec.header_names(), trailing=self.spec.separator if self.spec.header_trailing else "")


def write_fec(path: Path, spec: FecSpec = FecSpec()) -> FecFile:  # noqa: PLR0912, PLR0915 - see below
    """Write a FEC at `path` (parent created if needed) and return what a correct reader must find.

    One flat loop with local variables: at a million lines, a function call per field or per line is
    what would make it slow."""
    path.parent.mkdir(parents=True, exist_ok=True)
    content = _Content(spec)
    rng = content.rng
    plan = _plan(spec, rng)
    render = _Renderer(spec)
    extra, pm1, dc = spec.extra_columns, spec.amounts == "montant_sens_pm1", spec.amounts == "debit_credit"
    time_suffix = " 00:00:00" if spec.date_time else ""
    date_text: dict[date, str] = {}

    def day(value: date) -> str:
        text = date_text.get(value)
        if text is None:
            text = date_text[value] = value.strftime("%Y%m%d") + time_suffix
        return text

    def money(value: Decimal) -> str:
        text = str(value)
        if not spec.decimal_point:
            text = text.replace(".", ",")
        return text.zfill(13) if spec.zero_padded_amounts else text

    zero_text = money(_ZERO)
    journal_text = {code: code.lower() if spec.lowercase_journals else code for code in JOURNALS}
    journals: dict[str, str] = {}
    accounts: dict[str, list[Decimal]] = {}
    tiers: dict[str, list[Decimal]] = {}
    tiers_labels: dict[str, str] = {}
    counters = dict.fromkeys(JOURNALS, 0)
    unbalanced_at = len(plan) // 2 if spec.unbalanced_cents else -1
    unbalanced: tuple[str, str] | None = None
    letter = 0
    file_line = 1  # the header
    chunk: list[str] = [render.header() + render.eol]
    chunk_lines = 0
    with path.open("wb") as out:
        if spec.bom:
            out.write(b"\xef\xbb\xbf")
        for number, (entry_day, kind, size) in enumerate(plan, start=1):
            journal = "AN" if kind == "opening" else _JOURNAL_OF[kind]
            counters[journal] += 1
            piece = f"{_PIECE_PREFIX[journal]}{entry_day.year}-{counters[journal]:06d}"
            entry_lines = content.opening() if kind == "opening" else content.entry(kind, size, piece)
            code = journal_text[journal]
            num = "0" if spec.ecriture_num_zero else str(number)
            when = day(entry_day)
            piece_day = day(entry_day - timedelta(days=rng.randrange(8)) if journal in ("AC", "VT") else entry_day)
            valid = "" if spec.empty_valid_date else day(entry_day + timedelta(days=rng.randrange(1, 20)))
            journal_label = journals.setdefault(code, content.fit(JOURNALS[journal]))
            head = [code, journal_label, num, when]
            if number - 1 == unbalanced_at:
                unbalanced = (code, f"{when[:8]}/{piece}" if spec.ecriture_num_zero else num)
            shifted = number - 1 != unbalanced_at
            for account, third, label, generated_debit, credit, lettered, currency in entry_lines:
                debit = generated_debit
                if not shifted and debit:
                    debit += Decimal(spec.unbalanced_cents).scaleb(-2)
                    shifted = True
                file_line += 1
                if dc:
                    amounts = [money(debit) if debit else zero_text, money(credit) if credit else zero_text]
                else:
                    sens = ("+1" if debit else "-1") if pm1 else ("D" if debit else "C")
                    amounts = [money(debit or credit), sens]
                if lettered:
                    letter += 1
                    lettering = [_letters(letter), day(entry_day + timedelta(days=rng.randrange(5, 60)))]
                else:
                    lettering = ["", ""]
                fields = [
                    *head,
                    account,
                    content.accounts[account],
                    third[0] if third else "",
                    third[1] if third else "",
                    piece,
                    piece_day,
                    label,
                    *amounts,
                    *lettering,
                    valid,
                    money(currency[0]) if currency else "",
                    currency[1] if currency else "",
                ]
                if extra:
                    paid = third is not None and journal in ("AC", "VT")
                    fields += [
                        day(entry_day + timedelta(days=30)) if paid else "",
                        ("VIR" if journal == "AC" else "CHQ") if paid else "",
                        "",
                        third[0] if third and journal == "VT" else "",
                    ]
                if file_line == spec.truncate_line:
                    chunk.append(render.join(fields[: len(fields) // 2], trailing="") + render.eol)
                else:
                    chunk.append(render.line(fields))
                    sums = accounts.get(account)
                    if sums is None:
                        sums = accounts[account] = [_ZERO, _ZERO]
                    sums[0] += debit
                    sums[1] += credit
                    if third:
                        tiers_labels[third[0]] = third[1]
                        sums = tiers.get(third[0])
                        if sums is None:
                            sums = tiers[third[0]] = [_ZERO, _ZERO]
                        sums[0] += debit
                        sums[1] += credit
            chunk_lines += len(entry_lines)
            if chunk_lines >= 20_000:
                out.write("".join(chunk).encode(spec.encoding))
                chunk, chunk_lines = [], 0
        out.write("".join(chunk).encode(spec.encoding))
    return FecFile(
        path=path,
        spec=spec,
        lines=file_line - 1,
        entries=len(plan),
        period_start=plan[0][0],
        period_end=max(entry[0] for entry in plan),
        accounts={code: (d, c) for code, (d, c) in sorted(accounts.items())},
        tiers={code: (d, c) for code, (d, c) in sorted(tiers.items())},
        account_labels={code: content.accounts[code] for code in sorted(accounts)},
        tiers_labels=dict(sorted(tiers_labels.items())),
        journals=journals,
        total_debit=sum((d for d, _ in accounts.values()), _ZERO),
        total_credit=sum((c for _, c in accounts.values()), _ZERO),
        unbalanced_entry=unbalanced,
        truncated_line=spec.truncate_line,
    )


def _letters(number: int) -> str:
    """Lettering codes AA, AB, …, ZZ, then around again."""
    first, second = divmod((number - 1) % 676, 26)
    return chr(65 + first) + chr(65 + second)
