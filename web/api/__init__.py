"""The JSON API for operators' tools and admin scripts."""

from web.api.routes import bp

__all__ = ["bp"]
