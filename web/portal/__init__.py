"""The department portal: a unit's inbox and its actions on the cases dispatched to it."""

from web.portal.routes import bp

__all__ = ["bp"]
