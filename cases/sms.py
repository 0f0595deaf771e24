"""The SMS record (calls.sms) and the citizen web form's photos: every text sent or
received, and what it was for, so that each is sent once and a reply finds its case."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from cases.models import Base


class SmsMessage(Base):
    """One text. Outgoing ones are written ``pending`` and sent by the outbox; ``source``
    names their purpose once ("accept:<case id>", "reply:<case id>:<resolved at>",
    "visit:<case id>"), so planning twice sends once. Incoming ones keep the provider's
    id as their source, so a webhook delivered twice is one message."""

    __tablename__ = "sms_message"
    id: Mapped[int] = mapped_column(primary_key=True)
    source: Mapped[str] = mapped_column(String(160), unique=True)
    direction: Mapped[str] = mapped_column(String(4))  # out | in
    # acceptance | reply | visit | inbound (a request) | optout | visit_answer
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


class CasePhoto(Base):
    """A photo a citizen sent with the web form, kept with its case (type-checked and
    size-limited at the form)."""

    __tablename__ = "case_photo"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), index=True)
    content_type: Mapped[str] = mapped_column(String(32))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
