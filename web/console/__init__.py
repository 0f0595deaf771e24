"""The operator console and the supervisor wallboard."""

from web.console.routes import bp

__all__ = ["bp"]

# Their routes join the blueprint.
from web.console import (  # noqa: E402
    admin,  # noqa: F401  (the administrator's screens)
    call_controls,  # noqa: F401  (transfers beside the pop)
    cases,  # noqa: F401  (the case page and case search)
    duty_numbers,  # noqa: F401  (units' duty phones, set by admins)
    knowledge,  # noqa: F401  (the knowledge base beside the pop)
    knowledge_review,  # noqa: F401  (the knowledge base's review, for editors)
    listening,  # noqa: F401  (listening in from the wallboard)
    recordings,  # noqa: F401  (pausing a recording; playing one on the case page)
    supervision,  # noqa: F401
    tasks,  # noqa: F401  (online, SMS and Open311 requests beside the call)
    topics,  # noqa: F401  (special topics, duplicate suggestions at filing)
)
