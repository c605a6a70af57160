"""Comptaflow loader: validated periods into the warehouse (atomic per period, restorable)."""
