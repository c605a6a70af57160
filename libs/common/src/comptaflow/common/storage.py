"""S3 object storage on aiobotocore (SeaweedFS embedded, any S3 in production).

Uploads stream: `ObjectWriter` sends 8 MiB parts as they fill and computes size and sha256 on the
way, so no file is ever held whole in memory. botocore exceptions become `DependencyUnavailable`
(unreachable, throttled, 5xx) or `NotFound` (no such key) here.
"""

from __future__ import annotations

import contextlib
import hashlib
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from aiobotocore.config import AioConfig
from aiobotocore.session import get_session
from botocore.exceptions import BotoCoreError, ClientError

from comptaflow.common.errors import DependencyUnavailable, NotFound

if TYPE_CHECKING:
    from types_aiobotocore_s3 import S3Client

log = structlog.get_logger("comptaflow.storage")

PART_SIZE = 8 * 1024 * 1024
CHECKS_PREFIX = "_checks/"
"""Keys the service writes to check the store; never a tenant's (tenant ids cannot start with `_`)."""
_NOT_FOUND = {"NoSuchKey", "404", "NotFound", "NoSuchUpload"}


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str
    size: int
    sha256: str


def _translate(exc: Exception, what: str) -> Exception:
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in _NOT_FOUND:
            return NotFound(f"{what}: not found")
        return DependencyUnavailable(f"{what}: S3 error {code}")
    return DependencyUnavailable(f"{what}: S3 unreachable ({type(exc).__name__})")


class Storage:
    def __init__(
        self, *, endpoint: str, access_key: str, secret_key: str, bucket: str, region: str = "us-east-1"
    ) -> None:
        self.bucket = bucket
        self._endpoint = endpoint
        self._access_key = access_key
        self._secret_key = secret_key
        self._region = region
        self._stack = contextlib.AsyncExitStack()
        self._client: S3Client | None = None

    async def open(self) -> None:
        session = get_session()
        config = AioConfig(
            connect_timeout=10,
            read_timeout=120,
            retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": "path"},
            max_pool_connections=32,
        )
        self._client = await self._stack.enter_async_context(
            session.create_client(
                "s3",
                endpoint_url=self._endpoint,
                aws_access_key_id=self._access_key,
                aws_secret_access_key=self._secret_key,
                region_name=self._region,
                config=config,
            )
        )

    async def close(self) -> None:
        await self._stack.aclose()
        self._client = None

    @property
    def client(self) -> S3Client:
        if self._client is None:
            raise DependencyUnavailable("storage is not open (call open() first)")
        return self._client

    async def ensure_bucket(self) -> None:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except ClientError:
            try:
                await self.client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise _translate(exc, f"create bucket {self.bucket}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"bucket {self.bucket}") from exc

    async def ping(self) -> bool:
        try:
            await self.client.head_bucket(Bucket=self.bucket)
        except (ClientError, BotoCoreError, DependencyUnavailable, OSError):
            return False
        return True

    def writer(self, key: str, *, content_type: str = "application/octet-stream") -> ObjectWriter:
        return ObjectWriter(self, key, content_type)

    async def put_bytes(self, key: str, data: bytes, *, content_type: str = "application/octet-stream") -> None:
        try:
            await self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"put {key}") from exc

    async def upload_file(self, key: str, path: Path, *, content_type: str = "application/octet-stream") -> None:
        writer = self.writer(key, content_type=content_type)
        try:
            with path.open("rb") as fh:
                while chunk := fh.read(PART_SIZE):
                    await writer.write(chunk)
            await writer.complete()
        except BaseException:
            await writer.abort()
            raise

    async def get_bytes(self, key: str) -> bytes:
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                data: bytes = await body.read()
                return data
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"get {key}") from exc

    async def download_file(self, key: str, path: Path) -> int:
        """Stream an object to `path`; return its size."""
        size = 0
        try:
            response = await self.client.get_object(Bucket=self.bucket, Key=key)
            async with response["Body"] as body:
                with path.open("wb") as fh:
                    async for chunk in body.iter_chunks(1024 * 1024):
                        fh.write(chunk)
                        size += len(chunk)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"get {key}") from exc
        return size

    async def copy(self, source_key: str, target_key: str) -> None:
        try:
            await self.client.copy_object(
                Bucket=self.bucket, Key=target_key, CopySource={"Bucket": self.bucket, "Key": source_key}
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"copy {source_key}") from exc

    async def list_keys(self, prefix: str) -> list[str]:
        keys: list[str] = []
        try:
            paginator = self.client.get_paginator("list_objects_v2")
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"] for obj in page.get("Contents", []) if "Key" in obj)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"list {prefix}") from exc
        return keys

    async def delete_keys(self, keys: list[str]) -> None:
        try:
            for start in range(0, len(keys), 1000):
                chunk = keys[start : start + 1000]
                await self.client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in chunk], "Quiet": True}
                )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, "delete objects") from exc

    async def delete_prefix(self, prefix: str) -> int:
        keys = await self.list_keys(prefix)
        await self.delete_keys(keys)
        return len(keys)

    async def check_multipart(self) -> None:
        """Open, fill, complete and delete a one-byte multipart upload: the path every uploaded file takes.

        A store or credentials that refuse it fail here, when the service starts, rather than on the
        first upload; SeaweedFS also sets up a bucket's multipart uploads on first use (about 0.2 s),
        which then happens here."""
        key = f"{CHECKS_PREFIX}multipart-{uuid.uuid4().hex}"
        client = self.client
        try:
            created = await client.create_multipart_upload(Bucket=self.bucket, Key=key)
            upload_id = created["UploadId"]
            try:
                part = await client.upload_part(
                    Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=1, Body=b"x"
                )
                await client.complete_multipart_upload(
                    Bucket=self.bucket,
                    Key=key,
                    UploadId=upload_id,
                    MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]},
                )
            except BaseException:
                with contextlib.suppress(ClientError, BotoCoreError):
                    await client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
                raise
            await client.delete_object(Bucket=self.bucket, Key=key)
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"multipart upload check in bucket {self.bucket}") from exc

    async def exists(self, key: str) -> bool:
        try:
            await self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if str(exc.response.get("Error", {}).get("Code", "")) in _NOT_FOUND:
                return False
            raise _translate(exc, f"head {key}") from exc
        except BotoCoreError as exc:
            raise _translate(exc, f"head {key}") from exc
        return True


