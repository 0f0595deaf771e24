"""Sign requests exactly as Twilio does, and read TwiML back as XML."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit

from twilio.request_validator import RequestValidator

AUTH_TOKEN = "test-auth-token-not-a-secret"
PUBLIC_BASE = "https://hotline.example.org"


def sid(n: int | str) -> str:
    return "CA" + f"{n}".rjust(32, "0")[-32:].replace(" ", "0")


def signed_incoming_call(call: int, base: str = PUBLIC_BASE) -> tuple[str, dict[str, str]]:
    """A new call's /twilio/voice webhook as Twilio sends it: the urlencoded body and
    the headers, signed for ``base`` (for tests that speak raw HTTP)."""
    params = {
        "CallSid": sid(call),
        "From": "+8613800000001",
        "To": "+8612345",
        "CallStatus": "ringing",
        "AccountSid": "AC" + "0" * 32,
        "Direction": "inbound",
    }
    signature = RequestValidator(AUTH_TOKEN).compute_signature(
        base + "/twilio/voice", params
    )
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }
    return urlencode(params), headers


class TwilioSigner:
    def __init__(self, client: Any, token: str = AUTH_TOKEN, base: str = PUBLIC_BASE) -> None:
        self.client = client
        self.validator = RequestValidator(token)
        self.base = base

    def signature(self, url: str, params: dict[str, str]) -> str:
        return self.validator.compute_signature(url, params)

    def post(self, url_or_path: str, params: dict[str, str], **headers: str) -> Any:
        """POST as Twilio would: full public URL signed, request sent to its path."""
        url = url_or_path if url_or_path.startswith("http") else self.base + url_or_path
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        sig = {"X-Twilio-Signature": self.signature(url, params)}
        sig.update(headers)
        return self.client.post(path, data=params, headers=sig)


def parse(response: Any) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/xml"
    root = ET.fromstring(response.get_data())
    assert root.tag == "Response"
    return root


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


@contextmanager
def http_peer(handler: type[BaseHTTPRequestHandler], host: str = "127.0.0.1") -> Iterator[str]:
    """A stand-in HTTP server on loopback (Twilio's REST API, or a host it redirects
    to) for the duration of the block: its base URL, named by ``host``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://{host}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def app_on_twilio(
    redis: Any,
    redis_url: str,
    tmp_path: Any,
    api_url: str,
    monkeypatch: Any,
    account: str,
    people: tuple[tuple[str, str, str, str | None], ...],
    **more: str,
) -> Any:
    """The web app on a fresh SQLite file, on Twilio (its REST API at ``api_url``),
    with ``people`` as (username, role, display name, seat). The RQ jobs read the same
    settings from the environment, as in a worker."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user
    from hotline.config import load_settings
    from hotline.webapp import create_app
    from tests.test_console import PASSWORD

    db_url = f"sqlite:///{tmp_path / 'web.db'}"
    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
        for username, role, name, seat in people:
            add_user(s, username, role, PASSWORD, display_name=name, seat=seat)
    env = {
        "HOTLINE_VAR_DIR": str(tmp_path),
        "DATABASE_URL": db_url,
        "REDIS_URL": redis_url,
        "TWILIO_ACCOUNT_SID": account,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "TWILIO_API_BASE_URL": api_url,
        "PUBLIC_BASE_URL": PUBLIC_BASE,
        "HOTLINE_WRAPUP_S": "30",
        "HOTLINE_SECRET_KEY": "test",
        **more,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return create_app({"SETTINGS": load_settings(env), "REDIS": redis, "TESTING": True})
