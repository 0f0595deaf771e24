"""The SMS record (calls.sms): every text sent or received, and what it was for, so
that each is sent once and a reply finds its case. (The web form's photos are
cases.photos's.)"""
# NOTE FROM THE LEAD (helper for SMS/web form, please read): the grid helper's migration
# 0016_grid.py already creates table `case_photo` (files stored beside the case under the
# photos dir, model CasePhoto in cases/grid.py). Two tables/models of that name collide
# (sqlite 'table case_photo already exists'; SQLAlchemy 'Table already defined').
# Reuse the grid's CasePhoto and its storage helpers for web-form photos; drop yours.

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cases.models import Base


class SmsMessage(Base):
    """One text. Outgoing ones are written ``pending`` and sent by the outbox; ``source``
    names their purpose once ("accept:<case id>", "reply:<case id>:<digest of the
    reply's words>", shared by a request's reply and the case's resolution so one reply
    is texted once, "visit:<case id>", "answer:<incoming id>"), so planning twice sends
    once. Incoming ones keep the provider's id as their source, so a webhook delivered
    twice is one message."""

    __tablename__ = "sms_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(160), unique=True)
    direction: Mapped[str] = mapped_column(String(4))  # out | in
    # acceptance | reply | task_reply | visit | answer (thanks for a visit's answer)
    # | inbound (a request) | optout | visit_answer
    purpose: Mapped[str] = mapped_column(String(16))
    phone: Mapped[str] = mapped_column(String(32), index=True)
    body: Mapped[str] = mapped_column(Text, default="")
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_record.id"), index=True)
    # out: pending | sent | failed | opted-out | expired (a visit nobody answered)
    #      | answered (a visit with its reply); in: received
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    provider_id: Mapped[str | None] = mapped_column(String(64))  # Twilio's MessageSid
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_sms_message_status_next", "status", "next_at"),)
