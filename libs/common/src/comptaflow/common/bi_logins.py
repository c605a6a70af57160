"""A tenant's read-only PostgreSQL login for Power BI: it reads the tenant's Pennylane schema and nothing else.

`issue()` creates the login (a PostgreSQL role `cf_bi_<tenant>`) or, when it exists, gives it a new password,
and records it in `bi_logins` (migration 0006), in the caller's transaction. The role:

- `LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 5`,
  a member of no role (checked after every change: a role someone altered by hand is refused, not reused);
- `default_transaction_read_only = on`, `statement_timeout = 5min`, `search_path` = the tenant's schema;
- `CONNECT` on the current database, `USAGE` on the tenant's schema `pennylane_<tenant>` (created when
  missing), `SELECT` on its tables, those there now and, through `ALTER DEFAULT PRIVILEGES`, those the
  platform's database user creates there later.

What keeps it from everything else is that nothing else is granted to it: the platform's tables in `public`
and the other tenants' schemas are granted to no one but the platform's user. The check after every change
also refuses a database where the login could create objects (schema `public` writable by `PUBLIC`, the
default before PostgreSQL 15): the read-only transaction default is a convenience for BI tools, not a
barrier, since a session may turn it off.

**Statements.** Role and schema names are identifiers built here from a validated tenant id, then quoted
(`quote_ident`); the values of queries are bound parameters. `CREATE ROLE`, `ALTER ROLE` and `GRANT` are
utility statements, which take no parameters: the password goes into them as a literal, and that literal
is not the password but its SCRAM-SHA-256 verifier, computed here (as `psql`'s `\\password` does), so the
password itself never reaches the server, its statement log or its replicas, and it is never logged here.
The verifier is checked against its strict alphabet before it is quoted (`quote_literal`).

**Concurrency.** Every issue holds the transaction lock `locks.Namespace.BI_LOGINS` (one for the database):
two transactions granting on the same database row at once fail with "tuple concurrently updated", so
logins are created and rotated one at a time (a rare, quick operation). The tenant's schema is created under
the Pennylane sync's schema lock (`Namespace.PENNYLANE_SCHEMA`).

**Errors.**

    PermanentError
    └── BiLoginRefused        — the login cannot be issued as asked (`code` says why):
                                `BI_LOGIN_CONFLICT`: the role exists without being this tenant's recorded
                                login (another database of the cluster, or made by hand), or it was altered;
                                `BI_LOGINS_UNAVAILABLE`: the platform's database user may not manage roles
                                (it needs CREATEROLE), or the login could create objects in this database

PostgreSQL roles belong to the cluster, not to one database: two Comptaflow databases on one server must not
share tenant ids, or the second refuses the first's login (`BI_LOGIN_CONFLICT`) instead of taking it over.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets as random_tokens
from dataclasses import dataclass
from typing import Final
from urllib.parse import parse_qs, unquote, urlsplit

import asyncpg
import structlog
from pydantic import SecretStr

from comptaflow.common import locks
from comptaflow.common.db import Conn
from comptaflow.common.errors import PermanentError
from comptaflow.common.pennylane.connections import schema_name

log = structlog.get_logger("comptaflow.bi_logins")

ROLE_PREFIX: Final = "cf_bi_"
CONNECTION_LIMIT: Final = 5
STATEMENT_TIMEOUT: Final = "5min"
PASSWORD_BYTES: Final = 24
"""Random bytes of a password (`secrets.token_urlsafe`: 32 characters)."""
SCRAM_ITERATIONS: Final = 4096
"""PostgreSQL's default `scram_iterations`."""
DEFAULT_PORT: Final = 5432

_TENANT_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
_ROLE_BODY_MAX = 56  # bi_logins.role_name: ^cf_bi_[a-z0-9_]{1,56}$, within PostgreSQL's 63-byte names
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")
_VERIFIER = re.compile(r"SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+")


