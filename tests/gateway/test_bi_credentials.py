"""BI credentials (docs/api.md, BI credentials): a read-only PostgreSQL login per tenant that reads its
Pennylane schema and nothing else, whose password is shown once and rotated by asking again.

The logins are real PostgreSQL roles of the test server (roles belong to the cluster, not to the session's
database): every test drops those it made. The test server may trust 127.0.0.1 (no password checked at
all): a rotation is then shown by the verifier PostgreSQL stored, checked against RFC 7677's SCRAM-SHA-256
exchange, and, on a server that checks passwords, by the old password being refused.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from comptaflow.common import bi_logins
from comptaflow.common.pennylane.connections import schema_name
from comptaflow.common.settings import Settings
from comptaflow.common.tokens import Role
from tests.gateway.support import Gateway, running_gateway
from tests.gateway.test_auth_tenants import assert_error

infra = pytest.mark.infra
FIELDS = {"host", "port", "database", "user", "password"}


class Logins:
    """The tenants whose logins a test made, and roles made by hand: all dropped at teardown."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.tenants: list[str] = []
        self.roles: list[str] = []

    async def drop_all(self) -> None:
        async with self.pool.acquire() as conn:
            for tenant in self.tenants:
                async with conn.transaction():
                    await bi_logins.revoke(conn, tenant)
            for role in self.roles:
                await conn.execute(f"DROP ROLE IF EXISTS {bi_logins.quote_ident(role)}")


@pytest.fixture
async def logins(gateway: Gateway) -> AsyncIterator[Logins]:
    made = Logins(gateway.infra.db)
    try:
        yield made
    finally:
        await made.drop_all()


async def new_tenant(gateway: Gateway, logins: Logins) -> str:
    tenant = await gateway.create_tenant()
    logins.tenants.append(tenant)
    return tenant


async def issue(gateway: Gateway, tenant: str, *, role: Role = Role.ADMIN, listed: str | None = None) -> Any:
    headers = gateway.auth(listed or tenant, role=role)
    return await gateway.client.post(f"/api/v1/tenants/{tenant}/bi-credentials", headers=headers)


async def login(creds: dict[str, Any], password: str | None = None) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=creds["host"],
        port=creds["port"],
        database=creds["database"],
        user=creds["user"],
        password=creds["password"] if password is None else password,
        timeout=10,
    )


async def can_login(creds: dict[str, Any], password: str) -> bool:
    try:
        conn = await login(creds, password)
    except asyncpg.InvalidPasswordError:
        return False
    await conn.close()
    return True


async def run_as(creds: dict[str, Any], sql: str) -> Any:
    """The first value `sql` gives the login, or the class of the error PostgreSQL answers it."""
    conn = await login(creds)
    try:
        return await conn.fetchval(sql)
    except asyncpg.PostgresError as exc:
        return type(exc)
    finally:
        await conn.close()


def verifies(stored: str, password: str) -> bool:
    """Whether a SCRAM-SHA-256 client knowing `password` authenticates against `stored` (`pg_authid`)."""
    method, iterations, salt, keys = stored.replace(":", "$", 1).split("$")
    stored_key, server_key = (base64.b64decode(k) for k in keys.split(":"))
    assert method == "SCRAM-SHA-256"
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.digest(salted, b"Client Key", "sha256")
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored_key) and hmac.compare_digest(
        hmac.digest(salted, b"Server Key", "sha256"), server_key
    )


async def stored_verifier(gateway: Gateway, role: str) -> str | None:
    async with gateway.infra.db.acquire() as conn:
        value: str | None = await conn.fetchval("SELECT rolpassword FROM pg_authid WHERE rolname = $1", role)
    return value


async def role_exists(gateway: Gateway, role: str) -> bool:
    async with gateway.infra.db.acquire() as conn:
        found: bool = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1)", role)
    return found


def quoted_schema(tenant: str) -> str:
    return bi_logins.quote_ident(schema_name(tenant))


async def make_table(gateway: Gateway, tenant: str, table: str, value: str) -> None:
    """A table in the tenant's Pennylane schema, made as the sync makes them: by the platform's user."""
    schema = quoted_schema(tenant)
    async with gateway.infra.db.acquire() as conn:
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        await conn.execute(f"CREATE TABLE {schema}.{bi_logins.quote_ident(table)} (id int PRIMARY KEY, name text)")
        insert = f"INSERT INTO {schema}.{bi_logins.quote_ident(table)} VALUES (1, $1)"  # noqa: S608 — quoted names
        await conn.execute(insert, value)


