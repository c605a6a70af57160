"""The opaque cursor of the newest-first listings (batches, jobs): the last item's `created_at` and id.

It is base64url text that clients pass back unchanged; a cursor this API did not return is answered 422
`INVALID_CURSOR`. (The ledger's cursor, a position in the ledger's order, is `routes.ledger`'s own.)
"""

from __future__ import annotations

import base64
import binascii
import uuid
from datetime import datetime

from comptaflow.gateway.errors import ApiError


def encode(created_at: datetime, item_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{item_id}".encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        stamp, _, ident = raw.partition("|")
        created_at = datetime.fromisoformat(stamp)
        if created_at.tzinfo is None:
            raise ValueError("naive timestamp")
        return created_at, uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(422, "INVALID_CURSOR", "the cursor is not one this API returned", {"cursor": cursor}) from None
