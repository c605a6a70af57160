"""The fields of a FEC (Fichier des Écritures Comptables, article A47 A-1 of the Livre des procédures
fiscales), in their regulatory order and spelling: read by the period validator (uploaded FECs) and by
the Pennylane sync (Pennylane's FEC exports). The test generators and the fakes spell them on their own,
so that a mistake here is caught by them rather than copied."""

from __future__ import annotations

from typing import Final

FIELDS: Final = (
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
"""The 18 fields every FEC has (`Debit`/`Credit` may be `Montant`/`Sens` instead)."""
EXTRA: Final = ("DateRglt", "ModeRglt", "NatOp", "IdClient")
"""Fields a FEC may add (BNC and cash-basis accounting)."""
