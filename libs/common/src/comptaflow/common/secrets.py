"""Tenant secrets encrypted at rest: the `tenant_secrets` table and the keys that encrypt it.

A tenant's credentials for its other systems (a Pennylane API token, an Odoo API key) are stored only as
ciphertext. The services that call those systems decrypt them with `use_secret()` at the moment of the
call; the API can say whether a secret is set (`has_secret()`), never what it is.

**Why a library, and why AES-GCM.** Encryption is done by `cryptography` (pyca, on OpenSSL): audited,
constant-time, hardware-accelerated code, where anything written here would be a liability. AES-256-GCM is
authenticated encryption with associated data: a ciphertext that was altered fails to decrypt instead of
yielding garbage, and the associated data binds each ciphertext to its row (tenant id and secret name,
`secret_context()`) without storing anything more, so a ciphertext copied to another tenant or another name
does not decrypt either. Fernet, the other obvious choice, has no associated data and no key id (MultiFernet
tries every key in turn). Nonces
are 12 random bytes: NIST SP 800-38D allows 2^32 encryptions per key that way, far beyond a few secrets
per tenant, and rotation starts a new key anyway.

**Keys.** `COMPTAFLOW_SECRET_KEY` holds one or more comma-separated `kid:key` entries, each key 32 random
bytes in base64url (`generate_key()` makes one; a bare key stands for `k1:key`). The first entry encrypts;
the others only decrypt. Rotation: put the new key first (`new,old`), deploy, run `comptaflow
rotate-secrets` (`rotate()`), then drop the old key. A malformed setting is a `ConfigurationError` whose
message never repeats key material.

**Ciphertext layout** (`bytea`):

    version (1 byte, 1) | kid length (1 byte) | kid (ASCII) | nonce (12 bytes) | AES-GCM ciphertext + 16-byte tag

The associated data is the header (version, kid) followed by the context, so a rewritten header fails to
decrypt like a rewritten ciphertext does.

**Errors.**

    ConfigurationError       — COMPTAFLOW_SECRET_KEY is malformed
    PermanentError
    ├── SecretUnreadable     — unknown key id, altered ciphertext, or the ciphertext of another row
    │   └── RotationIncomplete — `rotate()` re-encrypted what it could; these rows it could not read
    └── NotFound             — `put_secret()` for a tenant that does not exist

Services read a secret with `use_secret()`, which returns a pydantic `SecretStr` (its repr and str are
asterisks) rather than a `str` that could be logged by accident; this module's log events carry the tenant
id, the secret's name and the key id only.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets as random_tokens
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import structlog
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from pydantic import SecretStr

from comptaflow.common.db import Conn
from comptaflow.common.errors import ConfigurationError, NotFound, PermanentError

log = structlog.get_logger("comptaflow.secrets")

SETTING = "COMPTAFLOW_SECRET_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
VERSION = 1
BARE_KEY_ID = "k1"
ROTATE_BATCH = 100

_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
_BASE64URL = re.compile(r"[A-Za-z0-9_-]+={0,2}")
# The same pattern as the CHECK of migration 0005: names come from code ("pennylane_api_token").
_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,99}")
_FORMAT = "expected one or more comma-separated `kid:key` entries, each key 32 bytes in base64url"


class SecretUnreadable(PermanentError):
    """A stored secret that the keys at hand cannot decrypt in its context."""


class RotationIncomplete(SecretUnreadable):
    """`rotate()` finished, but some rows could not be decrypted and stay under their old key."""

    def __init__(self, rotated: int, unreadable: Sequence[tuple[str, str, str]]) -> None:
        self.rotated = rotated
        self.unreadable = tuple(unreadable)  # (tenant_id, name, key_id)
        listed = ", ".join(f"{tenant}/{name} (key {kid!r})" for tenant, name, kid in self.unreadable[:10])
        more = f" and {len(self.unreadable) - 10} more" if len(self.unreadable) > 10 else ""
        super().__init__(
            f"{rotated} secret(s) re-encrypted; {len(self.unreadable)} could not be decrypted with "
            f"{SETTING} and stay under their old key: {listed}{more}"
        )


def generate_key() -> str:
    """A new `kid:key` entry for COMPTAFLOW_SECRET_KEY: a dated key id and 32 random bytes."""
    kid = f"k{datetime.now(UTC):%Y%m%d}{random_tokens.token_hex(2)}"
    key = base64.urlsafe_b64encode(os.urandom(KEY_BYTES)).rstrip(b"=").decode("ascii")
    return f"{kid}:{key}"


def secret_context(tenant_id: str, name: str) -> bytes:
    """The associated data of a tenant's secret: its ciphertext decrypts only under this tenant and name.

    Neither part can hold a NUL byte (PostgreSQL text cannot), so the joined form is unambiguous.
    """
    return b"\0".join((b"comptaflow.tenant_secrets", tenant_id.encode(), name.encode()))


def _decode_key(text: str, entry: int) -> bytes:
    if not _BASE64URL.fullmatch(text):
        raise ConfigurationError(f"{SETTING} entry {entry}: the key is not base64url ({_FORMAT})")
    try:
        key = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise ConfigurationError(f"{SETTING} entry {entry}: the key is not base64url ({_FORMAT})") from exc
    if len(key) != KEY_BYTES:
        raise ConfigurationError(f"{SETTING} entry {entry}: the key is {len(key)} bytes, not {KEY_BYTES}")
    return key


class Keyring:
    """The keys of COMPTAFLOW_SECRET_KEY: the first encrypts, every one decrypts what it encrypted."""

    __slots__ = ("_ciphers", "_current")

    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ConfigurationError(f"{SETTING} holds no key ({_FORMAT})")
        ciphers: dict[str, AESGCM] = {}
        for kid, key in keys:
            if not _KEY_ID.fullmatch(kid):
                raise ConfigurationError(f"{SETTING}: a key id must be 1 to 32 letters, digits, '-' or '_'")
            if len(key) != KEY_BYTES:
                raise ConfigurationError(f"{SETTING}: key {kid!r} is {len(key)} bytes, not {KEY_BYTES}")
            if kid in ciphers:
                raise ConfigurationError(f"{SETTING}: the key id {kid!r} appears more than once")
            ciphers[kid] = AESGCM(key)
        self._ciphers = ciphers
        self._current = keys[0][0]

    @classmethod
    def from_setting(cls, value: str) -> Keyring:
        """Parse `kid:key[,kid:key…]` (or one bare key, whose id is `k1`); never echoes key material."""
        if not value.strip():
            raise ConfigurationError(f"{SETTING} is empty ({_FORMAT})")
        keys: list[tuple[str, bytes]] = []
        for entry, item in enumerate(value.split(","), start=1):
            kid, colon, text = item.strip().rpartition(":")
            if not colon:
                kid = BARE_KEY_ID
            if not text:
                raise ConfigurationError(f"{SETTING} entry {entry} has no key ({_FORMAT})")
            if not _KEY_ID.fullmatch(kid):
                raise ConfigurationError(
                    f"{SETTING} entry {entry}: the key id must be 1 to 32 letters, digits, '-' or '_' ({_FORMAT})"
                )
            keys.append((kid, _decode_key(text, entry)))
        return cls(keys)

    @property
    def current_kid(self) -> str:
        """The id of the key that encrypts."""
        return self._current

    @property
    def kids(self) -> tuple[str, ...]:
        """Every key id, the current one first."""
        return tuple(self._ciphers)

    def __repr__(self) -> str:
        return f"Keyring(kids={self.kids!r})"

    def encrypt(self, plaintext: str, *, context: bytes) -> bytes:
        kid = self._current.encode("ascii")
        header = bytes((VERSION, len(kid))) + kid
        nonce = os.urandom(NONCE_BYTES)
        return header + nonce + self._ciphers[self._current].encrypt(nonce, plaintext.encode(), header + context)

    def decrypt(self, blob: bytes, *, context: bytes) -> str:
        """The plaintext of `blob`, which must have been encrypted in this `context` under one of these keys."""
        kid, header, nonce, sealed = _split(blob)
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise SecretUnreadable(
                f"the secret was encrypted under key {kid!r}, which {SETTING} does not hold "
                f"(it holds {', '.join(self.kids)})"
            )
        try:
            plaintext = cipher.decrypt(nonce, sealed, header + context)
        except InvalidTag as exc:
            raise SecretUnreadable(
                f"the secret does not decrypt under key {kid!r}: it was altered, "
                "or it is the ciphertext of another tenant or another secret name"
            ) from exc
        return plaintext.decode()


def _split(blob: bytes) -> tuple[str, bytes, bytes, bytes]:
    """(kid, header, nonce, ciphertext + tag) of a stored secret; its header read, nothing verified yet."""
    if not blob:
        raise SecretUnreadable("the stored secret is empty")
    if blob[0] != VERSION:
        raise SecretUnreadable(f"the stored secret has an unknown format (version {blob[0]}, expected {VERSION})")
    end = 2 + blob[1] if len(blob) > 1 else 2
    kid = blob[2:end].decode("ascii", errors="replace")
    if len(blob) < end + NONCE_BYTES + TAG_BYTES or not _KEY_ID.fullmatch(kid):
        raise SecretUnreadable("the stored secret is truncated or its header is malformed")
    return kid, blob[:end], blob[end : end + NONCE_BYTES], blob[end + NONCE_BYTES :]


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(f"a secret name is 1 to 100 of a-z, 0-9, '_', '.', '-', not {name!r}")


async def put_secret(conn: Conn, keyring: Keyring, tenant_id: str, name: str, value: str | SecretStr) -> None:
    """Store (or replace) a tenant's secret, encrypted under the current key."""
    _check_name(name)
    plaintext = value.get_secret_value() if isinstance(value, SecretStr) else value
    blob = keyring.encrypt(plaintext, context=secret_context(tenant_id, name))
    try:
        await conn.execute(
            "INSERT INTO tenant_secrets (tenant_id, name, key_id, ciphertext) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT (tenant_id, name) DO UPDATE"
            " SET key_id = EXCLUDED.key_id, ciphertext = EXCLUDED.ciphertext, updated_at = now()",
            tenant_id,
            name,
            keyring.current_kid,
            blob,
        )
    except asyncpg.ForeignKeyViolationError as exc:
        raise NotFound(f"tenant {tenant_id!r} does not exist") from exc
    log.info("tenant_secret_stored", tenant_id=tenant_id, name=name, key_id=keyring.current_kid)


