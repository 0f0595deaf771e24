"""Response headers on every surface (issue 17, finding 7): a Content-Security-Policy
with no inline script or style, frame and sniffing protection, no-store on anything
personal, and static files versioned by content, cached for a year and gzipped.
Flask's client against a real redis-server and SQLite; the policy itself in a real
Chromium, served by the web command."""

from __future__ import annotations

import gzip
import hashlib
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from cases.users import add_user
from tests.test_console import PASSWORD, csrf_of, make_app
from tests.test_portal import new_case

ROOT = Path(__file__).resolve().parents[1]
TEMPLATES = ROOT / "web" / "templates"
STATIC = ROOT / "web" / "static"
YEAR = "public, max-age=31536000, immutable"


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    redis.flushdb()
    app = make_app(redis_server, redis, tmp_path)
    with app.extensions["hotline"].desk.sessions() as db:
        add_user(db, "root", "admin", PASSWORD, display_name="张管理")
        add_user(db, "urban", "department", PASSWORD, department_code="urban-management")
        db.commit()
    return app


def signed_in(app, username: str):  # type: ignore[no-untyped-def]
    client = app.test_client()
    token = csrf_of(client.get("/login").get_data(as_text=True))
    r = client.post(
        "/login", data={"username": username, "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 302, f"{username} could not sign in"
    return client


def pages_of_each_role(app) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """Every page a person or a visitor opens, with its answer (status 200 unless said)."""
    number = new_case(app)  # dispatched to urban-management
    visitor = app.test_client()
    token = csrf_of(visitor.get("/lookup").get_data(as_text=True))
    answers: dict[str, object] = {
        "login": visitor.get("/login"),
        "lookup": visitor.get("/lookup"),
        "lookup answer": visitor.post(
            "/lookup", data={"number": number, "phone": "13800138000", "csrf_token": token}
        ),
        "not found (404)": visitor.get("/no-such-page"),
    }
    operator = signed_in(app, "wang")
    answers |= {
        "console": operator.get("/console/"),
        "case search": operator.get("/console/cases?q=" + number),
        "case page": operator.get("/console/cases/" + number),
        "forbidden (403)": operator.get("/console/wallboard"),
    }
    supervisor = signed_in(app, "li")
    answers |= {
        "wallboard": supervisor.get("/console/wallboard"),
        "supervision": supervisor.get("/console/supervision"),
        "rankings": supervisor.get("/console/rankings"),
    }
    admin = signed_in(app, "root")
    for path in ("", "users", "seats", "units", "optout"):
        answers["admin " + path] = admin.get("/console/admin/" + path)
    answers["catalogue"] = admin.get("/console/catalogue")
    department = signed_in(app, "urban")
    answers |= {
        "portal": department.get("/portal/"),
        "portal case": department.get("/portal/cases/" + number),
    }
    return answers


def test_every_html_page_carries_the_policy_frame_and_sniffing_headers(app) -> None:  # type: ignore[no-untyped-def]
    answers = pages_of_each_role(app)
    for name, r in answers.items():
        assert r.mimetype == "text/html", name  # type: ignore[attr-defined]
        headers = r.headers  # type: ignore[attr-defined]
        policy = headers.get("Content-Security-Policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in policy.split("; ") if d}
        assert directives.get("script-src") == ["'self'"], name
        assert directives.get("style-src") == ["'self'"], name
        assert directives.get("frame-ancestors") == ["'none'"], name
        assert directives.get("object-src") == ["'none'"], name
        assert "'unsafe-inline'" not in policy and "'unsafe-eval'" not in policy, name
        assert headers.get("X-Frame-Options") == "DENY", name
        assert headers.get("X-Content-Type-Options") == "nosniff", name
        assert headers.get("Referrer-Policy") == "same-origin", name


def test_no_page_of_any_role_runs_inline_script_or_style(app) -> None:  # type: ignore[no-untyped-def]
    for name, r in pages_of_each_role(app).items():
        assert inline_code(r.get_data(as_text=True)) == [], name  # type: ignore[attr-defined]


def test_no_template_holds_inline_script_or_style() -> None:
    """Fragments (the pop, the seat, the board) are swapped in by htmx under the page's
    policy, so every template is checked, not only the pages rendered above."""
    found = {
        path.name: inline_code(path.read_text(encoding="utf-8"))
        for path in sorted(TEMPLATES.glob("*.html"))
    }
    assert {name: code for name, code in found.items() if code} == {}


def test_personal_answers_are_never_stored_by_a_cache(app) -> None:  # type: ignore[no-untyped-def]
    for name, r in pages_of_each_role(app).items():
        assert r.headers.get("Cache-Control") == "no-store", name  # type: ignore[attr-defined]
    operator = signed_in(app, "wang")
    for path in ("/console/seat", "/console/my-day", "/api/queue"):
        r = operator.get(path)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "no-store", path
    department = signed_in(app, "urban")
    assert department.get("/portal/rows").headers["Cache-Control"] == "no-store"


def test_the_web_holds_no_event_stream(app) -> None:  # type: ignore[no-untyped-def]
    """The live streams are the push process's (their headers: tests/test_push.py): an
    open screen must never hold a web thread."""
    supervisor = signed_in(app, "li")
    for path in ("/console/events", "/console/wallboard/events", "/portal/events"):
        assert supervisor.get(path).status_code == 404, path


def test_pages_link_static_files_by_their_content_hash(app) -> None:  # type: ignore[no-untyped-def]
    supervisor = signed_in(app, "li")
    page = supervisor.get("/console/rankings").get_data(as_text=True)
    links = re.findall(r'(?:src|href|data-chime)="(/static/[^"]+)"', page)
    assert links, "no static file on the page"
    for link in links:
        path, _, query = link.partition("?")
        digest = hashlib.sha256((STATIC / path.removeprefix("/static/")).read_bytes())
        assert query == "v=" + digest.hexdigest()[:12], link
    department = signed_in(app, "urban")
    inbox = department.get("/portal/").get_data(as_text=True)
    chime = re.search(r'data-chime="([^"]+)"', inbox)
    assert chime and "/static/chime.ogg?v=" in chime.group(1)
    assert all("?v=" in link for link in re.findall(r'(?:src|href)="(/static/[^"]+)"', inbox))


def test_a_versioned_static_file_is_cached_for_a_year_and_an_unversioned_one_briefly(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    css = re.search(r'href="(/static/app\.css\?v=[0-9a-f]{12})"', page)
    assert css, "the stylesheet is not versioned"
    versioned = static(client, css.group(1))
    assert versioned.status_code == 200 and versioned.headers["Cache-Control"] == YEAR
    assert versioned.headers["X-Content-Type-Options"] == "nosniff"
    for url in ("/static/app.css", "/static/app.css?v=000000000000"):  # a stale version
        r = static(client, url)
        assert r.status_code == 200 and r.headers["Cache-Control"] == "public, max-age=300"
    missing = static(client, "/static/no-such.css?v=x")
    assert missing.status_code == 404 and "immutable" not in missing.headers["Cache-Control"]


def test_static_text_is_gzipped_for_a_client_that_accepts_it(app) -> None:  # type: ignore[no-untyped-def]
    client = app.test_client()
    for name in ("app.css", "console.js", "vendor/htmx-2.0.11/htmx.min.js"):
        original = (STATIC / name).read_bytes()
        plain = static(client, "/static/" + name)
        assert plain.data == original and "Content-Encoding" not in plain.headers
        assert "Accept-Encoding" in plain.headers["Vary"]
        r = static(client, "/static/" + name, {"Accept-Encoding": "gzip, deflate, br"})
        assert r.headers["Content-Encoding"] == "gzip", name
        assert "Accept-Encoding" in r.headers["Vary"]
        assert int(r.headers["Content-Length"]) == len(r.data) < len(original)
        assert gzip.decompress(r.data) == original
        # Revalidation still works: the gzipped copy's validator matches the file's.
        again = static(
            client,
            "/static/" + name,
            {"Accept-Encoding": "gzip", "If-None-Match": r.headers["ETag"]},
        )
        assert again.status_code == 304
    audio = static(client, "/static/chime.ogg", {"Accept-Encoding": "gzip"})
    assert audio.status_code == 200 and "Content-Encoding" not in audio.headers


def static(client, url: str, headers: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    """A static file's answer, read to the end so that its file is closed."""
    r = client.get(url, headers=headers or {})
    r.get_data()
    r.close()
    return r


class InlineCode(HTMLParser):
    """What a `script-src 'self'; style-src 'self'` policy would refuse to run."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        named = dict(attrs)
        if tag == "script" and not named.get("src"):
            self.found.append("<script> without src")
        if tag == "style":
            self.found.append("<style>")
        for attr, value in attrs:
            if attr.startswith("on") or attr.startswith("hx-on") or attr == "style":
                self.found.append(f"<{tag} {attr}=...>")
            elif (value or "").strip().lower().startswith(("javascript:", "js:")):
                self.found.append(f"<{tag} {attr}={value}>")


def inline_code(html: str) -> list[str]:
    parser = InlineCode()
    parser.feed(html)
    return parser.found
