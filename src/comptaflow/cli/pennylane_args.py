"""The arguments of `comptaflow pennylane …` (parsed before anything heavy is imported)."""

from __future__ import annotations

from typing import Any

from comptaflow.common.pennylane.tables import NAMES


def add_pennylane_parser(sub: Any) -> None:
    pennylane = sub.add_parser("pennylane", help="Pennylane sync commands")
    commands = pennylane.add_subparsers(dest="pennylane_command", required=True)
    run = commands.add_parser("sync", help="sync one tenant's Pennylane company now, with a progress bar per table")
    run.add_argument("--tenant", required=True, help="the tenant id")
    run.add_argument("--full", action="store_true", help="list every table whole instead of reading changelogs")
    run.add_argument("--table", action="append", dest="tables", choices=NAMES, help="only this table (repeatable)")