@infra
async def test_the_login_reads_its_tenants_schema_and_nothing_else(gateway: Gateway, logins: Logins) -> None:
    tenant, other = await new_tenant(gateway, logins), await new_tenant(gateway, logins)
    schema = "pennylane_" + tenant.replace("-", "_")
    await make_table(gateway, tenant, "customers", "Léa")
    await make_table(gateway, other, "customers", "someone else's")

    response = await issue(gateway, tenant)
    await make_table(gateway, tenant, "suppliers", "made after the grant")

    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    creds = response.json()
    assert set(creds) == FIELDS
    async with gateway.infra.db.acquire() as conn:
        database = await conn.fetchval("SELECT current_database()")
    assert {k: creds[k] for k in ("host", "port", "database", "user")} == {
        "host": "127.0.0.1",
        "port": 5432,
        "database": database,
        "user": "cf_bi_" + tenant.replace("-", "_"),
    }
    assert len(creds["password"]) >= 32

    assert await run_as(creds, "SELECT name FROM customers") == "Léa"  # its schema is its search_path
    later = f"SELECT name FROM {schema}.suppliers"  # noqa: S608 — the test's own schema
    assert await run_as(creds, later) == "made after the grant"
    assert await run_as(creds, "SELECT current_setting('statement_timeout')") == "5min"
    assert await run_as(creds, "SELECT current_setting('transaction_read_only')") == "on"
    visible = await run_as(
        creds,
        "SELECT array_agg(table_schema || '.' || table_name ORDER BY table_name) FROM information_schema.tables"
        " WHERE table_schema NOT IN ('pg_catalog', 'information_schema')",
    )
    assert visible == [f"{schema}.customers", f"{schema}.suppliers"]

    theirs = "pennylane_" + other.replace("-", "_")
    platform_tables = ("tenants", "tenant_secrets", "jobs", "outbox", "pennylane_connections", "bi_logins")
    for forbidden in (f"{theirs}.customers", *(f"public.{t}" for t in platform_tables)):
        refused = await run_as(creds, f"SELECT count(*) FROM {forbidden}")  # noqa: S608 — names of the test
        assert refused is asyncpg.InsufficientPrivilegeError, forbidden


