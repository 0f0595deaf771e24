"""Users, their roles and credentials, and the action log.

Passwords are hashed with werkzeug's scrypt; a personal API token is 32 random bytes
shown once, and stored as its sha256 (a token is high-entropy, so a fast hash is
enough and lets a request find its user by index)."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload
from werkzeug.security import check_password_hash, generate_password_hash

from cases.models import ROLES, ActionLog, Department, User
from cases.passwords import MAX_PASSWORD as MAX_PASSWORD  # re-exported for the screens
from cases.passwords import MIN_PASSWORD as MIN_PASSWORD
from cases.passwords import weakness
from cases.service import utcnow

USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,63}\Z")

# What an unknown user's password is checked against, so that signing in as nobody costs
# the same one scrypt as signing in as someone (a hash of a discarded random password,
# with werkzeug's default parameters; tests/test_sessions.py keeps them in step).
NOBODY_HASH = (
    "scrypt:32768:8:1$QQ2qSt8VG9ZUX3Gp$6b3263d3386fdd18c8f8d931bd4c2c9b6c64811b78d4518c2c"
    "8e5275c03e9362c2ab80cba042b909c1ad4b7654aae50e9eaf043a46a576bd37544da7f87aa37b"
)

PASSWORD_RULES = {
    "password-short": f"a password has at least {MIN_PASSWORD} characters",
    "password-long": f"a password has at most {MAX_PASSWORD} characters",
    "password-username": "a password must not contain the user name",
    "password-kinds": "a password mixes at least two of: lower case, upper case, digits, "
    "other characters (a space counts)",
    "password-common": "that password is among the most common ones",
    "password-pattern": "a password must not be a repeated or sequential pattern, nor a "
    "name or word followed by a year, a birthday or easy digits",
}


class UserError(ValueError):
    """A refused change. The message is for the CLI; ``code`` names the refusal for
    the screens, which say it in the reader's language."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def shown_name(username: str, display_name: str | None, unit: str | None) -> str:
    """A person as others read them: their name; a unit's account made without one
    (its name is its login, e.g. supply) by its unit's name, never the login."""
    if unit and (not display_name or display_name == username):
        return unit
    return display_name or ""


def add_user(
    session: Session,
    username: str,
    role: str,
    password: str,
    *,
    display_name: str = "",
    seat: str | None = None,
    department_code: str | None = None,
    by: str = "system",
) -> User:
    if not USERNAME.match(username):
        raise UserError("a user name is 2-64 of a-z 0-9 _ . - (lower case)", "bad-username")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}", "bad-role")
    check_password(password, username)
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} exists", "exists")
    department = None
    if role == "department":
        if not department_code:
            raise UserError("a department user needs --department CODE", "needs-unit")
        department = session.scalar(select(Department).where(Department.code == department_code))
        if department is None:
            raise UserError(f"no department {department_code!r}", "no-unit")
    user = User(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=generate_password_hash(password),
        seat=seat,
        department=department,
        created_at=utcnow(),
    )
    session.add(user)
    log_action(session, by, "user-added", username, role)
    session.commit()
    return user


def check_password(password: str, username: str = "") -> None:
    """Refuses a password that breaks a rule (cases.passwords), naming the rule."""
    broken = weakness(password, username)
    if broken is not None:
        raise UserError(PASSWORD_RULES[broken], broken)


@dataclass(frozen=True)
class SignIn:
    """What a sign-in attempt found: the user when the password is right and the
    account active; ``disabled`` when it is right but the account is disabled (told only
    to whoever knows the password, so nobody learns which names exist)."""

    user: User | None
    disabled: bool = False


def check_sign_in(session: Session, username: str, password: str) -> SignIn:
    """Exactly one scrypt whoever asks (unknown, disabled, wrong or right), so that
    no timing difference reveals who exists."""
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    right = check_password_hash(user.password_hash if user else NOBODY_HASH, password)
    if user is None or not right:
        return SignIn(None)
    return SignIn(user) if user.active else SignIn(None, disabled=True)


def authenticate(session: Session, username: str, password: str) -> User | None:
    """The active user with that password, or None."""
    return check_sign_in(session, username, password).user


def issue_token(session: Session, username: str) -> str:
    """A new personal API token for the user (the old one stops working)."""
    user = _user(session, username)
    token = "hl_" + secrets.token_urlsafe(32)
    user.api_token_hash = token_digest(token)
    log_action(session, "system", "token-issued", username)
    session.commit()
    return token


def user_for_token(session: Session, token: str) -> User | None:
    if not token.startswith("hl_"):
        return None
    user = session.scalar(select(User).where(User.api_token_hash == token_digest(token)))
    return user if user is not None and user.active else None


def user_count(session: Session) -> int:
    return int(session.scalar(select(func.count(User.id))) or 0)


def log_action(
    session: Session, actor: str, action: str, target: str = "", detail: str = ""
) -> None:
    session.add(ActionLog(at=utcnow(), actor=actor, action=action, target=target, detail=detail))


# -- what an administrator changes (the admin screens; the caller records who did it) --


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user {username!r}", "no-user")
    return user


def list_users(session: Session) -> list[User]:
    """Everyone, by role then user name, with their unit loaded."""
    return list(
        session.scalars(
            select(User).options(selectinload(User.department)).order_by(User.role, User.username)
        )
    )


def last_sign_ins(session: Session) -> dict[str, datetime]:
    """Each user's latest sign-in, as the action log recorded it."""
    rows = session.execute(
        select(ActionLog.actor, func.max(ActionLog.at))
        .where(ActionLog.action == "signed-in")
        .group_by(ActionLog.actor)
    )
    return {actor: at for actor, at in rows if at is not None}


def set_active(session: Session, username: str, active: bool, *, by: str) -> User:
    """Enable or disable a user. A disabled user's sessions and token stop working at
    once: the token is revoked for good (enabling them again does not bring it back;
    they are issued a new one), and the web ends their sessions (web.auth.end_sessions).
    The last active admin cannot be disabled, nor can anyone disable themselves."""
    user = _user(session, username)
    if not active and user.active:
        if user.role == "admin":
            # Locks the active admins' rows where the database can (PostgreSQL), so two
            # admins disabling each other at once cannot leave none.
            admins = session.scalars(
                select(User.id).where(User.role == "admin", User.active).with_for_update()
            ).all()
            if len(admins) <= 1:
                raise UserError("the last active admin cannot be disabled", "last-admin")
        if username == by:
            raise UserError("you cannot disable yourself", "self-disable")
        user.api_token_hash = None
    user.active = active
    session.commit()
    return user


def set_password(session: Session, username: str, password: str) -> User:
    """A new password chosen by an administrator (the user is told out of band)."""
    check_password(password, username)
    user = _user(session, username)
    user.password_hash = generate_password_hash(password)
    session.commit()
    return user


def revoke_tokens(session: Session, username: str) -> bool:
    """The user's personal API token stops working; False if they had none."""
    user = _user(session, username)
    had = user.api_token_hash is not None
    user.api_token_hash = None
    session.commit()
    return had
