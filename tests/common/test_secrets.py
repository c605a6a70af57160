"""Tenant secrets: AES-GCM under COMPTAFLOW_SECRET_KEY, bound to their row, rotated, never in clear anywhere.

The cryptography tests need no infrastructure; those of the table use the session database (unique tenants)
or, when they must see every row (rotation, the plaintext scan), a migrated database of their own.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import stat
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
import structlog
from pydantic import SecretStr

from comptaflow.cli.secret_key import rotate_secrets, secret_key_for
from comptaflow.common import db
from comptaflow.common.errors import ConfigurationError, NotFound
from comptaflow.common.logging import configure_logging, get_logger
from comptaflow.common.secrets import (
    Keyring,
    RotationIncomplete,
    SecretUnreadable,
    delete_secret,
    generate_key,
    has_secret,
    put_secret,
    rotate,
    secret_context,
    use_secret,
)
from comptaflow.common.settings import Settings
from comptaflow.common.tenants import create_tenant

from .support import FreshDatabase, tenant_id


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


KEY_A = b64url(b"A" * 32)
KEY_B = b64url(b"B" * 32)
A = f"kA:{KEY_A}"
B = f"kB:{KEY_B}"
CONTEXT = secret_context("acme", "pennylane_api_token")


async def new_tenant(conn: db.Conn, name: str = "Cabinet Test") -> str:
    tenant = tenant_id()
    await create_tenant(conn, tenant, name)
    return tenant


# --- keys and ciphertexts ----------------------------------------------------------------------------------


def test_a_secret_round_trips_and_no_two_encryptions_are_alike() -> None:
    keyring = Keyring.from_setting(A)
    first = keyring.encrypt("pl-token-123 é", context=CONTEXT)
    second = keyring.encrypt("pl-token-123 é", context=CONTEXT)
    assert first != second  # a fresh nonce each time
    assert keyring.decrypt(first, context=CONTEXT) == "pl-token-123 é"
    assert keyring.decrypt(second, context=CONTEXT) == "pl-token-123 é"


def test_the_ciphertext_is_version_kid_nonce_then_sealed_bytes() -> None:
    blob = Keyring.from_setting(A).encrypt("abc", context=CONTEXT)
    assert blob[:4] == b"\x01\x02kA"
    assert len(blob) == 4 + 12 + len("abc") + 16
    assert b"abc" not in blob


@pytest.mark.parametrize(
    "context", [secret_context("other-tenant", "pennylane_api_token"), secret_context("acme", "odoo_api_key"), b""]
)
def test_a_ciphertext_does_not_decrypt_in_another_context(context: bytes) -> None:
    keyring = Keyring.from_setting(A)
    blob = keyring.encrypt("pl-token-123", context=CONTEXT)
    with pytest.raises(SecretUnreadable) as caught:
        keyring.decrypt(blob, context=context)
    assert str(caught.value) == (
        "the secret does not decrypt under key 'kA': it was altered, "
        "or it is the ciphertext of another tenant or another secret name"
    )


@pytest.mark.parametrize(
    ("position", "message"),
    [
        (0, "the stored secret has an unknown format (version 0, expected 1)"),
        (4, "the secret does not decrypt under key 'kA': it was altered"),  # nonce
        (16, "the secret does not decrypt under key 'kA': it was altered"),  # ciphertext
        (-1, "the secret does not decrypt under key 'kA': it was altered"),  # tag
    ],
)
def test_a_tampered_ciphertext_does_not_decrypt(position: int, message: str) -> None:
    keyring = Keyring.from_setting(A)
    blob = bytearray(keyring.encrypt("pl-token-123", context=CONTEXT))
    blob[position] ^= 0x01
    with pytest.raises(SecretUnreadable) as caught:
        keyring.decrypt(bytes(blob), context=CONTEXT)
    assert str(caught.value).startswith(message)


def test_a_kid_rewritten_to_another_known_key_does_not_decrypt() -> None:
    keyring = Keyring.from_setting(f"kA:{KEY_A},kB:{KEY_B}")
    blob = keyring.encrypt("pl-token-123", context=CONTEXT)
    forged = blob[:3] + b"B" + blob[4:]
    with pytest.raises(SecretUnreadable, match="does not decrypt under key 'kB': it was altered"):
        keyring.decrypt(forged, context=CONTEXT)


@pytest.mark.parametrize("blob", [b"", b"\x01", b"\x01\x02kA" + b"\0" * 27, b"\x01\x00" + b"\0" * 40])
def test_a_truncated_or_malformed_blob_is_unreadable(blob: bytes) -> None:
    with pytest.raises(SecretUnreadable, match=r"the stored secret is (empty|truncated or its header is malformed)"):
        Keyring.from_setting(A).decrypt(blob, context=CONTEXT)


def test_an_unknown_kid_is_named_with_the_kids_at_hand() -> None:
    blob = Keyring.from_setting(A).encrypt("pl-token-123", context=CONTEXT)
    with pytest.raises(SecretUnreadable) as caught:
        Keyring.from_setting(f"{B},k3:{b64url(b'3' * 32)}").decrypt(blob, context=CONTEXT)
    assert str(caught.value) == (
        "the secret was encrypted under key 'kA', which COMPTAFLOW_SECRET_KEY does not hold (it holds kB, k3)"
    )


def test_the_first_key_encrypts_and_the_others_still_decrypt() -> None:
    old = Keyring.from_setting(A).encrypt("old", context=CONTEXT)
    keyring = Keyring.from_setting(f" {B} , {A} ")
    assert keyring.current_kid == "kB"
    assert keyring.kids == ("kB", "kA")
    assert keyring.decrypt(old, context=CONTEXT) == "old"
    assert keyring.encrypt("new", context=CONTEXT)[:4] == b"\x01\x02kB"


def test_a_bare_key_has_the_id_k1_and_padding_is_optional() -> None:
    keyring = Keyring.from_setting(base64.urlsafe_b64encode(b"K" * 32).decode())
    assert keyring.kids == ("k1",)
    assert Keyring.from_setting(f"k2:{KEY_B},{KEY_A}").kids == ("k2", "k1")


def test_generated_keys_are_dated_random_and_usable() -> None:
    first, second = generate_key(), generate_key()
    assert first != second
    kid, _, key = first.partition(":")
    assert kid.startswith("k")
    assert len(kid) == 13
    assert kid[1:9].isdigit()
    assert len(base64.urlsafe_b64decode(key + "=")) == 32
    keyring = Keyring.from_setting(first)
    assert keyring.current_kid == kid
    assert keyring.decrypt(keyring.encrypt("x", context=CONTEXT), context=CONTEXT) == "x"


def test_a_keyring_shows_its_key_ids_only() -> None:
    keyring = Keyring.from_setting(f"{B},{A}")
    assert repr(keyring) == "Keyring(kids=('kB', 'kA'))"
    assert KEY_A not in repr(keyring)
    assert KEY_B not in str(keyring)


HINT = "expected one or more comma-separated `kid:key` entries, each key 32 bytes in base64url"
SHORT = b64url(b"S" * 16)
STANDARD_ALPHABET = base64.b64encode(b"\xfb\xff" * 16).decode()  # has '+' and '/'


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", f"COMPTAFLOW_SECRET_KEY is empty ({HINT})"),
        ("  ", f"COMPTAFLOW_SECRET_KEY is empty ({HINT})"),
        ("kA:", f"COMPTAFLOW_SECRET_KEY entry 1 has no key ({HINT})"),
        (f"{A},", f"COMPTAFLOW_SECRET_KEY entry 2 has no key ({HINT})"),
        (
            f":{KEY_A}",
            f"COMPTAFLOW_SECRET_KEY entry 1: the key id must be 1 to 32 letters, digits, '-' or '_' ({HINT})",
        ),
        (
            f"bad kid:{KEY_A}",
            f"COMPTAFLOW_SECRET_KEY entry 1: the key id must be 1 to 32 letters, digits, '-' or '_' ({HINT})",
        ),
        (
            f"{'k' * 33}:{KEY_A}",
            f"COMPTAFLOW_SECRET_KEY entry 1: the key id must be 1 to 32 letters, digits, '-' or '_' ({HINT})",
        ),
        (f"{A},kB:{KEY_B}!", f"COMPTAFLOW_SECRET_KEY entry 2: the key is not base64url ({HINT})"),
        (f"kA:{STANDARD_ALPHABET}", f"COMPTAFLOW_SECRET_KEY entry 1: the key is not base64url ({HINT})"),
        (f"kA:{KEY_A[:41]}", f"COMPTAFLOW_SECRET_KEY entry 1: the key is not base64url ({HINT})"),
        (f"kA:{KEY_A[:-1]}", "COMPTAFLOW_SECRET_KEY entry 1: the key is 31 bytes, not 32"),
        (f"kA:{SHORT}", "COMPTAFLOW_SECRET_KEY entry 1: the key is 16 bytes, not 32"),
        (f"{A},kA:{KEY_B}", "COMPTAFLOW_SECRET_KEY: the key id 'kA' appears more than once"),
        (f"{KEY_A},{KEY_B}", "COMPTAFLOW_SECRET_KEY: the key id 'k1' appears more than once"),
    ],
)
def test_a_malformed_setting_is_refused_without_repeating_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Keyring.from_setting(value)
    assert str(caught.value) == message
    for material in (KEY_A, KEY_B, SHORT, STANDARD_ALPHABET, KEY_A[:41]):
        assert material not in str(caught.value)


def test_the_setting_is_read_from_the_environment_as_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COMPTAFLOW_SECRET_KEY", f"{B},{A}")
    settings = Settings()
    assert settings.secret_key is not None
    assert KEY_B not in repr(settings)
    assert Keyring.from_setting(settings.secret_key.get_secret_value()).kids == ("kB", "kA")


# --- the tenant_secrets table ------------------------------------------------------------------------------


@pytest.mark.infra
async def test_put_use_has_and_delete_a_secret(pool: asyncpg.Pool) -> None:
    keyring = Keyring.from_setting(A)
    async with pool.acquire() as conn:
        tenant = await new_tenant(conn)
        assert await use_secret(conn, keyring, tenant, "pennylane_api_token") is None
        assert await has_secret(conn, tenant, "pennylane_api_token") is False

        await put_secret(conn, keyring, tenant, "pennylane_api_token", "pl-first")
        await put_secret(conn, keyring, tenant, "pennylane_api_token", SecretStr("pl-second"))  # replaces
        await put_secret(conn, keyring, tenant, "odoo_api_key", "odoo-1")
        value = await use_secret(conn, keyring, tenant, "pennylane_api_token")
        assert value is not None
        assert value.get_secret_value() == "pl-second"
        assert await has_secret(conn, tenant, "pennylane_api_token") is True
        rows = await conn.fetch("SELECT name, key_id FROM tenant_secrets WHERE tenant_id = $1 ORDER BY name", tenant)
        assert [tuple(r) for r in rows] == [("odoo_api_key", "kA"), ("pennylane_api_token", "kA")]

        assert await delete_secret(conn, tenant, "pennylane_api_token") is True
        assert await delete_secret(conn, tenant, "pennylane_api_token") is False
        assert await use_secret(conn, keyring, tenant, "pennylane_api_token") is None
        assert await has_secret(conn, tenant, "odoo_api_key") is True


@pytest.mark.infra
async def test_a_tenants_secrets_go_with_it(pool: asyncpg.Pool) -> None:
    async with pool.acquire() as conn:
        tenant = await new_tenant(conn)
        await put_secret(conn, Keyring.from_setting(A), tenant, "odoo_api_key", "odoo-1")
        await conn.execute("DELETE FROM tenants WHERE id = $1", tenant)
        assert await has_secret(conn, tenant, "odoo_api_key") is False


@pytest.mark.infra
async def test_a_secret_of_an_unknown_tenant_is_not_found(pool: asyncpg.Pool) -> None:
    missing = tenant_id()
    async with pool.acquire() as conn:
        with pytest.raises(NotFound) as caught:
            await put_secret(conn, Keyring.from_setting(A), missing, "odoo_api_key", "odoo-1")
    assert str(caught.value) == f"tenant {missing!r} does not exist"


@pytest.mark.infra
async def test_a_ciphertext_copied_to_another_tenant_or_name_does_not_decrypt(pool: asyncpg.Pool) -> None:
    keyring = Keyring.from_setting(A)
    async with pool.acquire() as conn:
        victim, attacker = await new_tenant(conn), await new_tenant(conn)
        await put_secret(conn, keyring, victim, "pennylane_api_token", "pl-victim")
        await conn.execute(
            "INSERT INTO tenant_secrets (tenant_id, name, key_id, ciphertext)"
            " SELECT $2, name, key_id, ciphertext FROM tenant_secrets WHERE tenant_id = $1"
            " UNION ALL SELECT $1, 'odoo_api_key', key_id, ciphertext FROM tenant_secrets WHERE tenant_id = $1",
            victim,
            attacker,
        )
        with pytest.raises(SecretUnreadable) as other_tenant:
            await use_secret(conn, keyring, attacker, "pennylane_api_token")
        with pytest.raises(SecretUnreadable) as other_name:
            await use_secret(conn, keyring, victim, "odoo_api_key")
        value = await use_secret(conn, keyring, victim, "pennylane_api_token")
    assert str(other_tenant.value) == (
        f"secret 'pennylane_api_token' of tenant {attacker!r}: the secret does not decrypt under key 'kA': "
        "it was altered, or it is the ciphertext of another tenant or another secret name"
    )
    assert str(other_name.value).startswith(f"secret 'odoo_api_key' of tenant {victim!r}: the secret does not")
    assert value is not None
    assert value.get_secret_value() == "pl-victim"


@pytest.mark.infra
async def test_rotation_re_encrypts_every_old_row_under_the_new_key(private_pool: asyncpg.Pool) -> None:
    old, both, new = Keyring.from_setting(A), Keyring.from_setting(f"{B},{A}"), Keyring.from_setting(B)
    values: dict[tuple[str, str], str] = {}
    async with private_pool.acquire() as conn:
        for number in range(5):
            tenant = await new_tenant(conn)
            for name in ("pennylane_api_token", "odoo_api_key"):
                values[tenant, name] = f"{name}-{number}"
                await put_secret(conn, old, tenant, name, values[tenant, name])
        some = next(iter(values))
        with pytest.raises(SecretUnreadable, match="encrypted under key 'kA', which COMPTAFLOW_SECRET_KEY does not"):
            await use_secret(conn, new, *some)

    assert await rotate(private_pool, both, batch_size=3) == 10

    async with private_pool.acquire() as conn:
        assert await conn.fetchval("SELECT array_agg(DISTINCT key_id) FROM tenant_secrets") == ["kB"]
        for (tenant, name), value in values.items():
            secret = await use_secret(conn, new, tenant, name)
            assert secret is not None
            assert secret.get_secret_value() == value
    assert await rotate(private_pool, both) == 0


@pytest.mark.infra
async def test_rotation_passes_over_a_row_being_written_and_takes_it_next_time(private_pool: asyncpg.Pool) -> None:
    old, both = Keyring.from_setting(A), Keyring.from_setting(f"{B},{A}")
    async with private_pool.acquire() as writer:
        tenant = await new_tenant(writer)
        for name in ("a", "b", "c"):
            await put_secret(writer, old, tenant, name, f"value-{name}")
        async with writer.transaction():
            await writer.execute("SELECT 1 FROM tenant_secrets WHERE tenant_id = $1 AND name = 'b' FOR UPDATE", tenant)
            assert await rotate(private_pool, both) == 2
        rows = await writer.fetch("SELECT name, key_id FROM tenant_secrets ORDER BY name")
        assert [tuple(r) for r in rows] == [("a", "kB"), ("b", "kA"), ("c", "kB")]
    assert await rotate(private_pool, both) == 1


@pytest.mark.infra
async def test_concurrent_rotations_re_encrypt_each_row_once(private_pool: asyncpg.Pool) -> None:
    old, both = Keyring.from_setting(A), Keyring.from_setting(f"{B},{A}")
    async with private_pool.acquire() as conn:
        tenant = await new_tenant(conn)
        for number in range(40):
            await put_secret(conn, old, tenant, f"secret-{number:02}", f"value-{number}")
    counts = await asyncio.gather(*(rotate(private_pool, both, batch_size=5) for _ in range(3)))
    assert sum(counts) == 40
    async with private_pool.acquire() as conn:
        assert await conn.fetchval("SELECT count(*) FROM tenant_secrets WHERE key_id = 'kB'") == 40


@pytest.mark.infra
async def test_rotation_reports_the_rows_it_cannot_read_after_doing_the_others(private_pool: asyncpg.Pool) -> None:
    lost = Keyring.from_setting(f"kL:{b64url(b'L' * 32)}")
    async with private_pool.acquire() as conn:
        tenant = await new_tenant(conn)
        await put_secret(conn, Keyring.from_setting(A), tenant, "a", "value-a")
        await put_secret(conn, lost, tenant, "b", "value-b")
    with pytest.raises(RotationIncomplete) as caught:
        await rotate(private_pool, Keyring.from_setting(f"{B},{A}"))
    assert (caught.value.rotated, caught.value.unreadable) == (1, ((tenant, "b", "kL"),))
    assert str(caught.value) == (
        "1 secret(s) re-encrypted; 1 could not be decrypted with COMPTAFLOW_SECRET_KEY and stay under their "
        f"old key: {tenant}/b (key 'kL')"
    )


# --- the plaintext is nowhere ------------------------------------------------------------------------------


NOISY = ("aiormq", "aio_pika", "botocore", "aiobotocore", "uvicorn.access")  # quietened by configure_logging


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging() changes process-wide state: put it back as it was after the test."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY}
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, noisy_level in noisy.items():
        logging.getLogger(name).setLevel(noisy_level)


def encodings(plaintext: str) -> list[str]:
    raw = plaintext.encode()
    return [
        plaintext,
        base64.b64encode(raw).decode(),
        base64.urlsafe_b64encode(raw).decode().rstrip("="),
        raw.hex(),
    ]


async def column_values(conn: db.Conn) -> dict[tuple[str, str], list[str | bytes]]:
    """Every value of every column of every table of the public schema: bytea as bytes, the rest as text."""
    columns = await conn.fetch(
        "SELECT c.table_name, c.column_name, c.data_type = 'bytea' AS is_bytea,"
        " format(CASE WHEN c.data_type = 'bytea' THEN 'SELECT %I FROM %I' ELSE 'SELECT %I::text FROM %I' END,"
        "        c.column_name, c.table_name) AS query"
        " FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)"
        " WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'"
    )
    return {(c["table_name"], c["column_name"]): [r[0] for r in await conn.fetch(c["query"])] for c in columns}


@pytest.mark.infra
async def test_the_plaintext_is_in_no_table_and_no_log_line(
    private_pool: asyncpg.Pool, restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging(fmt="json", level="DEBUG")  # every event as a JSON line on stderr
    plaintext = f"pl-{uuid.uuid4().hex}-Zébulon"
    firm = f"Cabinet {uuid.uuid4().hex}"
    keyring = Keyring.from_setting(generate_key())
    async with private_pool.acquire() as conn:
        tenant = await new_tenant(conn, firm)
        await put_secret(conn, keyring, tenant, "pennylane_api_token", plaintext)
        value = await use_secret(conn, keyring, tenant, "pennylane_api_token")
        get_logger("comptaflow.test").info("careless_event", value=value, text=f"{value}")
        values = await column_values(conn)

    assert value is not None
    assert value.get_secret_value() == plaintext
    assert (repr(value), str(value), f"{value}") == ("SecretStr('**********')", "**********", "**********")

    # The scan sees what is stored: the firm's name (in clear by design) and one ciphertext.
    assert values["tenants", "name"] == [firm]
    assert len(values["tenant_secrets", "ciphertext"]) == 1
    for column, stored in values.items():
        for needle in encodings(plaintext):
            for item in stored:
                haystack = item if isinstance(item, bytes) else (item or "").encode()
                assert needle.encode() not in haystack, f"the secret is in {column}"

    err = capsys.readouterr().err
    lines = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    events = {line["event"]: line for line in lines}
    assert {key: events["tenant_secret_stored"][key] for key in ("tenant_id", "name", "key_id")} == {
        "tenant_id": tenant,
        "name": "pennylane_api_token",
        "key_id": keyring.current_kid,
    }
    assert (events["tenant_secret_used"]["tenant_id"], events["tenant_secret_used"]["name"]) == (
        tenant,
        "pennylane_api_token",
    )
    assert (events["careless_event"]["value"], events["careless_event"]["text"]) == (
        "SecretStr('**********')",
        "**********",
    )
    for needle in encodings(plaintext):
        assert needle not in err


# --- the CLI: the key `up` keeps, `comptaflow rotate-secrets` ----------------------------------------------


def test_up_generates_a_key_once_into_home_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", secret_key=None)
    with pytest.raises(SystemExit, match=r"COMPTAFLOW_SECRET_KEY is not set \(and no key was generated"):
        secret_key_for(settings, generate=False)

    key = secret_key_for(settings, generate=True)
    path = tmp_path / "home" / "secret-key"
    assert Keyring.from_setting(key).current_kid == key.partition(":")[0]
    assert path.read_text() == key + "\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert secret_key_for(settings, generate=True) == key
    assert secret_key_for(settings, generate=False) == key


def test_the_setting_wins_over_the_kept_key_and_is_checked(tmp_path: Path) -> None:
    (tmp_path / "secret-key").write_text(generate_key())
    assert secret_key_for(Settings(home=tmp_path, secret_key=SecretStr(f"{B},{A}")), generate=True) == f"{B},{A}"
    with pytest.raises(SystemExit) as caught:
        secret_key_for(Settings(home=tmp_path, secret_key=SecretStr(f"kA:{SHORT}")), generate=True)
    assert str(caught.value) == "comptaflow: COMPTAFLOW_SECRET_KEY entry 1: the key is 16 bytes, not 32"


def printed(capsys: pytest.CaptureFixture[str]) -> str:
    """The last line the command printed (log events, unconfigured here, go to stdout before it)."""
    return capsys.readouterr().out.splitlines()[-1]


@pytest.fixture
async def migrated_dsn(fresh_database: FreshDatabase) -> str:
    """A migrated database of its own: rotate-secrets sees every row of it."""
    dsn = await fresh_database()
    the_pool = await db.create_pool(dsn, max_size=1)
    try:
        await db.migrate(the_pool)
    finally:
        await the_pool.close()
    return dsn


@pytest.mark.infra
async def test_rotate_secrets_re_encrypts_and_says_how_many(
    settings: Settings, migrated_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    the_pool = await db.create_pool(migrated_dsn, max_size=2)
    try:
        async with the_pool.acquire() as conn:
            tenant = await new_tenant(conn)
            await put_secret(conn, Keyring.from_setting(A), tenant, "pennylane_api_token", "pl-1")
            await put_secret(conn, Keyring.from_setting(A), tenant, "odoo_api_key", "odoo-1")
        rotating = settings.model_copy(
            update={"database_url": SecretStr(migrated_dsn), "secret_key": SecretStr(f"{B},{A}")}
        )
        assert await rotate_secrets(rotating) == 0
        assert printed(capsys) == "re-encrypted 2 secret(s) under key kB"
        assert await rotate_secrets(rotating) == 0
        assert printed(capsys) == "re-encrypted 0 secret(s) under key kB"
        async with the_pool.acquire() as conn:
            value = await use_secret(conn, Keyring.from_setting(B), tenant, "odoo_api_key")
        assert value is not None
        assert value.get_secret_value() == "odoo-1"

        without_old_key = rotating.model_copy(update={"secret_key": SecretStr(f"k3:{b64url(b'3' * 32)}")})
        assert await rotate_secrets(without_old_key) == 1
        err = capsys.readouterr().err
        assert err.startswith("comptaflow rotate-secrets: 0 secret(s) re-encrypted; 2 could not be decrypted")
    finally:
        await the_pool.close()


@pytest.mark.infra
async def test_rotate_secrets_fails_while_a_secret_is_still_under_another_key(
    settings: Settings, migrated_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    rotating = settings.model_copy(
        update={"database_url": SecretStr(migrated_dsn), "secret_key": SecretStr(f"{B},{A}")}
    )
    the_pool = await db.create_pool(migrated_dsn, max_size=1)
    try:
        async with the_pool.acquire() as writer:
            tenant = await new_tenant(writer)
            for name in ("a", "b"):
                await put_secret(writer, Keyring.from_setting(A), tenant, name, f"value-{name}")
            async with writer.transaction():
                await writer.execute("SELECT 1 FROM tenant_secrets WHERE name = 'b' FOR UPDATE")
                assert await rotate_secrets(rotating) == 1
        captured = capsys.readouterr()
        assert captured.out.splitlines()[-1] == "re-encrypted 1 secret(s) under key kB"
        assert captured.err == (
            "comptaflow rotate-secrets: 1 secret(s) are still under another key"
            " (being written meanwhile, or by a process with an older setting): run it again\n"
        )
        assert await rotate_secrets(rotating) == 0
        assert printed(capsys) == "re-encrypted 1 secret(s) under key kB"
    finally:
        await the_pool.close()


async def test_rotate_secrets_needs_a_database_and_a_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await rotate_secrets(Settings(home=tmp_path, database_url=None, secret_key=SecretStr(A))) == 2
    assert capsys.readouterr().err == "comptaflow rotate-secrets: COMPTAFLOW_DATABASE_URL is not set\n"
    no_key = Settings(home=tmp_path, database_url=SecretStr("postgresql://nowhere/db"), secret_key=None)
    assert await rotate_secrets(no_key) == 2
    assert capsys.readouterr().err == (
        "comptaflow rotate-secrets: COMPTAFLOW_SECRET_KEY is not set"
        " (and no key was generated by `comptaflow up` here)\n"
    )


@pytest.mark.infra
async def test_rotate_secrets_on_an_unmigrated_database_says_to_migrate(
    tmp_path: Path, fresh_database: FreshDatabase, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = Settings(home=tmp_path, database_url=SecretStr(await fresh_database()), secret_key=SecretStr(A))
    assert await rotate_secrets(empty) == 2
    assert capsys.readouterr().err == "comptaflow rotate-secrets: no tenant_secrets table: run `comptaflow migrate`\n"