@infra
async def test_the_login_cannot_write_even_when_it_turns_read_only_off(gateway: Gateway, logins: Logins) -> None:
    tenant = await new_tenant(gateway, logins)
    await make_table(gateway, tenant, "customers", "Léa")
    creds = (await issue(gateway, tenant)).json()

    assert await run_as(creds, "INSERT INTO customers VALUES (2, 'x') RETURNING id") is (
        asyncpg.ReadOnlySQLTransactionError
    )
    conn = await login(creds)
    try:
        await conn.execute("SET default_transaction_read_only = off")
        for sql in (
            "INSERT INTO customers VALUES (2, 'x')",
            "UPDATE customers SET name = 'x'",
            "DELETE FROM customers",
            "CREATE TABLE mine (id int)",
            "CREATE TABLE public.mine (id int)",
            "CREATE SCHEMA mine",
            "DELETE FROM public.tenants",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(sql)
    finally:
        await conn.close()
    async with gateway.infra.db.acquire() as platform:
        row = await platform.fetchrow(
            "SELECT rolsuper, rolcreatedb, rolcreaterole, rolinherit, rolreplication, rolbypassrls, rolconnlimit,"
            " rolcanlogin FROM pg_roles WHERE rolname = $1",
            creds["user"],
        )
        read = f"SELECT array_agg(name ORDER BY id) FROM {quoted_schema(tenant)}.customers"  # noqa: S608 — quoted
        names = await platform.fetchval(read)
    assert row is not None
    assert tuple(row) == (False, False, False, False, False, False, 5, True)
    assert names == ["Léa"]


@infra
async def test_a_second_call_rotates_the_password_of_the_same_login(gateway: Gateway, logins: Logins) -> None:
    tenant = await new_tenant(gateway, logins)
    first = (await issue(gateway, tenant)).json()
    first_verifier = await stored_verifier(gateway, first["user"])

    second_response = await issue(gateway, tenant)
    second = second_response.json()

    assert second_response.status_code == 201
    assert second["user"] == first["user"]
    assert second["password"] != first["password"]
    verifier = await stored_verifier(gateway, second["user"])
    assert first_verifier is not None
    assert verifier is not None
    assert verifies(first_verifier, first["password"])
    assert verifies(verifier, second["password"])  # PostgreSQL stored the verifier the gateway sent, as such
    assert not verifies(verifier, first["password"])
    assert await run_as(second, "SELECT current_user") == second["user"]
    if not await can_login(second, "not-the-password"):  # this server checks passwords: show it
        assert not await can_login(second, first["password"])
        assert await can_login(second, second["password"])
    async with gateway.infra.db.acquire() as conn:
        row = await conn.fetchrow(
            "SELECT role_name, created_at, rotated_at FROM bi_logins WHERE tenant_id = $1", tenant
        )
    assert row is not None
    assert row["role_name"] == second["user"]
    assert row["rotated_at"] > row["created_at"]


@infra
async def test_only_an_admin_of_the_tenant_may_issue_a_login(gateway: Gateway, logins: Logins) -> None:
    tenant, other = await new_tenant(gateway, logins), await new_tenant(gateway, logins)
    for role in (Role.ACCOUNTANT, Role.VIEWER):
        response = await issue(gateway, tenant, role=role)
        assert response.status_code == 403
        assert response.json()["error"] == {"code": "FORBIDDEN", "message": "only an admin may do this", "details": {}}
    unlisted = await issue(gateway, tenant, listed=other)
    assert unlisted.status_code == 404
    assert unlisted.json()["error"]["message"] == "tenant not found"
    missing = await gateway.client.post(
        "/api/v1/tenants/no-such-tenant/bi-credentials", headers=gateway.auth("*", role=Role.ADMIN)
    )
    assert missing.status_code == 404
    anonymous = await gateway.client.post(f"/api/v1/tenants/{tenant}/bi-credentials")
    assert anonymous.status_code == 401
    assert not await role_exists(gateway, bi_logins.role_name(tenant))


@infra
async def test_calls_at_once_all_succeed_and_the_last_password_wins(gateway: Gateway, logins: Logins) -> None:
    tenants = [await new_tenant(gateway, logins) for _ in range(3)]
    responses = await asyncio.gather(*(issue(gateway, t) for t in (tenants[0], tenants[0], tenants[0], *tenants[1:])))
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    same = [r.json() for r in responses[:3]]
    assert {c["user"] for c in same} == {bi_logins.role_name(tenants[0])}
    verifier = await stored_verifier(gateway, same[0]["user"])
    assert verifier is not None
    assert sum(verifies(verifier, c["password"]) for c in same) == 1  # one at a time: the last one holds
    for creds in (responses[3].json(), responses[4].json()):
        assert await run_as(creds, "SELECT current_user") == creds["user"]


@infra
async def test_the_password_is_in_the_answer_only(
    gateway: Gateway, logins: Logins, caplog: pytest.LogCaptureFixture
) -> None:
    tenant = await new_tenant(gateway, logins)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        response = await issue(gateway, tenant)
    password = response.json()["password"]
    text = repr(events) + "".join(f"{r.getMessage()} {r.__dict__!r}" for r in caplog.records)
    assert password not in text
    assert "bi_credentials_issued" in [e.get("event") for e in events]
    async with gateway.infra.db.acquire() as conn:
        row = await conn.fetchrow("SELECT * FROM bi_logins WHERE tenant_id = $1", tenant)
    assert row is not None
    assert password not in repr(dict(row))


@infra
async def test_a_role_of_that_name_made_by_hand_is_refused_not_taken_over(gateway: Gateway, logins: Logins) -> None:
    tenant = await new_tenant(gateway, logins)
    role = bi_logins.role_name(tenant)
    logins.roles.append(role)
    async with gateway.infra.db.acquire() as conn:
        await conn.execute(f"CREATE ROLE {bi_logins.quote_ident(role)} LOGIN")

    response = await issue(gateway, tenant)

    assert response.status_code == 409
    assert_error(response.json(), "BI_LOGIN_CONFLICT")
    assert await stored_verifier(gateway, role) is None  # not given a password
    async with gateway.infra.db.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM bi_logins WHERE tenant_id = $1", tenant) == 0
        granted = await conn.fetchval("SELECT has_database_privilege($1, current_database(), 'CONNECT')", role)
    assert granted is True  # PUBLIC's default, nothing of ours


@infra
async def test_a_tenant_with_the_longest_id_gets_a_login_within_postgresqls_names(
    gateway: Gateway, logins: Logins
) -> None:
    tenant = await gateway.create_tenant(("gw-" + uuid.uuid4().hex + "-x" * 30)[:63])
    logins.tenants.append(tenant)
    await make_table(gateway, tenant, "customers", "Léa")
    response = await issue(gateway, tenant)
    assert response.status_code == 201
    creds = response.json()
    assert creds["user"] == bi_logins.role_name(tenant)
    assert len(creds["user"]) == 62
    assert await run_as(creds, "SELECT name FROM customers") == "Léa"


@infra
async def test_the_bi_host_and_port_settings_are_what_the_answer_gives(settings: Settings) -> None:
    configured = settings.model_copy(update={"bi_host": "bi.cabinet.example", "bi_port": 6432})
    async with running_gateway(configured) as gateway:
        made = Logins(gateway.infra.db)
        tenant = await new_tenant(gateway, made)
        try:
            creds = (await issue(gateway, tenant)).json()
        finally:
            await made.drop_all()
    assert (creds["host"], creds["port"]) == ("bi.cabinet.example", 6432)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://comptaflow:pw@db.internal:6543/comptaflow", ("db.internal", 6543)),
        ("postgresql://comptaflow@db.internal/comptaflow", ("db.internal", 5432)),
        ("postgres://u:p@[2001:db8::1]:5433/cf", ("2001:db8::1", 5433)),
        ("postgresql://u@primary:5432,replica:5433/cf", ("primary", 5432)),
        ("postgresql://postgres:@/postgres?host=/tmp/pg-socket&port=5444", ("/tmp/pg-socket", 5444)),
        ("postgresql:///cf", ("localhost", 5432)),
    ],
)
def test_the_endpoint_comes_from_the_database_url(url: str, expected: tuple[str, int]) -> None:
    assert bi_logins.endpoint(url) == expected
    assert bi_logins.endpoint(url, host="bi.example") == ("bi.example", expected[1])
    assert bi_logins.endpoint(url, port=7000) == (expected[0], 7000)


