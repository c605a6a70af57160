"""Object storage on a real S3 server (SeaweedFS): streaming multipart uploads, reads, copies, deletes, errors."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from comptaflow.cli.embedded import S3Endpoint, free_port
from comptaflow.common.errors import DependencyUnavailable, NotFound
from comptaflow.common.storage import CHECKS_PREFIX, PART_SIZE, Storage, StoredObject

pytestmark = pytest.mark.infra

MiB = 1024 * 1024


async def test_a_large_object_written_in_chunks_is_stored_whole_with_its_size_and_sha256(
    storage: Storage, prefix: str
) -> None:
    data = os.urandom(2 * PART_SIZE + 3 * MiB + 17)  # three parts, the last one short
    key = prefix + "grand_livre.xlsx"
    writer = storage.writer(key, content_type="application/vnd.ms-excel")
    for start in range(0, len(data), MiB + 7):  # chunks that do not line up with the part size
        await writer.write(data[start : start + MiB + 7])
    stored = await writer.complete()

    assert stored == StoredObject(key=key, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    assert await storage.get_bytes(key) == data
    head = await storage.client.head_object(Bucket=storage.bucket, Key=key)
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "application/vnd.ms-excel"
    assert head["ETag"].strip('"').endswith("-3")  # the S3 signature of a three-part upload


async def test_a_small_object_is_stored_with_a_single_put(storage: Storage, prefix: str) -> None:
    writer = storage.writer(prefix + "fec.txt")
    await writer.write(b"JournalCode|JournalLib\n")
    await writer.write(b"VE|Ventes\n")
    stored = await writer.complete()
    content = b"JournalCode|JournalLib\nVE|Ventes\n"
    assert stored == StoredObject(prefix + "fec.txt", len(content), hashlib.sha256(content).hexdigest())
    assert await storage.get_bytes(prefix + "fec.txt") == content


async def test_abort_after_parts_were_sent_leaves_no_object_and_no_pending_upload(
    storage: Storage, prefix: str
) -> None:
    key = prefix + "aborted.bin"
    writer = storage.writer(key)
    await writer.write(os.urandom(PART_SIZE + MiB))  # one part sent, the rest buffered
    uploads = await storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=prefix)
    assert [u["Key"] for u in uploads.get("Uploads", [])] == [key]

    await writer.abort()
    await writer.abort()  # idempotent

    assert await storage.exists(key) is False
    assert await storage.list_keys(prefix) == []
    uploads = await storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=prefix)
    assert uploads.get("Uploads", []) == []


async def test_the_multipart_check_completes_an_upload_and_leaves_nothing_behind(storage: Storage) -> None:
    await storage.check_multipart()
    await storage.check_multipart()
    assert await storage.list_keys(CHECKS_PREFIX) == []
    uploads = await storage.client.list_multipart_uploads(Bucket=storage.bucket, Prefix=CHECKS_PREFIX)
    assert uploads.get("Uploads", []) == []


async def test_the_multipart_check_fails_clearly_with_refused_credentials(storage: Storage, s3: S3Endpoint) -> None:
    refused = Storage(
        endpoint=s3.endpoint, access_key=s3.access_key, secret_key="not-the-secret", bucket=storage.bucket
    )
    await refused.open()
    try:
        with pytest.raises(DependencyUnavailable, match=f"multipart upload check in bucket {storage.bucket}: S3 error"):
            await refused.check_multipart()
    finally:
        await refused.close()


async def test_put_copy_exists_list_and_delete_prefix(storage: Storage, prefix: str) -> None:
    await storage.put_bytes(prefix + "incoming/a.txt", b"alpha")
    await storage.put_bytes(prefix + "incoming/b.txt", b"bravo")
    await storage.put_bytes(prefix + "incoming/sub/c.txt", b"charlie")
    await storage.put_bytes(prefix + "kept/d.txt", b"delta")
    await storage.copy(prefix + "incoming/a.txt", prefix + "kept/a-copy.txt")

    assert await storage.get_bytes(prefix + "kept/a-copy.txt") == b"alpha"
    assert await storage.exists(prefix + "incoming/a.txt") is True
    assert await storage.exists(prefix + "incoming/zzz.txt") is False
    assert sorted(await storage.list_keys(prefix + "incoming/")) == [
        prefix + "incoming/a.txt",
        prefix + "incoming/b.txt",
        prefix + "incoming/sub/c.txt",
    ]

    assert await storage.delete_prefix(prefix + "incoming/") == 3
    assert await storage.list_keys(prefix + "incoming/") == []
    assert await storage.exists(prefix + "incoming/a.txt") is False
    assert sorted(await storage.list_keys(prefix)) == [prefix + "kept/a-copy.txt", prefix + "kept/d.txt"]
    assert await storage.delete_prefix(prefix + "nothing-here/") == 0


async def test_list_keys_pages_through_more_than_a_thousand_objects(storage: Storage, prefix: str) -> None:
    keys = [f"{prefix}many/{i:05d}" for i in range(1005)]
    for key in keys:
        await storage.put_bytes(key, b"x")
    assert sorted(await storage.list_keys(prefix + "many/")) == keys
    assert await storage.delete_prefix(prefix + "many/") == 1005
    assert await storage.list_keys(prefix + "many/") == []


async def test_upload_file_and_download_file_stream_through_disk(storage: Storage, prefix: str, tmp_path: Path) -> None:
    data = os.urandom(PART_SIZE + 5 * MiB + 3)
    source, target = tmp_path / "source.bin", tmp_path / "downloaded.bin"
    source.write_bytes(data)
    await storage.upload_file(prefix + "upload.bin", source)

    size = await storage.download_file(prefix + "upload.bin", target)

    assert size == len(data)
    assert hashlib.sha256(target.read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()


async def test_reading_a_missing_key_is_not_found(storage: Storage, prefix: str, tmp_path: Path) -> None:
    with pytest.raises(NotFound, match=f"get {prefix}missing: not found"):
        await storage.get_bytes(prefix + "missing")
    with pytest.raises(NotFound):
        await storage.download_file(prefix + "missing", tmp_path / "out.bin")
    with pytest.raises(NotFound):
        await storage.copy(prefix + "missing", prefix + "copy")


async def test_ping_is_true_on_a_reachable_bucket(storage: Storage) -> None:
    assert await storage.ping() is True


async def test_ensure_bucket_creates_a_missing_bucket_and_is_idempotent(s3: S3Endpoint, prefix: str) -> None:
    bucket = "cf-" + prefix.strip("/").removeprefix("test-")[:20]
    storage = Storage(endpoint=s3.endpoint, access_key=s3.access_key, secret_key=s3.secret_key, bucket=bucket)
    await storage.open()
    try:
        assert await storage.ping() is False
        await storage.ensure_bucket()
        await storage.ensure_bucket()
        assert await storage.ping() is True
        await storage.client.delete_bucket(Bucket=bucket)
    finally:
        await storage.close()


@pytest.mark.slow  # botocore retries a refused connection (3 attempts, jittered back-off): a few seconds per call
async def test_a_storage_on_a_closed_port_is_unavailable(tmp_path: Path) -> None:
    storage = Storage(endpoint=f"http://127.0.0.1:{free_port()}", access_key="a", secret_key="b", bucket="nowhere")
    await storage.open()
    try:
        assert await storage.ping() is False
        with pytest.raises(DependencyUnavailable, match=r"^get k: S3 unreachable \(EndpointConnectionError\)$"):
            await storage.get_bytes("k")
        with pytest.raises(DependencyUnavailable, match=r"^head k: S3 unreachable \(EndpointConnectionError\)$"):
            await storage.exists("k")
        with pytest.raises(DependencyUnavailable, match=r"^bucket nowhere: S3 unreachable"):
            await storage.ensure_bucket()
    finally:
        await storage.close()


async def test_a_storage_that_is_not_open_says_so() -> None:
    storage = Storage(endpoint="http://127.0.0.1:1", access_key="a", secret_key="b", bucket="b")
    with pytest.raises(DependencyUnavailable, match=r"storage is not open \(call open\(\) first\)"):
        await storage.get_bytes("k")
    assert await storage.ping() is False
