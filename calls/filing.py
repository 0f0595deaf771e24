"""One job per answered call: the handshake between the operator's form and the case job.

The form is kept in Redis (the draft) and its version bumped; the case job files the
newest draft, then marks the call ``done`` only if no newer version came meanwhile
(both atomic in Redis). A form that finds ``done`` needs a job of its own; any other
form is picked up by the case job, which has not finished yet. So when the worker is
busy, late forms ride along with their case instead of doubling its work.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from redis import Redis

from queueing.keys import DRAFT_TTL_S, QueueKeys

# KEYS: draft, filing. ARGV: form JSON, ttl. Returns 1 if the case job has finished.
_SUBMIT = """
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('HINCRBY', KEYS[2], 'version', 1)
redis.call('EXPIRE', KEYS[2], ARGV[2])
return redis.call('HEXISTS', KEYS[2], 'done')
"""
# KEYS: filing. ARGV: the version the job filed, ttl. Returns 1 if that was the newest.
_FILED = """
local version = redis.call('HGET', KEYS[1], 'version') or '0'
if version ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'done', '1')
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


def submit_draft(redis: Redis, keys: QueueKeys, call_id: str, form: dict[str, object]) -> bool:
    """Keep the form; True if the case job is over, so the form needs a job of its own."""
    done = redis.register_script(_SUBMIT)(
        keys=[keys.case_draft(call_id), keys.case_filing(call_id)],
        args=[json.dumps(form, ensure_ascii=False), DRAFT_TTL_S],
    )
    return bool(done)


def read_draft(redis: Redis, keys: QueueKeys, call_id: str) -> tuple[str, dict[str, object]]:
    """The draft's version, then the draft: at least as new as that version."""
    version = redis.hget(keys.case_filing(call_id), "version")
    raw = redis.get(keys.case_draft(call_id))
    version_text = version.decode() if isinstance(version, bytes) else version
    return (version_text or "0"), (json.loads(raw) if raw else {})


def mark_filed(redis: Redis, keys: QueueKeys, call_id: str, version: str) -> bool:
    """Mark the case job done if ``version`` is still the newest draft; False: file again."""
    filed = redis.register_script(_FILED)(
        keys=[keys.case_filing(call_id)], args=[version, DRAFT_TTL_S]
    )
    return bool(filed)


OTHER_TEXT_LIMIT = 128  # codes, seats, case numbers: far shorter in any real form


def storable_text(text: str, limit: int | None = None) -> str:
    """Text every database keeps: NUL bytes dropped, lone surrogates replaced, at most
    ``limit`` characters."""
    text = text.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    return text if limit is None else text[:limit]


def storable_form(form: Mapping[str, object], limits: Mapping[str, int]) -> dict[str, object]:
    """A stored form (from Redis, so never checked by the web edge again) as text the
    database takes: each text within ``limits`` (others within OTHER_TEXT_LIMIT). Its
    values are otherwise as they were: what the form's own rules refuse is dropped by
    the case job field by field."""
    cleaned: dict[str, object] = {}
    for key, value in form.items():
        name = storable_text(str(key), OTHER_TEXT_LIMIT)
        if isinstance(value, str):
            value = storable_text(value, limits.get(name, OTHER_TEXT_LIMIT))
        cleaned[name] = value
    return cleaned
