"""The Twilio outbound provider against a local HTTP server (real HTTP)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from twilio.rest import Client

from web.twilio.outbound import TwilioOriginator

ACCOUNT = "AC" + "1" * 32


class FakeTwilioApi(BaseHTTPRequestHandler):
    received: list[tuple[str, dict[str, list[str]], str]] = []

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        form = parse_qs(self.rfile.read(length).decode())
        FakeTwilioApi.received.append((self.path, form, self.headers.get("Authorization", "")))
        body = json.dumps({"sid": "CA" + "9" * 32, "account_sid": ACCOUNT, "status": "queued"})
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


def test_place_call_sends_the_request_twilio_expects() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeTwilioApi)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        client = Client(ACCOUNT, "secret-token")
        client.api.base_url = f"http://127.0.0.1:{server.server_address[1]}"
        provider = TwilioOriginator(client, "+8689812345", "https://hotline.example.org/")
        provider.originate("out-7-1", "+8613800000001", "return_visit")
    finally:
        server.shutdown()
        server.server_close()
    (path, form, auth) = FakeTwilioApi.received[-1]
    assert path == f"/2010-04-01/Accounts/{ACCOUNT}/Calls.json"
    assert auth.startswith("Basic ")
    assert form["To"] == ["+8613800000001"] and form["From"] == ["+8689812345"]
    assert form["Url"] == ["https://hotline.example.org/twilio/outbound/return_visit?call=out-7-1"]
    assert form["StatusCallback"] == [
        "https://hotline.example.org/twilio/outbound/status?call=out-7-1"
    ]
    assert form["StatusCallbackEvent"] == ["completed"]
    assert form["MachineDetection"] == ["Enable"]
