"""Sign-in for people (Flask-Login, server-side sessions), roles, CSRF, and the
language choice.

A session lives in Redis (web.auth.sessions) and the cookie only names it: 退出,
disabling the user, a password reset, the idle limit and the absolute limit each end it
for good. Failed sign-ins are throttled per user name and per address (Flask-Limiter,
counting failures only) and recorded in the action log.

Every page names the roles that may open it (``roles_required``); a signed-in user
with another role gets 403, a visitor is sent to the sign-in page. Forms and htmx
requests carry the CSRF token (Flask-WTF); Twilio's webhooks are signed instead, and
API calls with a bearer token are not open to cross-site forgery."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    has_request_context,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_limiter import RateLimitExceeded, RequestLimit
from flask_login import LoginManager, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import select
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from calls.desk import Actor
from cases.models import User
from cases.users import check_sign_in, log_action
from web.auth.sessions import ENDED_REASONS, REASON_KEPT_S, SessionStore
from web.context import services
from web.i18n import LANGUAGES, translate
from web.limits import client_address, limiter
from web.redirects import safe_next

log = logging.getLogger("hotline.web.auth")
bp = Blueprint("auth", __name__)
csrf = CSRFProtect()
login_manager = LoginManager()

SESSION_ID = "sid"  # the key in the (signed) cookie that names the server-side session
# Failed sign-ins allowed before further attempts are refused (a moving window, so a
# stranger's wrong guesses keep an operator out for at most this long after the last).
# Failures for one user from one address lock that address out quickly; failures for
# the user from everywhere need many more, so a stranger elsewhere cannot lock an
# operator out with five wrong guesses.
FAILURES_PER_USER_AT_ADDRESS = "5 per 15 minutes"
FAILURES_PER_USER = "30 per 15 minutes"
FAILURES_PER_ADDRESS = "20 per 15 minutes"
THROTTLE_MINUTES = 15
WARN_WHEN_FAILURES_LEFT = 2  # the sign-in page says how many tries are left from here
ENDED = "ended"  # the cookie's note of why the last session ended: [reason, when]
# Why a session ended, as the sign-in page says it: the store's reasons, or "expired"
# (the cookie names a session the store no longer has: it lapsed long ago, or was lost).
NOTED_REASONS = (*ENDED_REASONS, "expired")

HOME_FOR_ROLE = {
    "operator": "console.console",
    "supervisor": "console.wallboard",
    "admin": "console.wallboard",  # and /console/catalogue
    "department": "portal.inbox",
    "knowledge_editor": "console.kb_review",
    "grid": "grid.cases",
    "leader": "duty.today",
    "quality": "console.case_search",  # cases and their recordings
}


@dataclass(frozen=True)
class SignedIn:
    """The signed-in user, detached from the database session."""

    id: int
    username: str
    display_name: str
    role: str
    seat: str | None
    department_id: int | None
    language: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return str(self.id)

    @classmethod
    def of(cls, user: User) -> SignedIn:
        """Call it inside the user's database session (it may read their unit)."""
        name = user.display_name
        if (not name or name == user.username) and user.department is not None:
            name = user.department.name  # a unit's shared account goes by the unit's name
        return cls(
            user.id,
            user.username,
            name or user.username,
            user.role,
            user.seat,
            user.department_id,
            user.language,
        )


def session_store() -> SessionStore:
    return current_app.extensions["hotline_sessions"]  # type: ignore[no-any-return]


@login_manager.user_loader
def load_user(user_id: str) -> SignedIn | None:
    """The signed-in user, while their server-side session lives and they are active."""
    sid = session.get(SESSION_ID)
    if not user_id.isdigit() or not isinstance(sid, str):
        return _forget_session()
    checked = session_store().check(sid)
    if checked.record is None or checked.record.user_id != int(user_id):
        if checked.just_ended:
            _record_expiry(session.get("_user_id"), checked.ended)
        return _forget_session("expired" if checked.ended == "unknown" else checked.ended)
    with services().desk.sessions() as db:
        user = db.get(User, int(user_id))
        if user is None or not user.active:
            session_store().end_for(sid, "disabled")
            return _forget_session("disabled")
        return SignedIn.of(user)


