"""Open311 GeoReport v2 requests as the desk takes them: a POSTed request is kept
first (its token answers for it whatever happens next), then filed as a case, then
handed on: queued for the operators, or, where the catalogue allows, dispatched
straight to its unit with its clocks armed. A request kept without its case is filed
when its token is asked for. The API key was checked by the surface; the key decides
which requests an update may add to (cases.open311)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from calls.casework import arm_clocks
from cases import open311 as o311
from cases.models import Case
from cases.phones import mask_phone

if TYPE_CHECKING:
    from calls.desk import Desk

log = logging.getLogger("hotline.open311")


@dataclass(frozen=True)
class Taken:
    """What became of a request: its token; its case's number once filed (None: kept
    without a case, for the token to finish later); whether it went to its unit."""

    token: str
    number: str | None
    direct: bool = False


class Open311Desk:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk

    def _key(self, db: Session, key_id: int) -> o311.Open311Key:
        key = db.get(o311.Open311Key, key_id)
        if key is None:  # revoked between the check and now
            raise o311.Open311Error(403, "api_key is not valid (unknown or revoked)")
        return key

    def submit(
        self, key_id: int, form: Mapping[str, str], lists: Mapping[str, Sequence[str]]
    ) -> Taken:
        """Check, keep, file and hand on a request. A bad request raises Open311Error
        and keeps nothing; a request kept but not filed answers with its token."""
        with self.desk.sessions() as db:
            fields = o311.check_request(db, form, lists)
            kept = o311.receive_request(db, self._key(db, key_id), fields)
            taken = self._file(db, kept)
        if taken.number is not None:
            self._hand_on(taken.number, taken.direct)
        return taken

    def finish(self, token: str) -> dict[str, Any]:
        """The token's view; a request kept without its case is filed now, so that
        asking again finishes the work."""
        with self.desk.sessions() as db:
            view = o311.token_view(db, token)
            if view["service_request_id"] is not None:
                return view
            kept = db.scalar(select(o311.Open311Request).where(o311.Open311Request.token == token))
            if kept is None:
                return view
            taken = self._file(db, kept)
        if taken.number is None:
            return view
        self._hand_on(taken.number, taken.direct)
        return {"service_request_id": taken.number, "token": token}

    def post_update(self, key_id: int, form: Mapping[str, str]) -> str:
        """A client's update (the citizen's comment) on the case's trail: its id."""
        with self.desk.sessions() as db:
            _, event = o311.post_update(db, self._key(db, key_id), form)
            return str(event.id)

    def _file(self, db: Session, kept: o311.Open311Request) -> Taken:
        token = kept.token
        try:
            case, direct = o311.file_case(db, kept, self.desk.handler.phones)
        except Exception as exc:  # the request is kept: its token answers for it
            db.rollback()
            log.exception("Open311 request %s kept without a case", token)
            # Kept for the admins to read: a database error may quote the citizen's number.
            self._note_problem(token, mask_phone(f"{type(exc).__name__}: {exc}")[:2000])
            return Taken(token, None)
        return Taken(token, case.number, direct)

    def _note_problem(self, token: str, problem: str) -> None:
        try:
            with self.desk.sessions() as db:
                row = db.scalar(
                    select(o311.Open311Request).where(o311.Open311Request.token == token)
                )
                if row is not None:
                    row.problem = problem
                    db.commit()
        except SQLAlchemyError:
            log.warning("could not note why Open311 request %s has no case", token)

    def _hand_on(self, number: str, direct: bool) -> None:
        """A dispatched case's clocks start; any other waits in the operators' queue."""
        try:
            if direct:
                with self.desk.sessions() as db:
                    case = db.scalar(select(Case).where(Case.number == number))
                    if case is not None:
                        arm_clocks(self.desk.queue, case)
            else:
                self.desk.tasks.submit(number, "open311")
        except Exception:  # the case is filed; the reaper's reconciliation catches up
            log.exception("Open311 case %s filed but not handed on", number)
