"""Open311 GeoReport v2 (wiki.open311.org/GeoReport_v2) and mySociety's
servicerequestupdates extension, at the paths existing clients use: /open311/discovery
and /open311/v2/... in XML and JSON.

Reading is open to all, but lists only Open311 requests and the cases a supervisor
marked public, outside sensitive categories, their text redacted (a key also sees its
own requests; cases.open311 ``_listed``); POSTing a request takes an API key
(``hotline open311 key add APP_NAME``). Every call with a key is audited, and each key
(or, without one, each address) has one exact rate limit over every endpoint: 429 with
Retry-After. The API is token-authenticated, so it is exempt from CSRF like /api.
Errors are the spec's: a list of code and description, with 400, 403, 404 (and 429)."""

from web.open311.routes import bp

__all__ = ["bp"]