def test_role_names_stay_within_postgresql_names_and_apart() -> None:
    assert bi_logins.role_name("acme-sarl") == "cf_bi_acme_sarl"
    long_a, long_b = "a" * 60 + "-01", "a" * 60 + "-02"
    names = {bi_logins.role_name(long_a), bi_logins.role_name(long_b)}
    assert len(names) == 2
    for name in names:
        assert len(name) == 62
        assert bi_logins.quote_ident(name) == f'"{name}"'
    with pytest.raises(ValueError, match="not a tenant id"):
        bi_logins.role_name('acme"; DROP ROLE postgres; --')


def test_quoting_refuses_what_it_was_not_built_for() -> None:
    for bad in ('cf_bi_x"; DROP', "CF_BI", "", "a" * 64, "cf bi"):
        with pytest.raises(ValueError, match="not an identifier"):
            bi_logins.quote_ident(bad)
    assert bi_logins.quote_database('odd"name') == '"odd""name"'
    for bad in ("x' || pg_sleep(1) || '", "SCRAM-SHA-256$4096:abc$de'f:gh", "plaintext"):
        with pytest.raises(ValueError, match="not a SCRAM-SHA-256 verifier"):
            bi_logins.quote_literal(bad)


def test_the_scram_verifier_follows_rfc_7677() -> None:
    """RFC 7677's exchange (user "user", password "pencil") authenticates against the verifier of its salt."""
    salt = "W22ZaJ0SNY7soEsUEjb6gQ=="
    stored = bi_logins.scram_verifier(SecretStr("pencil"), salt=base64.b64decode(salt), iterations=4096)
    _, rest = stored.split("$", 1)
    stored_key, server_key = (base64.b64decode(k) for k in rest.split("$")[1].split(":"))
    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    auth_message = f"n=user,r=rOprNGfwEbeRWgbNEkqO,r={nonce},s={salt},i=4096,c=biws,r={nonce}".encode()
    proof = base64.b64decode("dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    client_key = bytes(a ^ b for a, b in zip(proof, hmac.digest(stored_key, auth_message, "sha256"), strict=True))
    assert hashlib.sha256(client_key).digest() == stored_key
    server_signature = base64.b64encode(hmac.digest(server_key, auth_message, "sha256")).decode()
    assert server_signature == "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="
    assert verifies(stored, "pencil")
    assert not verifies(stored, "pencil2")
    assert bi_logins.quote_literal(stored) == f"'{stored}'"
