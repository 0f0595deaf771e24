"""The hot-topic scan as a worker job: the reaper enqueues it once a minute (one job id,
so a slow scan is never run twice at once), and it reads the cases filed so far.

Cases are filed by the case jobs and the web; the scan reads them from SQL, so it sees
every case however it came in (phone, Twilio, web form, Open311), and a worker that
died mid-scan loses nothing: the next minute's scan does the same work again. Special
topics' rules are applied in the same job."""

from __future__ import annotations

import logging
import os

from cases.db import database_url_from_env, engine_for, session_factory
from cases.service import utcnow
from cases.topics import refresh_open_special_topics, scan_hot_topics

log = logging.getLogger("hotline.topics")

SCAN_EVERY_S = 60.0
JOB_ID = "hot-topics-scan"


def scan_every_s() -> float:
    """Once a minute; HOTLINE_HOT_TOPICS_EVERY_S for a demonstration or a test."""
    try:
        return max(1.0, float(os.environ.get("HOTLINE_HOT_TOPICS_EVERY_S", SCAN_EVERY_S)))
    except ValueError:
        return SCAN_EVERY_S


def scan() -> dict[str, int]:
    """One scan at the present moment: hot topics raised, grown and closed, and cases
    linked to the open special topics."""
    sessions = session_factory(engine_for(database_url_from_env(os.environ)))
    now = utcnow()
    with sessions() as db:
        counts = scan_hot_topics(db, now)
    with sessions() as db:
        counts["special"] = refresh_open_special_topics(db, now)
    if counts["raised"] or counts["closed"]:
        log.info("hot topics: %s", counts)
    return counts