class BiLoginRefused(PermanentError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class BiLogin:
    tenant_id: str
    user: str
    password: SecretStr
    database: str
    schema: str
    created: bool
    """True when the role was created, False when an existing one was given a new password."""


def role_name(tenant_id: str) -> str:
    """`cf_bi_` + the tenant id with `-` as `_`; an id over 56 characters keeps its first 47 and a hash of it all.

    Tenant ids hold no `_`, so the plain form never collides; the hashed form is recorded (`bi_logins.role_name`
    is unique) and a clash is refused rather than shared.
    """
    if not _TENANT_ID.fullmatch(tenant_id):
        raise ValueError(f"not a tenant id: {tenant_id!r}")
    body = tenant_id.replace("-", "_")
    if len(body) > _ROLE_BODY_MAX:
        digest = hashlib.blake2b(tenant_id.encode(), digest_size=4).hexdigest()
        body = f"{body[: _ROLE_BODY_MAX - 9]}_{digest}"
    return ROLE_PREFIX + body


def quote_ident(name: str) -> str:
    """A name built by this module (lower-case letters, digits, `_`), double-quoted; anything else is refused."""
    if not _IDENTIFIER.fullmatch(name):
        raise ValueError(f"not an identifier this module builds: {name!r}")
    return f'"{name}"'


def quote_database(name: str) -> str:
    """The current database's name (PostgreSQL's, not a client's) as an identifier: `"` doubled, NUL refused."""
    if not name or "\0" in name:
        raise ValueError("a database name is non-empty text without NUL")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(verifier: str) -> str:
    """A SCRAM-SHA-256 verifier as an SQL literal: its alphabet holds no quote nor backslash, checked here."""
    if not _VERIFIER.fullmatch(verifier):
        raise ValueError("not a SCRAM-SHA-256 verifier")
    return f"'{verifier}'"


def new_password() -> SecretStr:
    return SecretStr(random_tokens.token_urlsafe(PASSWORD_BYTES))


def scram_verifier(password: SecretStr, *, salt: bytes | None = None, iterations: int = SCRAM_ITERATIONS) -> str:
    """What PostgreSQL stores for `password` (RFC 5802/7677, as `pg_authid.rolpassword`).

    The password is ASCII (`token_urlsafe`), which SASLprep leaves as it is.
    """
    text = password.get_secret_value()
    if not text.isascii():
        raise ValueError("the password must be ASCII (SASLprep is not implemented here)")
    salt = salt if salt is not None else random_tokens.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", text.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def endpoint(database_url: str, *, host: str | None = None, port: int | None = None) -> tuple[str, int]:
    """Where a BI tool connects: `host`/`port` when given (COMPTAFLOW_BI_HOST/PORT), else the database URL's.

    A URL naming several hosts gives its first; one with a `host=` query (a Unix socket directory) gives it.
    """
    if host is not None and port is not None:
        return host, port
    parts = urlsplit(database_url)
    query = parse_qs(parts.query)
    netloc = parts.netloc.rpartition("@")[2].split(",")[0]
    url_host, url_port = netloc, ""
    if netloc.startswith("["):  # [IPv6]:port
        url_host, _, rest = netloc[1:].partition("]")
        url_port = rest.removeprefix(":")
    elif ":" in netloc:
        url_host, _, url_port = netloc.partition(":")
    if query.get("host"):
        url_host = query["host"][0].split(",")[0]
    if query.get("port"):
        url_port = query["port"][0].split(",")[0]
    found_host = host or unquote(url_host) or "localhost"
    found_port = port or (int(url_port) if url_port.isdigit() else DEFAULT_PORT)
    return found_host, found_port


_ATTRIBUTES = f"LOGIN NOCREATEDB NOCREATEROLE NOINHERIT CONNECTION LIMIT {CONNECTION_LIMIT} VALID UNTIL 'infinity'"
# Only a superuser may even name SUPERUSER, REPLICATION or BYPASSRLS in ALTER ROLE (PostgreSQL ≤ 15): a new
# role states them off, an existing one is checked instead (`_check`).
_CREATE_ONLY = "NOSUPERUSER NOREPLICATION NOBYPASSRLS"


async def issue(conn: Conn, tenant_id: str) -> BiLogin:
    """Create the tenant's login, or give the existing one a new password; call it in a transaction.

    Raises `BiLoginRefused` (see the module docstring); the transaction is then to be rolled back.
    """
    role = role_name(tenant_id)
    schema = schema_name(tenant_id)
    quoted_role, quoted_schema = quote_ident(role), quote_ident(schema)
    await locks.advisory_xact_lock(conn, locks.Namespace.BI_LOGINS, "roles")
    recorded: str | None = await conn.fetchval("SELECT role_name FROM bi_logins WHERE tenant_id = $1", tenant_id)
    exists: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
    if exists and recorded != role:
        raise BiLoginRefused(
            "BI_LOGIN_CONFLICT",
            f"the PostgreSQL role {role} exists but is not this tenant's recorded login "
            "(another database of the server, or a role made by hand): it is neither reused nor altered",
        )
    password = new_password()
    verifier = quote_literal(scram_verifier(password))
    database: str = await conn.fetchval("SELECT current_database()")
    try:
        # Identifiers: quote_ident/quote_database of names built above; the password: its checked verifier.
        if exists:
            await conn.execute(f"ALTER ROLE {quoted_role} WITH {_ATTRIBUTES} PASSWORD {verifier}")
        else:
            await conn.execute(f"CREATE ROLE {quoted_role} WITH {_ATTRIBUTES} {_CREATE_ONLY} PASSWORD {verifier}")
        await conn.execute(f"ALTER ROLE {quoted_role} SET default_transaction_read_only = on")
        await conn.execute(f"ALTER ROLE {quoted_role} SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        await conn.execute(f"ALTER ROLE {quoted_role} SET search_path = {quoted_schema}")
        await locks.advisory_xact_lock(conn, locks.Namespace.PENNYLANE_SCHEMA, tenant_id)
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted_schema}")
        await conn.execute(f"GRANT CONNECT ON DATABASE {quote_database(database)} TO {quoted_role}")
        await conn.execute(f"GRANT USAGE ON SCHEMA {quoted_schema} TO {quoted_role}")
        await conn.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {quoted_schema} TO {quoted_role}")
        await conn.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quoted_schema} GRANT SELECT ON TABLES TO {quoted_role}"
        )
    except asyncpg.InsufficientPrivilegeError as exc:
        raise BiLoginRefused(
            "BI_LOGINS_UNAVAILABLE",
            "the platform's database user may not create or alter this login (it needs CREATEROLE, "
            "and to own the database and the tenant's schema)",
        ) from exc
    await _check(conn, role)
    await conn.execute(
        "INSERT INTO bi_logins (tenant_id, role_name) VALUES ($1, $2)"
        " ON CONFLICT (tenant_id) DO UPDATE SET role_name = EXCLUDED.role_name, rotated_at = now()",
        tenant_id,
        role,
    )
    log.info("bi_login_issued", tenant_id=tenant_id, role=role, created=not exists)
    return BiLogin(
        tenant_id=tenant_id, user=role, password=password, database=database, schema=schema, created=not exists
    )


