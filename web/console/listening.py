"""Listening in from the wallboard (calls.listening): a supervisor names a seat on a call
and their own phone, and listens (监听), whispers to the operator (耳语) or barges in
(强插). The desk checks who may, rings the phone, and audits the session."""

from __future__ import annotations

from typing import Any

from flask import current_app, render_template, request

from calls.desk import DeskError
from calls.listening import Listener, ListenError
from web.auth import desk_actor, language, roles_required
from web.console.routes import SUPERVISORS, bp
from web.context import services


class NoListener:
    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> None:
        raise ListenError("no telephony that can listen in is configured")


def listener() -> Listener:
    """AMI when ASTERISK_AMI_HOST is set, Twilio for its calls when its REST API is;
    tests may put their own in app.extensions["hotline_listener"]."""
    ext = current_app.extensions
    if "hotline_listener" not in ext:
        settings = ext.get("hotline_settings")
        found: Listener = NoListener()
        if settings is not None and settings.ami_host and settings.ami_secret:
            from agi_scripts.ami import AmiConnection
            from agi_scripts.listening import AsteriskListener

            ami = AmiConnection(
                settings.ami_host, settings.ami_port, settings.ami_username, settings.ami_secret
            )
            found = AsteriskListener(ami, settings.seat_dial_pattern)
        if settings is not None:
            from web.twilio.listening import with_twilio

            found = with_twilio(found)  # Twilio's calls by conference coaching
        ext["hotline_listener"] = found
    return ext["hotline_listener"]  # type: ignore[no-any-return]


def my_phone() -> str:
    from flask_login import current_user

    return current_user.seat or ""


@bp.get("/listen")
@roles_required(*SUPERVISORS)
def listen_form() -> Any:
    return render_template("_listen.html", phone=my_phone())


@bp.post("/listen")
@roles_required(*SUPERVISORS)
def listen() -> Any:
    seat = request.form.get("seat", "").strip()
    phone = request.form.get("phone", "").strip()
    mode = request.form.get("mode", "")
    noting = NotingSwitch(listener())
    try:
        services().desk.listen_in(desk_actor(), seat, phone, mode, noting)
    except DeskError as exc:
        view = {"seat": seat, "phone": phone, "error": exc.words(language())}
        return render_template("_listen.html", **view), 409 if exc.status >= 500 else exc.status
    return render_template(
        "_listen.html", seat=seat, phone=phone, started=mode, switched=noting.switched
    )


class NotingSwitch:
    """Whether the listener switched a live session's mode rather than ringing anew."""

    def __init__(self, inner: Listener) -> None:
        self.inner, self.switched = inner, False

    def listen(self, session_id: str, who: str, seat: str, phone: str, mode: str) -> str | None:
        found = self.inner.listen(session_id, who, seat, phone, mode)
        self.switched = bool(found)
        return found