class ObjectWriter:
    """Streaming multipart upload: `write()` chunks, then `complete()` or `abort()`."""

    def __init__(self, storage: Storage, key: str, content_type: str) -> None:
        self._storage = storage
        self.key = key
        self._content_type = content_type
        self._buffer = bytearray()
        self._parts: list[dict[str, Any]] = []
        self._upload_id: str | None = None
        self._hash = hashlib.sha256()
        self.size = 0
        self._done = False

    async def write(self, data: bytes) -> None:
        self._hash.update(data)
        self.size += len(data)
        self._buffer += data
        if len(self._buffer) >= PART_SIZE:
            await self._flush_part()

    async def _flush_part(self) -> None:
        client = self._storage.client
        try:
            if self._upload_id is None:
                created = await client.create_multipart_upload(
                    Bucket=self._storage.bucket, Key=self.key, ContentType=self._content_type
                )
                self._upload_id = created["UploadId"]
            number = len(self._parts) + 1
            part = await client.upload_part(
                Bucket=self._storage.bucket,
                Key=self.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=bytes(self._buffer),
            )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"upload {self.key}") from exc
        self._parts.append({"PartNumber": number, "ETag": part["ETag"]})
        self._buffer.clear()

    async def complete(self) -> StoredObject:
        client = self._storage.client
        try:
            if self._upload_id is None:
                await client.put_object(
                    Bucket=self._storage.bucket, Key=self.key, Body=bytes(self._buffer), ContentType=self._content_type
                )
            else:
                if self._buffer:
                    await self._flush_part()
                await client.complete_multipart_upload(
                    Bucket=self._storage.bucket,
                    Key=self.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": self._parts},  # type: ignore[typeddict-item]
                )
        except (ClientError, BotoCoreError) as exc:
            raise _translate(exc, f"upload {self.key}") from exc
        self._done = True
        self._buffer.clear()
        return StoredObject(self.key, self.size, self._hash.hexdigest())

    async def abort(self) -> None:
        """Forget everything written (idempotent; never raises for a missing upload)."""
        self._buffer.clear()
        if self._done or self._upload_id is None:
            return
        with contextlib.suppress(ClientError, BotoCoreError, DependencyUnavailable):
            await self._storage.client.abort_multipart_upload(
                Bucket=self._storage.bucket, Key=self.key, UploadId=self._upload_id
            )
        self._upload_id = None
