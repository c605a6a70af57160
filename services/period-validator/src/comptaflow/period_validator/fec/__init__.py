"""FEC files (Fichier des Écritures Comptables, article A47 A-1 LPF): reading, checks, normalised tables."""

from comptaflow.period_validator.fec.validation import declared_period, validate_fec

__all__ = ["declared_period", "validate_fec"]
