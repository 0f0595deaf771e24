"""The operator console and the supervisor wallboard."""

from web.console.routes import bp

__all__ = ["bp"]
