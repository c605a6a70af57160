"""Error hierarchy shared by the services.

    ComptaflowError
    ├── TransientError      — worth retrying: the message is requeued (bounded by the delivery limit)
    │   └── DependencyUnavailable — a broker, database or object store did not answer
    ├── PermanentError      — retrying cannot help: the message is dead-lettered, the job marked FAILED
    │   ├── InvalidMessage  — a message that does not match its contract
    │   └── NotFound        — the thing a message names does not exist
    └── ConfigurationError  — the process cannot start as configured (said at start-up, never retried)

Adapters translate third-party exceptions (asyncpg, aiormq, botocore) into these at their edge; each
adapter's own subclasses are drawn in its docstring (asyncpg's: `db.DatabaseUnavailable`, a
DependencyUnavailable; `db.DatabaseConflict`, transient; `db.DatabaseRefused`, permanent).
"""

from __future__ import annotations


class ComptaflowError(Exception):
    """Base of every error Comptaflow raises on purpose."""


class TransientError(ComptaflowError):
    pass


class DependencyUnavailable(TransientError):
    pass


class PermanentError(ComptaflowError):
    pass


class InvalidMessage(PermanentError):
    pass


class NotFound(PermanentError):
    pass


class ConfigurationError(ComptaflowError):
    pass
