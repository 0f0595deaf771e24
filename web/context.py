"""The parts every blueprint uses, kept on the app (no module-level state)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from flask import current_app
from redis import Redis
from rq import Queue as JobQueue
from twilio.request_validator import RequestValidator

from calls import CallHandler
from calls.desk import Desk
from calls.outbound import OutboundHandler
from queueing import CallQueue
from web.settings import WebSettings


@dataclass
class Services:
    settings: WebSettings
    redis: Redis
    queue: CallQueue
    jobs: JobQueue
    handler: CallHandler
    validator: RequestValidator | None
    outbound: OutboundHandler | None = None  # return visits and call-backs

    @cached_property
    def desk(self) -> Desk:
        """Every action a person takes goes through the desk."""
        assert self.handler.directory is not None, "the web needs the case database"
        return Desk(self.handler, self.handler.directory.sessions)


def services() -> Services:
    return current_app.extensions["hotline"]  # type: ignore[no-any-return]