def _forget_session(why: str = "") -> SignedIn | None:
    """The cookie names no live session: it is signed out (the language stays), and
    keeps why, for the sign-in page to say."""
    session.pop(SESSION_ID, None)
    session.pop("_user_id", None)
    if why in NOTED_REASONS:
        session[ENDED] = [why, int(time.time())]
    return None


def ended_reason() -> str:
    """Why this browser's last session ended, in words, while that is news."""
    if current_user.is_authenticated:  # also loads the user, which notes an ended session
        return ""
    note = session.get(ENDED)
    if not (isinstance(note, list) and len(note) == 2 and note[0] in NOTED_REASONS):
        return ""
    why, when = note
    if not isinstance(when, int) or time.time() - when > REASON_KEPT_S:
        return ""
    hours = session_store().absolute_s // 3600
    return translate(f"session_ended_{why}", language(), hours=hours)


def _record_expiry(user_id: object, why: str) -> None:
    try:
        with services().desk.sessions() as db:
            user = db.get(User, int(str(user_id))) if str(user_id).isdigit() else None
            log_action(db, user.username if user else "anonymous", "session-expired", "", why)
            db.commit()
    except Exception:
        log.exception("could not record an expired session")


def end_sessions(username: str, reason: str, keep_mine: bool = False) -> int:
    """Every session of the user ends at once, for ``reason`` ("disabled", or
    "password" reset) which their next page says; an admin resetting their own password
    stays signed in here (``keep_mine``)."""
    mine = (
        session.get(SESSION_ID)
        if keep_mine and current_user.is_authenticated and current_user.username == username
        else None
    )
    kept = mine if isinstance(mine, str) else None
    return session_store().end_all(username, keep=kept, reason=reason)


