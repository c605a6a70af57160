"""Live progress over WebSocket (docs/api.md, WebSocket): `GET /api/v1/ws?token=JWT`.

Client → server, any number of times:
    {"subscribe": {"tenant_id": "acme"}}   every event of a tenant the token lists
    {"subscribe": {"batch_id": "<uuid>"}}  the events of one batch of such a tenant
    {"subscribe": {"job_id": "<uuid>"}}    the events of one job of such a tenant
Server → client:
    {"type": "subscribed", "tenant_id": …} or {"type": "subscribed", "batch_id" | "job_id": …, "status", "stage",
    "progress"}
    {"type": "status", …}                  `StatusEvent.wire()`, in bus order
    {"type": "error", "error": {"code": "NOT_FOUND" | "BAD_REQUEST" | "TOO_MANY_SUBSCRIPTIONS", …}}
Close codes: 4401 bad or missing token, or the token expired during the session; 1013 the client did not
keep up; 1001 server shutting down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from typing import Any

import structlog
from fastapi import APIRouter, WebSocket
from starlette.websockets import WebSocketDisconnect, WebSocketState

from comptaflow.common import batches, jobs
from comptaflow.common.metrics import WEBSOCKET_CLIENTS
from comptaflow.common.tokens import Principal
from comptaflow.gateway.auth import authenticate_token, visible_tenant
from comptaflow.gateway.errors import ApiError, envelope
from comptaflow.gateway.state import GatewayState, gateway_state
from comptaflow.gateway.status_hub import EndOfStream, Subscription

router = APIRouter(prefix="/api/v1", tags=["live"])
log = structlog.get_logger("comptaflow.gateway.ws")

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_SLOW = 1013
CLOSE_GOING_AWAY = 1001
CLOSE_NORMAL = 1000
CLOSE_INTERNAL_ERROR = 1011
MAX_SUBSCRIPTIONS = 100
_CLOSE_CODES = {EndOfStream.TOO_SLOW: CLOSE_TOO_SLOW, EndOfStream.SHUTDOWN: CLOSE_GOING_AWAY}


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@router.websocket("/ws", name="status_websocket")
async def status_websocket(websocket: WebSocket) -> None:
    state = gateway_state(websocket)
    await websocket.accept()
    try:
        who = authenticate_token(state.jwt_secret, websocket.query_params.get("token"))
    except ApiError:
        await websocket.close(code=CLOSE_UNAUTHORIZED, reason="unauthorized")
        return
    await _Session(websocket, state, who).run()


class _Session:
    def __init__(self, websocket: WebSocket, state: GatewayState, who: Principal) -> None:
        self._ws = websocket
        self._state = state
        self._who = who
        self._send_lock = asyncio.Lock()

    async def run(self) -> None:
        subscription = self._state.hub.subscribe()
        WEBSOCKET_CLIENTS.inc()
        log.info("websocket_opened", sub=self._who.sub)
        reader = asyncio.create_task(self._read(subscription), name="ws-read")
        writer = asyncio.create_task(self._write(subscription), name="ws-write")
        expiry = asyncio.create_task(self._expire(), name="ws-expiry")
        tasks = (reader, writer, expiry)
        failed = True
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            errors = [t.exception() for t in done if not t.cancelled() and t.exception() is not None]
            for error in errors:
                log.warning("websocket_failed", error=type(error).__name__, reason=str(error))
            failed = bool(errors)
        finally:
            for task in tasks:  # also when this handler itself is cancelled
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self._state.hub.unsubscribe(subscription)
            WEBSOCKET_CLIENTS.dec()
            await self._close(CLOSE_INTERNAL_ERROR if failed else CLOSE_NORMAL)
            log.info("websocket_closed", subscriptions=subscription.size)

    async def _close(self, code: int, reason: str = "") -> None:
        """Close unless either side already did."""
        async with self._send_lock:
            if (
                self._ws.application_state is WebSocketState.CONNECTED
                and self._ws.client_state is WebSocketState.CONNECTED
            ):
                with contextlib.suppress(RuntimeError, WebSocketDisconnect, OSError):
                    await self._ws.close(code=code, reason=reason)

    async def _expire(self) -> None:
        """End the session when its token expires: a socket never outlives the rights it was opened with."""
        if self._who.expires_at is None:
            await asyncio.Event().wait()
            return
        await asyncio.sleep(max(0.0, self._who.expires_at - time.time()))
        log.info("websocket_token_expired", sub=self._who.sub)
        await self._close(CLOSE_UNAUTHORIZED, "token expired")

    async def _send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self._ws.send_text(json.dumps(message, separators=(",", ":"), ensure_ascii=False))

    async def _write(self, subscription: Subscription) -> None:
        while True:
            item = await subscription.queue.get()
            if isinstance(item, EndOfStream):
                await self._close(_CLOSE_CODES[item], item.value)
                return
            await self._send(item.wire())

    async def _read(self, subscription: Subscription) -> None:
        while True:
            message = await self._ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text")
            try:
                if text is None:
                    raise _Refused("BAD_REQUEST", "send JSON text frames")
                ack = await self._subscribe(subscription, text)
            except _Refused as refused:
                await self._send({"type": "error", **envelope(refused.code, refused.message)})
                continue
            await self._send(ack)

    async def _subscribe(self, subscription: Subscription, text: str) -> dict[str, Any]:
        target = _parse_subscribe(text)
        if subscription.size >= MAX_SUBSCRIPTIONS:
            raise _Refused("TOO_MANY_SUBSCRIPTIONS", f"at most {MAX_SUBSCRIPTIONS} subscriptions per connection")
        if "tenant_id" in target:
            tenant_id = target["tenant_id"]
            try:
                await visible_tenant(self._state, self._who, tenant_id)
            except ApiError as exc:
                raise _Refused(exc.code, exc.message) from None
            subscription.add_tenant(tenant_id)
            log.info("websocket_subscribed", tenant_id=tenant_id)
            return {"type": "subscribed", "tenant_id": tenant_id}
        if "job_id" in target:
            return await self._subscribe_job(subscription, target["job_id"])
        try:
            batch_id = uuid.UUID(target["batch_id"])
        except ValueError:
            raise _Refused("NOT_FOUND", "batch not found") from None
        async with self._state.infra.db.acquire() as conn:
            batch = await batches.get_batch(conn, batch_id)
        if batch is None or not self._who.can_see(batch.tenant_id):
            raise _Refused("NOT_FOUND", "batch not found")
        subscription.add_batch(batch.id, batch.tenant_id)
        log.info("websocket_subscribed", tenant_id=batch.tenant_id, batch_id=str(batch.id))
        # The current state, so a client that subscribes late knows where the batch stands.
        return {
            "type": "subscribed",
            "batch_id": str(batch.id),
            "tenant_id": batch.tenant_id,
            "status": batch.status.value,
            "stage": batch.stage,
            "progress": batch.progress,
        }

    async def _subscribe_job(self, subscription: Subscription, value: str) -> dict[str, Any]:
        try:
            job_id = uuid.UUID(value)
        except ValueError:
            raise _Refused("NOT_FOUND", "job not found") from None
        async with self._state.infra.db.acquire() as conn:
            job = await jobs.get_job(conn, job_id)
        if job is None or not self._who.can_see(job.tenant_id):
            raise _Refused("NOT_FOUND", "job not found")
        subscription.add_job(job.id, job.tenant_id)
        log.info("websocket_subscribed", tenant_id=job.tenant_id, job_id=str(job.id))
        return {
            "type": "subscribed",
            "job_id": str(job.id),
            "tenant_id": job.tenant_id,
            "status": job.status.value,
            "stage": job.stage,
            "progress": job.progress,
        }


def _parse_subscribe(text: str) -> dict[str, str]:
    """`{"subscribe": {"tenant_id" | "batch_id" | "job_id": …}}`, else BAD_REQUEST."""
    bad = _Refused(
        "BAD_REQUEST",
        'expected {"subscribe": {"tenant_id": "..."}}, {"subscribe": {"batch_id": "..."}}'
        ' or {"subscribe": {"job_id": "..."}}',
    )
    try:
        message = json.loads(text)
    except ValueError:
        raise bad from None
    if not isinstance(message, dict) or set(message) != {"subscribe"}:
        raise bad
    target = message["subscribe"]
    if not isinstance(target, dict) or len(target) != 1:
        raise bad
    key, value = next(iter(target.items()))
    if key not in ("tenant_id", "batch_id", "job_id") or not isinstance(value, str) or not value:
        raise bad
    return {key: value}
