"""JWT (HS256) access tokens: claims `sub`, `role`, `tenants`, `exp` (docs/api.md, Auth).

The time claims `exp`, `iat` and `nbf` are NumericDates (RFC 7519 §2): JSON numbers. PyJWT checks them
with `int(value)`, so on its own it accepts a numeric string (`"exp": "1999999999"`) or a boolean; such a
token is refused here, because code that reads the claim as a number (a WebSocket's expiry) would
otherwise see no expiry at all.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

import jwt

ALGORITHM = "HS256"
ALL_TENANTS = "*"
TIME_CLAIMS = ("exp", "iat", "nbf")


class Role(StrEnum):
    ADMIN = "admin"
    ACCOUNTANT = "accountant"
    VIEWER = "viewer"


class InvalidTokenError(Exception):
    """The token is missing, malformed, badly signed, expired, or has unusable claims."""


@dataclass(frozen=True, slots=True)
class Principal:
    sub: str
    role: Role
    tenants: frozenset[str]
    expires_at: float | None = None  # the token's `exp` (Unix time): a long-lived session ends there

    @property
    def all_tenants(self) -> bool:
        return ALL_TENANTS in self.tenants

    def can_see(self, tenant_id: str) -> bool:
        return self.all_tenants or tenant_id in self.tenants

    @property
    def can_write(self) -> bool:
        return self.role in (Role.ADMIN, Role.ACCOUNTANT)

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN


def mint(secret: str, *, sub: str, role: Role, tenants: Sequence[str], ttl: int = 3600) -> str:
    now = int(time.time())
    claims = {"sub": sub, "role": role.value, "tenants": list(tenants), "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["sub", "role", "tenants", "exp"]}
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(type(exc).__name__) from exc
    for name in TIME_CLAIMS:
        if name in claims and not _is_numeric_date(claims[name]):
            raise InvalidTokenError(name)
    sub, role, tenants = claims.get("sub"), claims.get("role"), claims.get("tenants")
    if not isinstance(sub, str) or not sub:
        raise InvalidTokenError("sub")
    if not isinstance(role, str):
        raise InvalidTokenError("role")
    try:
        parsed_role = Role(role)
    except ValueError as exc:
        raise InvalidTokenError("role") from exc
    if not isinstance(tenants, list) or not all(isinstance(t, str) for t in tenants):
        raise InvalidTokenError("tenants")
    return Principal(sub=sub, role=parsed_role, tenants=frozenset(tenants), expires_at=float(claims["exp"]))


def _is_numeric_date(value: object) -> bool:
    """A JSON number a float can hold: not a bool (an int subclass), a string, nor an int beyond any float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an integer literal of hundreds of digits
        return False
