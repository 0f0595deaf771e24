"""The record of each online, SMS or Open311 request taken as a task by the operators
(calls.tasks): when it came, who took it, the first response (the operator's first
reply to the citizen), and when it was done. The queue holds the live task in Redis;
this row is what a Redis that lost it is rebuilt from, and what the figures count."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from cases.models import Base


class ChannelTask(Base):
    __tablename__ = "channel_task"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), unique=True)
    case_number: Mapped[str] = mapped_column(String(32), unique=True)
    channel: Mapped[str] = mapped_column(String(16))  # web | sms | open311
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    taken_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    taken_by: Mapped[str | None] = mapped_column(String(64))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_by: Mapped[str | None] = mapped_column(String(64))
    first_response_s: Mapped[float | None] = mapped_column()
    completed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    completed_by: Mapped[str | None] = mapped_column(String(64))

    # The backstop's scan: tasks not yet done.
    __table_args__ = (Index("ix_channel_task_open", "completed_at", "submitted_at"),)