def roles_required(*roles: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not current_user.is_authenticated:
                return login_manager.unauthorized()
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapper

    return decorate


def actor() -> str:
    """Who is acting, for audit trails."""
    return current_user.username if current_user.is_authenticated else "anonymous"


def still_active(username: str) -> bool:
    """Whether the user may still use what they opened: a live stream outlasts the
    request that checked them, so it asks again (a disabled, signed-out or expired
    user's screens go dark). An open page counts as activity for the idle limit."""
    try:
        sid = session.get(SESSION_ID) if has_request_context() else None
        if isinstance(sid, str) and session_store().check(sid).record is None:
            return False
        with services().desk.sessions() as db:
            return bool(db.scalar(select(User.active).where(User.username == username)))
    except Exception:  # the database is away: keep serving, ask again later
        log.warning("could not check whether %s is still active", username)
        return True


def desk_actor() -> Actor:
    """The signed-in user, as the desk knows them."""
    return Actor(current_user.username, current_user.role, current_user.department_id)


def record(action: str, target: str = "", detail: str = "") -> None:
    """Log an action of the signed-in user in SQL (never fails the action itself)."""
    try:
        with services().desk.sessions() as db:
            log_action(db, actor(), action, target, detail)
            db.commit()
    except Exception:
        log.exception("could not record %s on %s by %s", action, target, actor())


def language() -> str:
    chosen = session.get("lang")
    if chosen in LANGUAGES:
        return str(chosen)
    if current_user.is_authenticated and current_user.language in LANGUAGES:
        return str(current_user.language)
    return "zh"


class LoginForm(FlaskForm):
    username = StringField(validators=[DataRequired(), Length(max=64)])
    password = PasswordField(validators=[DataRequired(), Length(max=256)])


def _attempted_user() -> str:
    return "user:" + (request.form.get("username") or "").strip().lower()[:64]


def _attempted_user_at_address() -> str:
    return f"{_attempted_user()}@{client_address()}"


def _failed(response: Response) -> bool:
    return response.status_code == 401


KNOWN_ADDRESS_S = 30 * 86400


def _known_key(username: str) -> str:
    return "hotline:sign-in-known:" + hashlib.sha256(username.encode()).hexdigest()[:32]


def _remember_address(username: str) -> None:
    """Where the user signed in from: failures elsewhere never lock them out there."""
    try:
        pipe = services().redis.pipeline()
        pipe.sadd(_known_key(username), client_address())
        pipe.expire(_known_key(username), KNOWN_ADDRESS_S)
        pipe.execute()
    except Exception:
        log.exception("could not remember where %s signed in from", username)


def _from_known_address() -> bool:
    """The user signed in from this address before (30 days): the count of failures
    from everywhere does not apply here; the per-address counts still do. So strangers
    on six addresses cannot keep an operator out of their own desk."""
    username = _attempted_user().removeprefix("user:")
    try:
        return bool(services().redis.sismember(_known_key(username), client_address()))
    except Exception:
        return False


def _throttled(per: str) -> Callable[[RequestLimit], None]:
    """Records a refused sign-in in the action log, once per key and window however
    often the refused person retries (a flag, not a counter: Flask-Limiter counts)."""

    def record_throttled(limit: RequestLimit) -> None:
        username = _attempted_user().removeprefix("user:")
        key = hashlib.sha256(limit.key.encode()).hexdigest()[:32]
        try:
            flag = f"hotline:sign-in-throttled:{per}:{key}"
            if services().redis.set(flag, 1, nx=True, ex=int(limit.limit.get_expiry())):
                with services().desk.sessions() as db:
                    log_action(
                        db, username or "anonymous", "sign-in-throttled", client_address(), per
                    )
                    db.commit()
        except Exception:
            log.exception("could not record a throttled sign-in")

    return record_throttled


@bp.errorhandler(RateLimitExceeded)
def sign_in_throttled(exc: RateLimitExceeded) -> Any:
    form = LoginForm()
    flash(translate("sign_in_throttled", language(), minutes=THROTTLE_MINUTES))
    return render_template("login.html", form=form), 429


def failures_left() -> int:
    """Failed sign-ins left before the throttle, after this one: the fewest any of the
    sign-in limits has left (counted per typed name, whether or not the user exists).
    Flask-Limiter deducts a failure after the view answers, hence the one more."""
    left = [rl.remaining for rl in limiter.current_limits]
    return max(0, min(left) - 1) if left else WARN_WHEN_FAILURES_LEFT + 1


def _failure_words(found_disabled: bool) -> str:
    lang = language()
    words = translate("account_disabled" if found_disabled else "bad_login", lang)
    left = failures_left()
    if left > WARN_WHEN_FAILURES_LEFT:
        return words
    if left == 0:
        return words + translate("sign_in_paused", lang, minutes=THROTTLE_MINUTES)
    return words + translate("sign_in_tries_left", lang, n=left, minutes=THROTTLE_MINUTES)


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(
    FAILURES_PER_USER_AT_ADDRESS,
    key_func=_attempted_user_at_address,
    methods=["POST"],
    deduct_when=_failed,
    on_breach=_throttled("user"),
    scope="sign-in-user-address",
)
@limiter.limit(
    FAILURES_PER_USER,
    key_func=_attempted_user,
    methods=["POST"],
    deduct_when=_failed,
    exempt_when=_from_known_address,
    on_breach=_throttled("user"),
    scope="sign-in-user",
)
@limiter.limit(
    FAILURES_PER_ADDRESS,
    key_func=client_address,
    methods=["POST"],
    deduct_when=_failed,
    on_breach=_throttled("address"),
    scope="sign-in-address",
)
def login() -> Any:
    form = LoginForm()
    if form.validate_on_submit():
        username = (form.username.data or "").strip().lower()
        with services().desk.sessions() as db:
            found = check_sign_in(db, username, form.password.data or "")
            if found.user is not None:
                signed_in = SignedIn.of(found.user)
                log_action(db, signed_in.username, "signed-in", client_address())
                _remember_address(signed_in.username)
            else:
                why = "disabled" if found.disabled else ""
                log_action(db, username[:64], "sign-in-failed", client_address(), why)
            db.commit()
        if found.user is None:
            flash(_failure_words(found.disabled))
            return render_template("login.html", form=form), 401
        session.clear()  # no session fixation
        session[SESSION_ID] = session_store().start(signed_in.id, signed_in.username)
        login_user(signed_in)
        return redirect(
            safe_next(request.args.get("next")) or url_for(HOME_FOR_ROLE[signed_in.role])
        )
    return render_template("login.html", form=form, ended=ended_reason())


@bp.post("/logout")
def logout() -> Any:
    if current_user.is_authenticated:
        # Signing out frees the seat: calls must not ring an empty desk.
        try:
            services().desk.sign_out(desk_actor(), session.get("seat"))
        except Exception:  # the sign-out itself never fails; the heartbeat lapses
            log.exception("seat of %s not logged out at sign-out", actor())
        record("signed-out")
    sid = session.get(SESSION_ID)
    if isinstance(sid, str):
        session_store().end(sid)  # the cookie, copied or not, signs in no more
    logout_user()
    session.clear()
    return redirect(url_for("auth.login"))


@bp.get("/")
def home() -> Any:
    if not current_user.is_authenticated:
        return redirect(url_for("auth.login"))
    return redirect(url_for(HOME_FOR_ROLE.get(current_user.role, "auth.login")))


@bp.get("/favicon.ico")
def favicon() -> Any:
    """Browsers ask for it on every site (4 KB, read each time); a week's cache."""
    icon = Path(current_app.static_folder or "static", "favicon.ico").read_bytes()
    response = Response(icon, mimetype="image/vnd.microsoft.icon")
    response.cache_control.public = True
    response.cache_control.max_age = 7 * 24 * 3600
    return response


@bp.post("/language")
def choose_language() -> Any:
    chosen = request.form.get("lang", "zh")
    if chosen in LANGUAGES:
        session["lang"] = chosen
    return redirect(safe_next(request.form.get("next")) or url_for("auth.home"))


def _unauthorized() -> Any:
    """A page asks to sign in; an htmx request (a button on a page whose session has
    ended) makes the whole page go to the sign-in form instead of failing silently."""
    target = url_for("auth.login", next=request.full_path.rstrip("?"))
    if request.headers.get("HX-Request"):
        return Response(status=401, headers={"HX-Redirect": url_for("auth.login")})
    return redirect(target)


def _csrf_failed(exc: CSRFError) -> Any:
    """A form's token no longer matches (the session expired or was revoked): htmx
    reloads the page, which asks to sign in again; a plain form says so."""
    if request.headers.get("HX-Request"):
        return Response(status=400, headers={"HX-Refresh": "true"})
    message = translate("session_expired", language())
    return render_template("error.html", code=400, title=message, text="", detail=""), 400


def init_auth(app: Flask, secure_cookies: bool) -> None:
    app.config.update(
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_SECURE=secure_cookies,
        WTF_CSRF_TIME_LIMIT=None,  # a console stays open through a whole shift
    )
    hotline = app.extensions["hotline"]
    app.extensions["hotline_sessions"] = SessionStore(
        hotline.redis, hotline.settings.session_idle_s, hotline.settings.session_absolute_s
    )
    csrf.init_app(app)
    app.register_error_handler(CSRFError, _csrf_failed)
    login_manager.init_app(app)
    login_manager.login_view = "auth.login"
    login_manager.unauthorized_handler(_unauthorized)
    login_manager.session_protection = "strong"
    app.register_blueprint(bp)

    @app.context_processor
    def inject() -> dict[str, Any]:
        lang = language()
        return {"lang": lang, "t": lambda key, **kw: translate(key, lang, **kw)}
