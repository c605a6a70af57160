"""File names of an upload are display names (docs/api.md, Upload: `files[].filename`): whatever bytes a client puts
in `filename="…"`, the name shown back is NFC, without controls nor invisible formatting characters, at most
MAX_FILENAME_CHARS with its extension kept; the object key never depends on it."""

from __future__ import annotations

import uuid

import pytest

from comptaflow.gateway.filename import MAX_FILENAME_CHARS, clean_filename
from comptaflow.gateway.form_stream import MAX_PART_HEADER_BYTES
from tests.gateway.support import Gateway, fec_bytes
from tests.gateway.test_auth_tenants import assert_error
from tests.gateway.test_upload import assert_nothing_stored


async def upload_fec_with(gateway: Gateway, tenant: str, disposition_params: bytes) -> tuple[int, dict[str, object]]:
    """Upload one FEC whose Content-Disposition ends with `disposition_params`, sent byte for byte."""
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="fec"; '
        + disposition_params
        + b"\r\nContent-Type: text/plain\r\n\r\n"
        + fec_bytes()
        + b"\r\n--xyz--\r\n"
    )
    response = await gateway.client.post(
        f"/api/v1/tenants/{tenant}/batches",
        content=body,
        headers={**gateway.auth(tenant), "Content-Type": "multipart/form-data; boundary=xyz"},
    )
    payload: dict[str, object] = response.json()
    return response.status_code, payload


def quoted(name: str) -> bytes:
    return b'filename="' + name.encode() + b'"'


LONG_STEM = "a" * 4995


@pytest.mark.parametrize(
    ("params", "shown"),
    [
        # A raw CRLF ends the header inside the quotes: the rest became a header of the part, and the name
        # was kept with its opening quote (`"a.xlsx`).
        (b'filename="a.xlsx\r\nX-Injected: 1"', "a.xlsx"),
        (b'filename=\n"a.xlsx"', "a.xlsx"),  # a bare LF before the quotes kept both of them
        (b'filename="a\nb\r\nX: y.txt"', "ab"),
        (quoted("invoice\u202egpj.txt"), "invoicegpj.txt"),  # would display as "invoicetxt.jpg"
        (
            quoted("\u200bF\u200cE\u200dC\u2060\u2066_\u2069\u200e2024\u200f\u061c\u202a\u202b\u202c\u202d\ufeff.txt"),
            "FEC_2024.txt",
        ),
        (quoted("f\x01e\x1bc\x7f\u0085\u009f\u2028.txt"), "fec.txt"),  # C0, DEL, C1, line separator
        (quoted(LONG_STEM + ".txt"), "a" * (MAX_FILENAME_CHARS - 4) + ".txt"),
        (quoted("é" * 5000 + ".xlsx"), "é" * (MAX_FILENAME_CHARS - 5) + ".xlsx"),  # 10 KB of header
        (quoted("e\u0301tat-2024.txt"), "\u00e9tat-2024.txt"),  # NFD (macOS) → NFC
        (quoted("\u202e\u200b"), "fec"),  # nothing visible left: the field name
        (b'filename="C:\\\\Users\\\\me\\\\FEC 2024.txt"', "FEC 2024.txt"),
    ],
    ids=[
        "crlf",
        "bare-lf",
        "lf-and-crlf",
        "rlo",
        "bidi-and-zero-width",
        "controls",
        "5000-chars",
        "5000-two-byte-chars",
        "nfd",
        "only-invisible",
        "windows-path",
    ],
)
@pytest.mark.infra
async def test_file_names_come_back_cleaned(gateway: Gateway, params: bytes, shown: str) -> None:
    tenant = await gateway.create_tenant()
    status, accepted = await upload_fec_with(gateway, tenant, params)
    assert status == 202, accepted
    batch_id = accepted["batch_id"]

    response = await gateway.client.get(f"/api/v1/batches/{batch_id}", headers=gateway.auth(tenant))
    assert response.status_code == 200
    [file] = response.json()["files"]
    assert file["field"] == "fec"
    assert file["filename"] == shown
    assert file["size"] == len(fec_bytes())
    assert await gateway.stored_keys(tenant) == [f"{tenant}/incoming/{uuid.UUID(str(batch_id))}/fec.txt"]


@pytest.mark.infra
async def test_a_crlf_that_smuggles_a_second_disposition_is_refused(gateway: Gateway) -> None:
    """The name would be chosen by whichever header a parser keeps: the part is malformed instead."""
    tenant = await gateway.create_tenant()
    params = b'filename="a.txt\r\nContent-Disposition: form-data; name="fec"; filename="b.txt"'
    status, body = await upload_fec_with(gateway, tenant, params)
    assert status == 422
    assert_error(body, "BAD_MULTIPART")
    await assert_nothing_stored(gateway, tenant)


@pytest.mark.infra
async def test_a_part_header_beyond_the_bound_is_refused(gateway: Gateway) -> None:
    tenant = await gateway.create_tenant()
    status, body = await upload_fec_with(gateway, tenant, quoted("a" * MAX_PART_HEADER_BYTES + ".txt"))
    assert status == 422
    assert_error(body, "BAD_MULTIPART")
    await assert_nothing_stored(gateway, tenant)


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a" * 300, "a" * MAX_FILENAME_CHARS),  # no extension: cut
        ("a" * 300 + "." + "b" * 20, ("a" * 300 + "." + "b" * 20)[:MAX_FILENAME_CHARS]),  # no real extension
        ("a" * 250 + "     " + "b" * 10 + ".xlsx", "a" * 250 + ".xlsx"),  # no space before the extension
        ('  "rapport.xlsx"  ', "rapport.xlsx"),
        ("", "plan_tiers"),
    ],
    ids=["no-extension", "long-tail", "space-at-the-cut", "quotes-and-spaces", "empty"],
)
def test_clean_filename(raw: str, shown: str) -> None:
    assert clean_filename(raw, "plan_tiers") == shown