async def use_secret(conn: Conn, keyring: Keyring, tenant_id: str, name: str) -> SecretStr | None:
    """Decrypt a tenant's secret to call the system it belongs to; `None` when it is not set.

    For internal use only: the value goes to that system and nowhere else (not into an API response, a
    message or a log event). Callers unwrap it with `.get_secret_value()` where it is sent.
    """
    _check_name(name)
    blob: bytes | None = await conn.fetchval(
        "SELECT ciphertext FROM tenant_secrets WHERE tenant_id = $1 AND name = $2", tenant_id, name
    )
    if blob is None:
        return None
    try:
        plaintext = keyring.decrypt(blob, context=secret_context(tenant_id, name))
    except SecretUnreadable as exc:
        raise SecretUnreadable(f"secret {name!r} of tenant {tenant_id!r}: {exc}") from exc
    log.debug("tenant_secret_used", tenant_id=tenant_id, name=name)
    return SecretStr(plaintext)


async def has_secret(conn: Conn, tenant_id: str, name: str) -> bool:
    """Whether the tenant has this secret set: all the API may ever say about it."""
    found: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM tenant_secrets WHERE tenant_id = $1 AND name = $2)", tenant_id, name
    )
    return found


async def delete_secret(conn: Conn, tenant_id: str, name: str) -> bool:
    """Forget a tenant's secret; whether there was one."""
    deleted = await conn.fetchval(
        "DELETE FROM tenant_secrets WHERE tenant_id = $1 AND name = $2 RETURNING true", tenant_id, name
    )
    if deleted:
        log.info("tenant_secret_deleted", tenant_id=tenant_id, name=name)
    return bool(deleted)


