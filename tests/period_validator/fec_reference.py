"""An independent reading of FEC files for the tests: plain Python, no polars, none of the product's code.

It handles only what the fixtures hold (TAB separator, UTF-8, `,` decimals, CRLF/CR CR LF) and computes
per-account sums and the liasse fiscale boxes whose rule is a plain sum of account balances.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "fec"
REAL_FILES = ("0000000001FEC20220831", "000000000FEC20231231", "123456789FEC20500930")

# Repères of the liasse fiscale (forms 2033 and 2050-2053) whose rule is a sum of account balances
# (credit - debit of every account under a prefix, `-` negating it), as defined by the files' authors.
BOX_RULES: dict[str, str] = {
    # 2051 / 2052 / 2053 (régime réel normal)
    "DA": "+101 +108",
    "DB": "+104",
    "DD": "+1061",
    "DG": "+1068",
    "DH": "+11",
    "FA": "+707 +708 +7097",
    "FO": "+74",
    "FS": "-607 -6087 -6097",
    "FU": "-601 -602 -6091 -6092",
    "FW": "-604 -605 -606 -6094 -6095 -61 -62",
    "FX": "-63",
    "FY": "-641 -644 -648",
    "FZ": "-645 -646 -647",
    "GA": "-6811 -6812",
    "GE": "-651 -653 -654 -658",
    "GR": "-661 -664 -665 -668",
    "HA": "+771",
    "HB": "+775 +777 +778",
    "HE": "-671",
    "HF": "-675 -678",
    "HK": "-695 -698 -699",
    "HN": "+6 +7",
    # 2033-A / 2033-B (régime simplifié)
    "010": "-206 -207",
    "120": "+101 +108",
    "126": "+1061",
    "134": "+11",
    "214": "+701 +702 +703 +7091 +7092",
    "218": "+704 +705 +706",
    "234": "-607 -6087 -6097",
    "238": "-601 -602 -6091 -6092",
    "242": "-604 -605 -606 -6094 -6095 -61 -62",
    "244": "-63",
    "250": "-641 -644 -648",
    "252": "-645 -646 -647",
    "262": "-651 -653 -654 -658",
    "294": "-686 -661 -664 -665 -668 -666 -667",
    "300": "-671 -675 -678 -687",
    "306": "-695 -698 -699",
}


@dataclass(frozen=True)
class Reference:
    lines: int
    accounts: dict[str, tuple[Decimal, Decimal]]  # CompteNum → (debit, credit)
    tiers: dict[str, tuple[Decimal, Decimal]]  # CompAuxNum → (debit, credit)
    journals: set[str]

    def box(self, rule: str) -> int:
        total = Decimal(0)
        for term in rule.split():
            sign, prefix = term[0], term[1:]
            balance = sum(
                (credit - debit for account, (debit, credit) in self.accounts.items() if account.startswith(prefix)),
                Decimal(0),
            )
            total += balance if sign == "+" else -balance
        return int(total.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def read_reference(name: str) -> Reference:
    text = (FIXTURES / f"{name}.txt").read_bytes().decode("utf-8-sig")
    rows = [line.rstrip("\r").split("\t") for line in text.split("\n") if line.strip("\r")]
    header, data = rows[0], rows[1:]
    col = {name: header.index(name) for name in ("JournalCode", "CompteNum", "CompAuxNum", "Debit", "Credit")}
    accounts: dict[str, tuple[Decimal, Decimal]] = {}
    tiers: dict[str, tuple[Decimal, Decimal]] = {}
    for row in data:
        debit = Decimal(row[col["Debit"]].replace(",", "."))
        credit = Decimal(row[col["Credit"]].replace(",", "."))
        for sums, key in ((accounts, row[col["CompteNum"]]), (tiers, row[col["CompAuxNum"]].strip())):
            if key:
                d, c = sums.get(key, (Decimal(0), Decimal(0)))
                sums[key] = (d + debit, c + credit)
    return Reference(len(data), accounts, tiers, {row[col["JournalCode"]].strip() for row in data})


def expected_boxes(name: str) -> dict[str, int]:
    """The authors' `-expected.csv`: box → value; where a comment gives the true value (`// Expected : N`), N."""
    boxes: dict[str, int] = {}
    for line in (FIXTURES / f"{name}-expected.csv").read_text(encoding="utf-8").splitlines():
        value, _, comment = line.partition("//")
        parts = [part.strip() for part in value.split(",")]
        if len(parts) < 2 or not re.fullmatch(r"-?\d+", parts[1]):
            continue
        corrected = re.search(r"(-?\d+)\s*$", comment) if comment else None
        boxes[parts[0]] = int(corrected.group(1)) if corrected else int(parts[1])
    return boxes