async def _check(conn: Conn, role: str) -> None:
    """Refuse a login that could do more than read: altered attributes, a membership (`SET ROLE` to it needs no
    INHERIT), a schema where it may create objects, or the right to create schemas in the database."""
    row = await conn.fetchrow(
        """
        SELECT r.rolsuper OR r.rolreplication OR r.rolbypassrls OR r.rolcreatedb OR r.rolcreaterole
                   OR r.rolinherit AS elevated,
               EXISTS (SELECT 1 FROM pg_auth_members m WHERE m.member = r.oid) AS member,
               ARRAY(SELECT n.nspname::text FROM pg_namespace n
                     WHERE has_schema_privilege(r.oid, n.oid, 'CREATE') ORDER BY n.nspname)
                   || CASE WHEN has_database_privilege(r.oid, current_database(), 'CREATE')
                           THEN ARRAY['(the database itself)'] ELSE ARRAY[]::text[] END AS writable
        FROM pg_roles r WHERE r.rolname = $1
        """,
        role,
    )
    assert row is not None, "the role was created or altered in this transaction"
    if row["elevated"] or row["member"]:
        raise BiLoginRefused(
            "BI_LOGIN_CONFLICT",
            f"the PostgreSQL role {role} was given attributes or memberships beyond a read-only login; "
            "it is not reused (drop it, then ask again)",
        )
    if row["writable"]:
        raise BiLoginRefused(
            "BI_LOGINS_UNAVAILABLE",
            f"any login of this database may create objects in {', '.join(row['writable'])}: revoke that "
            "from PUBLIC first (REVOKE CREATE ON SCHEMA public FROM PUBLIC is PostgreSQL 15's default)",
        )


async def revoke(conn: Conn, tenant_id: str) -> bool:
    """Drop the tenant's login, its grants in this database first; whether there was one. In a transaction.

    The grants are revoked one by one (by their grantor, the platform's user), not with `DROP OWNED BY`, which
    PostgreSQL allows only to a member of the role.
    """
    role = role_name(tenant_id)
    await locks.advisory_xact_lock(conn, locks.Namespace.BI_LOGINS, "roles")
    recorded = await conn.fetchval("DELETE FROM bi_logins WHERE tenant_id = $1 RETURNING role_name", tenant_id)
    exists: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
    if recorded is None or not exists:
        return recorded is not None
    quoted_role, quoted_schema = quote_ident(role), quote_ident(schema_name(tenant_id))  # issued: both fit
    database = quote_database(await conn.fetchval("SELECT current_database()"))
    if await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", schema_name(tenant_id)):
        await conn.execute(
            f"ALTER DEFAULT PRIVILEGES IN SCHEMA {quoted_schema} REVOKE SELECT ON TABLES FROM {quoted_role}"  # noqa: S608 — identifiers quoted by quote_ident
        )
        await conn.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {quoted_schema} FROM {quoted_role}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {quoted_schema} FROM {quoted_role}")
    await conn.execute(f"REVOKE ALL ON DATABASE {database} FROM {quoted_role}")
    await conn.execute(f"DROP ROLE {quoted_role}")
    log.info("bi_login_revoked", tenant_id=tenant_id, role=role)
    return True