async def count_not_current(conn: Conn, keyring: Keyring) -> int:
    """How many secrets are stored under a key other than the current one (0: the old keys can go)."""
    count: int = await conn.fetchval("SELECT count(*) FROM tenant_secrets WHERE key_id <> $1", keyring.current_kid)
    return count


async def rotate(pool: asyncpg.Pool, keyring: Keyring, *, batch_size: int = ROTATE_BATCH) -> int:
    """Re-encrypt under the current key every secret stored under another; return how many this call did.

    Candidates are read `batch_size` at a time in key order; each is then locked, re-encrypted and written
    in a transaction of its own (`FOR UPDATE SKIP LOCKED`, checked again under the lock), so rotators can
    run side by side, a row being written meanwhile is left to its writer, and an interruption loses
    nothing: run it again. Rows that do not decrypt are passed over and reported at the end
    (`RotationIncomplete`), after every other row was re-encrypted.
    """
    current = keyring.current_kid
    rotated = 0
    unreadable: list[tuple[str, str, str]] = []
    after = ("", "")
    async with pool.acquire() as conn:
        while True:
            candidates = await conn.fetch(
                "SELECT tenant_id, name FROM tenant_secrets WHERE key_id <> $1 AND (tenant_id, name) > ($2, $3)"
                " ORDER BY tenant_id, name LIMIT $4",
                current,
                *after,
                batch_size,
            )
            for candidate in candidates:
                tenant_id, name = candidate["tenant_id"], candidate["name"]
                async with conn.transaction():
                    row = await conn.fetchrow(
                        "SELECT key_id, ciphertext FROM tenant_secrets"
                        " WHERE tenant_id = $1 AND name = $2 AND key_id <> $3 FOR UPDATE SKIP LOCKED",
                        tenant_id,
                        name,
                        current,
                    )
                    if row is None:  # rotated or being written by someone else meanwhile
                        continue
                    context = secret_context(tenant_id, name)
                    try:
                        plaintext = keyring.decrypt(row["ciphertext"], context=context)
                    except SecretUnreadable:
                        unreadable.append((tenant_id, name, row["key_id"]))
                        continue
                    await conn.execute(
                        "UPDATE tenant_secrets SET key_id = $3, ciphertext = $4 WHERE tenant_id = $1 AND name = $2",
                        tenant_id,
                        name,
                        current,
                        keyring.encrypt(plaintext, context=context),
                    )
                rotated += 1
            if len(candidates) < batch_size:
                break
            after = (candidates[-1]["tenant_id"], candidates[-1]["name"])
    log.info("tenant_secrets_rotated", key_id=current, rotated=rotated, unreadable=len(unreadable))
    if unreadable:
        raise RotationIncomplete(rotated, unreadable)
    return rotated
