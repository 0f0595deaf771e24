"""Users, their roles and credentials, and the action log.

Passwords are hashed with werkzeug's scrypt; a personal API token is 32 random bytes
shown once, and stored as its sha256 (a token is high-entropy, so a fast hash is
enough and lets a request find its user by index)."""

from __future__ import annotations

import hashlib
import re
import secrets

from sqlalchemy import func, select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from cases.models import ROLES, ActionLog, Department, User
from cases.service import utcnow

USERNAME = re.compile(r"[a-z0-9][a-z0-9_.-]{1,63}\Z")
MIN_PASSWORD = 10


class UserError(ValueError):
    pass


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_user(
    session: Session,
    username: str,
    role: str,
    password: str,
    *,
    display_name: str = "",
    seat: str | None = None,
    department_code: str | None = None,
) -> User:
    if not USERNAME.match(username):
        raise UserError("a user name is 2-64 of a-z 0-9 _ . - (lower case)")
    if role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if len(password) < MIN_PASSWORD:
        raise UserError(f"a password has at least {MIN_PASSWORD} characters")
    if session.scalar(select(User.id).where(User.username == username)) is not None:
        raise UserError(f"user {username!r} exists")
    department = None
    if role == "department":
        if not department_code:
            raise UserError("a department user needs --department CODE")
        department = session.scalar(select(Department).where(Department.code == department_code))
        if department is None:
            raise UserError(f"no department {department_code!r}")
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
    log_action(session, "system", "user-added", username, role)
    session.commit()
    return user


def authenticate(session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username.strip().lower()))
    if user is None or not user.active:
        # The same work either way: no timing difference reveals who exists.
        check_password_hash(generate_password_hash("x"), password)
        return None
    return user if check_password_hash(user.password_hash, password) else None


def issue_token(session: Session, username: str) -> str:
    """A new personal API token for the user (the old one stops working)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise UserError(f"no user {username!r}")
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
