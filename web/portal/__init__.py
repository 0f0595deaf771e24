"""The department portal: a unit's inbox and its actions on the cases dispatched to it."""

from web.portal.routes import bp

__all__ = ["bp"]

# Their routes join the blueprint.
from web.portal import knowledge  # noqa: E402, F401  (the unit's knowledge base articles)
