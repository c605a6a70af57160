"""HS256 access tokens (docs/api.md, Auth): what `verify` accepts and everything it refuses."""

from __future__ import annotations

import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from comptaflow.common.tokens import InvalidTokenError, Principal, Role, mint, verify

SECRET = "test-secret-" + "s" * 40
OTHER_SECRET = "other-secret-" + "o" * 40


def claims(**overrides: object) -> dict[str, object]:
    now = int(time.time())
    base: dict[str, object] = {"sub": "alice", "role": "accountant", "tenants": ["acme"], "iat": now, "exp": now + 60}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def test_mint_then_verify_gives_back_the_principal() -> None:
    before = int(time.time())
    token = mint(SECRET, sub="alice", role=Role.ACCOUNTANT, tenants=["acme", "beta"], ttl=600)
    principal = verify(SECRET, token)
    assert principal.expires_at is not None
    assert before + 600 <= principal.expires_at <= time.time() + 600
    assert principal == Principal(
        sub="alice", role=Role.ACCOUNTANT, tenants=frozenset({"acme", "beta"}), expires_at=principal.expires_at
    )
    header = jwt.get_unverified_header(token)
    assert header["alg"] == "HS256"
    payload = jwt.decode(token, SECRET, algorithms=["HS256"])
    assert payload["exp"] - payload["iat"] == 600
    assert set(payload) == {"sub", "role", "tenants", "iat", "exp"}


def test_an_expired_token_is_refused() -> None:
    token = mint(SECRET, sub="alice", role=Role.ADMIN, tenants=["*"], ttl=-1)
    with pytest.raises(InvalidTokenError, match=r"^ExpiredSignatureError$"):
        verify(SECRET, token)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = mint(OTHER_SECRET, sub="alice", role=Role.ADMIN, tenants=["*"])
    with pytest.raises(InvalidTokenError, match=r"^InvalidSignatureError$"):
        verify(SECRET, token)


def test_a_token_whose_claims_were_edited_is_refused() -> None:
    header, _, signature = mint(SECRET, sub="bob", role=Role.VIEWER, tenants=["acme"]).split(".")
    forged_payload = jwt.encode(claims(sub="bob", role="admin", tenants=["*"]), SECRET).split(".")[1]
    # A valid signature of *other* claims does not carry over.
    other_signature = mint(SECRET, sub="x", role=Role.VIEWER, tenants=[]).split(".")[2]
    for forged in (f"{header}.{forged_payload}.{signature}", f"{header}.{forged_payload}.{other_signature}"):
        with pytest.raises(InvalidTokenError, match=r"^InvalidSignatureError$"):
            verify(SECRET, forged)


def test_an_unsigned_token_alg_none_is_refused() -> None:
    token = jwt.encode(claims(role="admin", tenants=["*"]), key=None, algorithm="none")
    assert jwt.get_unverified_header(token)["alg"] == "none"
    with pytest.raises(InvalidTokenError, match=r"^InvalidAlgorithmError$"):
        verify(SECRET, token)


def test_an_rs256_token_is_refused_even_when_the_public_key_is_used_as_secret() -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(role="admin", tenants=["*"]), private_key, algorithm="RS256")
    public_pem = private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with pytest.raises(InvalidTokenError, match=r"^InvalidAlgorithmError$"):
        verify(SECRET, token)
    with pytest.raises(InvalidTokenError, match=r"^InvalidAlgorithmError$"):
        verify(public_pem.decode(), token)


@pytest.mark.parametrize("missing", ["sub", "role", "tenants", "exp"])
def test_a_token_missing_a_required_claim_is_refused(missing: str) -> None:
    token = jwt.encode({k: v for k, v in claims().items() if k != missing}, SECRET, algorithm="HS256")
    with pytest.raises(InvalidTokenError, match=r"^MissingRequiredClaimError$"):
        verify(SECRET, token)


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"sub": ""}, "sub"),
        ({"sub": 42}, "InvalidSubjectError"),  # PyJWT checks `sub` is a string itself
        ({"role": "superuser"}, "role"),
        ({"role": "Admin"}, "role"),
        ({"role": 1}, "role"),
        ({"role": ["admin"]}, "role"),
        ({"tenants": "acme"}, "tenants"),
        ({"tenants": "*"}, "tenants"),
        ({"tenants": {"acme": True}}, "tenants"),
        ({"tenants": ["acme", 7]}, "tenants"),
    ],
    ids=repr,
)
def test_a_token_with_unusable_claims_is_refused(overrides: dict[str, object], reason: str) -> None:
    token = jwt.encode(claims(**overrides), SECRET, algorithm="HS256")
    with pytest.raises(InvalidTokenError, match=rf"^{reason}$"):
        verify(SECRET, token)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "Bearer x.y.z"])
def test_garbage_is_refused(garbage: str) -> None:
    with pytest.raises(InvalidTokenError, match=r"^DecodeError$"):
        verify(SECRET, garbage)


def test_principal_with_star_sees_every_tenant() -> None:
    admin = verify(SECRET, mint(SECRET, sub="root", role=Role.ADMIN, tenants=["*"]))
    assert admin.all_tenants is True
    assert (admin.can_see("acme"), admin.can_see("anything-else")) == (True, True)
    assert (admin.can_write, admin.is_admin) == (True, True)


def test_principal_without_star_sees_only_its_tenants() -> None:
    viewer = verify(SECRET, mint(SECRET, sub="eve", role=Role.VIEWER, tenants=["acme", "beta"]))
    assert viewer.all_tenants is False
    assert [viewer.can_see(t) for t in ("acme", "beta", "gamma", "*x", "")] == [True, True, False, False, False]
    assert (viewer.can_write, viewer.is_admin) == (False, False)


def test_an_accountant_may_write_but_is_not_admin() -> None:
    accountant = Principal(sub="a", role=Role.ACCOUNTANT, tenants=frozenset())
    assert (accountant.can_write, accountant.is_admin, accountant.can_see("acme")) == (True, False, False)
