"""The operator console and the supervisor wallboard."""

from web.console.routes import bp

__all__ = ["bp"]

from web.console import supervision  # noqa: E402,F401  (its routes join the blueprint)
