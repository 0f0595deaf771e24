"""The API's rate limits, counted in the real Redis: a caller's budget, failed tokens
per address, and a signed-in operator never locked out by someone guessing tokens."""

from __future__ import annotations

from tests.test_console import API_TOKEN, csrf_of, make_app, sign_in


def test_guessing_tokens_is_limited_per_address_and_says_when_to_retry(
    redis_server, redis, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    app = make_app(redis_server, redis, tmp_path)
    app.config["API_FAILED_AUTH_LIMIT"] = "5 per minute"
    guesser = app.test_client()
    answers = [
        guesser.get("/api/queue", headers={"Authorization": f"Bearer guess-{n}"}).status_code
        for n in range(8)
    ]
    assert answers[:5] == [401] * 5 and answers[5:] == [429] * 3
    refused = guesser.get("/api/queue", headers={"Authorization": "Bearer guess-9"})
    assert refused.is_json and refused.get_json()["error"] and "Retry-After" in refused.headers

    # Another address is not touched by it.
    other = guesser.get(
        "/api/queue",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
        environ_overrides={"REMOTE_ADDR": "10.1.2.3"},
    )
    assert other.status_code == 200

    # An operator signed in at the same address keeps working.
    operator = app.test_client()
    sign_in(operator, "wang")
    token = csrf_of(operator.get("/console/").get_data(as_text=True))
    assert operator.get("/api/queue", headers={"X-CSRFToken": token}).status_code == 200


def test_each_caller_has_its_own_budget(redis_server, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    app = make_app(redis_server, redis, tmp_path)
    app.config["API_RATE_LIMIT"] = "3 per minute"
    client = app.test_client()
    shared = {"Authorization": f"Bearer {API_TOKEN}"}
    statuses = [client.get("/api/queue", headers=shared).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]

    operator = app.test_client()
    sign_in(operator, "wang")
    token = csrf_of(operator.get("/console/").get_data(as_text=True))
    assert operator.get("/api/queue", headers={"X-CSRFToken": token}).status_code == 200
