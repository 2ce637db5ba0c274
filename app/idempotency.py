"""Retry-safe writes: an `Idempotency-Key` makes a retried create return the first answer.

A client that sends the same key with the same request again (because its first attempt
timed out, or was answered 503 although the commit reached the database) gets the first
answer back, byte for byte, with `Idempotent-Replayed: true`, and nothing is written
again. The same key with a different request is a 422. The header (or, for a browser's
form post, the hidden field `idempotency_key`) is optional; without it a write is a write.

How it stays exact: the answer is stored in the same database transaction as the write it
describes (`commit`), so the two are stored together or not at all; a retry that finds the
key replays, one that does not runs the write. Two requests with the same key at the same
time both try to insert the key; the primary key lets one commit, the other rolls back its
whole write and replays the winner's answer.

Bounds: keys are 1..255 visible ASCII characters, scoped to the route (the same key on two
routes is two keys; there are no accounts to scope by), kept IDEMPOTENCY_RETENTION seconds,
and expired rows are deleted by every web process at most once a minute: the table holds at
most one retention window of keyed writes. Only answers that wrote are stored: an error
wrote nothing, so its retry simply runs again.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import ParamSpec, TypeVar

from flask import Response, current_app, g, request
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from werkzeug.wrappers.response import Response as BaseResponse

from app.db import commit_and_keep, db
from app.errors import ApiError
from app.models import IdempotencyKey, utcnow

log = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
REPLAY_HEADER = "Idempotent-Replayed"
FORM_FIELD = "idempotency_key"
KEY_MAX = 255
_KEY = re.compile(rf"[\x21-\x7e]{{1,{KEY_MAX}}}")
CLEANUP_EVERY_S = 60.0

P = ParamSpec("P")
R = TypeVar("R")
W = TypeVar("W", bound=BaseResponse)


@dataclass(frozen=True)
class Claim:
    """The key a request writes under, and the fingerprint of that request."""

    scope: str
    key: str
    fingerprint: str


def _key_of_request() -> str | None:
    """The request's key: the header, else a form post's hidden field; None without one."""
    key = request.headers.get(HEADER)
    if key is None and request.mimetype in ("application/x-www-form-urlencoded",
                                            "multipart/form-data"):
        try:
            key = request.form.get(FORM_FIELD) or None
        except ApiError:
            return None  # not UTF-8: the view refuses the form with its own message
    if key is not None and not _KEY.fullmatch(key):
        raise ApiError(400, f"{HEADER} must be 1 to {KEY_MAX} visible ASCII characters")
    return key


def _fingerprint() -> str:
    """SHA-256 of what makes two requests the same request: method, path, query, type, body."""
    digest = hashlib.sha256()
    for part in (request.method.encode(), request.path.encode(), request.query_string,
                 (request.mimetype or "").encode(), request.get_data(cache=True)):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def _stored(claim: Claim) -> IdempotencyKey | None:
    """The live answer stored under claim's key; an expired one is deleted and ignored."""
    row = db.session.get(IdempotencyKey, (claim.scope, claim.key))
    if row is not None and row.expires_at <= utcnow():
        db.session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.scope == claim.scope, IdempotencyKey.key == claim.key,
            IdempotencyKey.expires_at <= utcnow()))
        db.session.commit()
        return None
    return row


def _replay(row: IdempotencyKey, claim: Claim) -> Response:
    """The stored answer again, or 422 when the key came with a different request."""
    if row.fingerprint != claim.fingerprint:
        raise ApiError(422, f"this {HEADER} was already used with a different request")
    response = Response(row.body, status=row.status, content_type=row.content_type)
    if row.location:
        response.headers["Location"] = row.location
    response.headers[REPLAY_HEADER] = "true"
    return response


def idempotent(view: Callable[P, R]) -> Callable[P, R | Response]:
    """Make a creating view honour Idempotency-Key; the view saves its answer with commit()."""

    @functools.wraps(view)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R | Response:
        key = _key_of_request()
        if key is None:
            return view(*args, **kwargs)
        claim = Claim(request.endpoint or request.path, key, _fingerprint())
        row = _stored(claim)
        if row is not None:
            return _replay(row, claim)
        g.idempotency_claim = claim
        try:
            return view(*args, **kwargs)
        except IntegrityError:
            # Another request with this key committed first: ours wrote nothing.
            db.session.rollback()
            row = _stored(claim)
            if row is None:
                raise
            return _replay(row, claim)

    return wrapper


def commit(response: W) -> W:
    """Commit the request's write together with its answer (stored under its key, if any)."""
    claim: Claim | None = g.pop("idempotency_claim", None)
    if claim is not None:
        now = utcnow()
        row = IdempotencyKey(
            scope=claim.scope, key=claim.key, fingerprint=claim.fingerprint,
            status=response.status_code, content_type=response.content_type or "",
            location=response.headers.get("Location"), body=response.get_data(as_text=True),
            created_at=now, expires_at=now + timedelta(seconds=retention_s()),
        )
        db.session.add(row)
        g.idempotency_row = row
    commit_and_keep()
    if claim is not None:
        cleanup_now_and_then()
    return response


def forget() -> None:
    """Drop the answer just stored (its write failed after all): a retry runs it again.
    The caller commits."""
    row: IdempotencyKey | None = g.pop("idempotency_row", None)
    if row is not None:
        db.session.delete(row)


def retention_s() -> int:
    """How long an answer is kept, in seconds (IDEMPOTENCY_RETENTION)."""
    return int(current_app.config["SETTINGS"].idempotency_retention_s)


_cleanup_lock = threading.Lock()
_last_cleanup = 0.0


def delete_expired() -> int:
    """Delete every expired answer; returns how many."""
    result = db.session.execute(delete(IdempotencyKey).where(IdempotencyKey.expires_at <= utcnow()))
    db.session.commit()
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def cleanup_now_and_then() -> None:
    """Delete expired answers, at most once every CLEANUP_EVERY_S per process."""
    global _last_cleanup
    with _cleanup_lock:
        if time.monotonic() - _last_cleanup < CLEANUP_EVERY_S:
            return
        _last_cleanup = time.monotonic()
    try:
        deleted = delete_expired()
    except SQLAlchemyError as exc:
        # The write and its answer are committed: a failed cleanup is retried a minute later.
        db.session.rollback()
        log.warning("could not delete expired idempotency keys: %s", type(exc).__name__)
        return
    if deleted:
        log.info("deleted %d expired idempotency keys", deleted)
