"""Tasks: online, SMS and Open311 requests waiting in the operators' queue, taken by
seats between calls, with a first response due within 3 minutes (GB/T 33358).
Filled by issue 21; the channels call ``TaskDesk.submit`` once their case is filed."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from calls.desk import Desk


class TaskDesk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def submit(self, case_number: str, channel: str) -> None:
        """Queue the request behind ``case_number`` (channel web | sms | open311) as a
        task for the operators."""
