"""Queue errors carry a stable slug for APIs and logs."""


class QueueError(Exception):
    """A transition was refused; ``code`` is a slug such as ``seat-busy``."""

    def __init__(self, code: str, detail: str = "") -> None:
        self.code = code
        self.detail = detail
        super().__init__(f"{code}: {detail}" if detail else code)
