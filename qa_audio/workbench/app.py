"""The workbench's web app (Flask): sign-in, the queue, the call page, reviews, assignments, agreement, reports.

Thin: each route parses its input, calls ``views`` / ``qa_audio.batch.reviews`` / the accounts, and
renders a Jinja template (autoescaped: every value from a call is escaped). Served by waitress
(``qa_audio/cli/serve.py``); tested through Flask's test client and in Chromium.

Security, all on by default:
- every route but ``/login`` needs a session (a GET without one is sent to the sign-in page, anything
  else answered 401), static files included: the sign-in page carries its stylesheet inline;
- every POST carries the session's CSRF token (form field ``csrf_token`` or header ``X-CSRF-Token``),
  the sign-in form a token of its own (a cookie it must match), else 403;
- a Content-Security-Policy that allows this origin only: no page loads an external URL or runs an
  inline script; ``no-store`` on every answer (they hold personal data);
- bad input is a 4xx with one line saying what is wrong, never a traceback; a store kept busy by a
  batch past the busy timeout is a 503 with Retry-After.
"""

from __future__ import annotations

import io
import json
import logging
import re
import secrets
import sqlite3
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, redirect, render_template, request, send_file, url_for
from werkzeug.exceptions import HTTPException

from qa_audio.batch.export import agreement_report
from qa_audio.batch.reviews import (
    ReviewRefused,
    Submission,
    assign,
    calibration_agreement,
    history,
    is_calibration,
    item_order,
    submit_review,
    unassign,
)
from qa_audio.batch.store import Store
from qa_audio.labels import FLAG_NAMES, REASON_NAMES, ROLE_NAMES, STATUS_NAMES, format_time
from qa_audio.report.html import PLAYER_JS, timeline_svg, who_and_note
from qa_audio.schema import finding_from_dict, transcript_from_result
from qa_audio.workbench import accounts, views
from qa_audio.workbench.audio import RecordingCache, RecordingMissing
from qa_audio.workbench.settings import WorkbenchSettings

logger = logging.getLogger(__name__)

SESSION_COOKIE = "qa_session"
LOGIN_COOKIE = "qa_login"
CALL_ID = re.compile(r"[0-9a-f]{64}")
MAX_NOTE = 5000
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'{nonce}; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
REPORT_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'"


def create_app(db: Path | str, settings: WorkbenchSettings, rules_dir: Path | str | None = None,
               secure_cookies: bool = False, busy_timeout: float = 30.0) -> Flask:
    """The app over an existing store (its tables made and upgraded by the caller: ``serve`` opens it once)."""
    app = Flask(__name__)
    app.config.update(MAX_CONTENT_LENGTH=256 * 1024, TEMPLATES_AUTO_RELOAD=False)
    db = Path(db)
    recordings = RecordingCache()
    login_css = (Path(__file__).parent / "static" / "workbench.css").read_text(encoding="utf-8")

    def cookie_args() -> dict[str, Any]:
        return {"httponly": True, "samesite": "Strict", "secure": secure_cookies, "path": "/"}

    @app.before_request
    def open_store_and_session() -> Response | None:
        g.nonce = secrets.token_urlsafe(16)
        g.store = Store(db, timeout=busy_timeout, prepared=True)
        g.session = accounts.session_of(g.store.conn, request.cookies.get(SESSION_COOKIE))
        if request.endpoint == "login":
            return None
        if g.session is None:
            if request.method in ("GET", "HEAD") and request.endpoint is not None:
                return redirect(url_for("login", next=request.full_path if request.args else request.path))
            abort(401, "sign in first")
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            given = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token")
            if not accounts.same_token(given, g.session.csrf_token):
                abort(403, "the request has no valid CSRF token: reload the page and try again")
        return None

    @app.teardown_request
    def close_store(_error: BaseException | None) -> None:
        store = g.pop("store", None)
        if store is not None:
            store.close()

    @app.after_request
    def headers(response: Response) -> Response:
        nonce = f" 'nonce-{g.nonce}'" if getattr(g, "login_page", False) else ""
        response.headers.setdefault("Content-Security-Policy", CSP.format(nonce=nonce))
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        return response

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> tuple[str, int]:
        return page("error.html", code=error.code, message=error.description or error.name), error.code or 500

    @app.errorhandler(views.BadRequest)
    def bad_request(error: views.BadRequest) -> tuple[str, int]:
        return page("error.html", code=400, message=str(error)), 400

    @app.errorhandler(ReviewRefused)
    def refused(error: ReviewRefused) -> tuple[str, int]:
        return page("error.html", code=error.status, message=str(error)), error.status

    @app.errorhandler(sqlite3.OperationalError)
    def busy(error: sqlite3.OperationalError) -> tuple[str, int, dict[str, str]]:
        if "locked" not in str(error) and "busy" not in str(error):
            logger.exception("database error on %s %s", request.method, request.path)
            return page("error.html", code=500, message="an unexpected database error; it was logged"), 500, {}
        logger.warning("the store stayed busy past %.0f s: %s", busy_timeout, error)
        return (page("error.html", code=503, message="the store is busy (a batch is writing): try again in a moment"),
                503, {"Retry-After": "5"})

    @app.errorhandler(Exception)
    def unexpected(error: Exception) -> tuple[str, int]:
        logger.exception("unexpected error on %s %s", request.method, request.path)
        return page("error.html", code=500, message="an unexpected error; it was logged on the server"), 500

    def page(template: str, **context: Any) -> str:
        return render_template(template, session=g.get("session"), nonce=g.get("nonce"), **context)

    def call_row(call_id: str) -> sqlite3.Row:
        if not CALL_ID.fullmatch(call_id):
            abort(404, "no such call")
        row = g.store.conn.execute("SELECT * FROM calls WHERE call_id=?", (call_id,)).fetchone()
        if row is None:
            abort(404, "no such call")
        if not views.may_see(g.store.conn, call_id, g.session.user, settings):
            abort(403, "this call is not in your queue (assigned to another inspector, or reviewed by one)")
        return row

    def lead_only() -> None:
        if g.session.user.role != "lead":
            abort(403, "this page is for QA leads")

    # ------------------------------------------------------------------ sign-in
    @app.route("/login", methods=["GET", "POST"])
    def login() -> Any:
        g.login_page = True
        target = _local_path(request.values.get("next"))
        if request.method == "GET":
            if g.session is not None:
                return redirect(target)
            token = secrets.token_urlsafe(32)
            response = Response(page("login.html", csrf=token, target=target, css=login_css, error=None))
            response.set_cookie(LOGIN_COOKIE, token, max_age=3600, **cookie_args())
            return response
        given = request.form.get("csrf_token")
        if not accounts.same_token(given, request.cookies.get(LOGIN_COOKIE) or ""):
            abort(403, "the sign-in form has expired or has no CSRF token: reload it and sign in again")
        name = (request.form.get("name") or "").strip()[:64]
        password = request.form.get("password") or ""
        address = request.remote_addr or "unknown"
        conn = g.store.conn
        if accounts.too_many_failures(conn, name, address, settings):
            minutes = f"{settings.window_minutes:g}"
            return (page("error.html", code=429, message=f"too many failed sign-ins: try again in {minutes} minutes"),
                    429, {"Retry-After": str(int(settings.window_minutes * 60))})
        row = accounts.check_password_of(conn, name, password)
        with g.store.transaction():
            signed = accounts.sign_in(conn, row, name, password, address, settings)
        if signed is None:
            token = secrets.token_urlsafe(32)
            response = Response(page("login.html", csrf=token, target=target, css=login_css,
                                     error="用户名或密码错误"), status=401)
            response.set_cookie(LOGIN_COOKIE, token, max_age=3600, **cookie_args())
            return response
        token, _ = signed
        response = redirect(target)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(settings.session_hours * 3600), **cookie_args())
        response.delete_cookie(LOGIN_COOKIE, path="/")
        return response

    @app.post("/logout")
    def logout() -> Any:
        with g.store.transaction():
            accounts.sign_out(g.store.conn, request.cookies.get(SESSION_COOKIE))
        response = redirect(url_for("login"))
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    # ------------------------------------------------------------------ queue
    @app.get("/")
    def home() -> Any:
        return redirect(url_for("queue"))

    @app.get("/queue")
    def queue() -> str:
        query = views.parse_queue_query(request.args)
        user = g.session.user
        result, rows = views.queue_rows(g.store.conn, query, user, settings)
        pages = max(1, -(-result.total // settings.page_size))
        inspectors = accounts.users_by_role(g.store.conn, "inspector") if user.role == "lead" else []
        return page("queue.html", query=query, rows=rows, total=result.total, pages=pages, inspectors=inspectors,
                    statuses=views.STATUS_CHOICES, reasons=REASON_NAMES, flag_names=FLAG_NAMES,
                    format_time=format_time, args={k: v for k, v in request.args.items() if k != "page"})

    @app.post("/assign")
    def assign_calls() -> Any:
        lead_only()
        call_ids = request.form.getlist("call_id")
        inspector = (request.form.get("inspector") or "").strip()
        if not call_ids or any(not CALL_ID.fullmatch(c) for c in call_ids):
            raise views.BadRequest("choose the calls to assign")
        if inspector not in accounts.users_by_role(g.store.conn, "inspector") + \
                accounts.users_by_role(g.store.conn, "lead"):
            raise views.BadRequest(f"no account {inspector[:40]!r} to assign calls to")
        if request.form.get("action") == "unassign":
            unassign(g.store, call_ids, inspector)
        else:
            assign(g.store, call_ids, inspector, g.session.user.name)
        return redirect(_local_path(request.form.get("back"), url_for("queue")))

    # ------------------------------------------------------------------ a call
    @app.get("/calls/<call_id>")
    def call_page(call_id: str) -> str:
        row = call_row(call_id)
        result = json.loads(row["result_json"])
        user = g.session.user
        conn = g.store.conn
        mine = views.review_of(conn, call_id, user.name)
        reviews = views.all_reviews(conn, call_id) if user.role == "lead" else []
        chosen: dict[str, float | None] = dict(mine["scores"]) if mine else {}
        if not mine and reviews:  # a lead revising a reviewed call starts from the confirmed scores
            chosen = dict(reviews[0]["scores"])
        rubric = result.get("rubric") or {}
        duration = float((result.get("audio") or {}).get("duration") or 1.0)
        findings = []
        for finding in result.get("findings") or []:
            try:
                findings.append(finding_from_dict(finding))
            except (KeyError, TypeError):
                continue  # a finding of a rule this version does not draw
        timeline = timeline_svg(transcript_from_result(result), findings, duration)
        meta = conn.execute("SELECT * FROM call_metadata WHERE call_id=?", (call_id,)).fetchone()
        notes = mine or {"problems": "\n".join(rubric.get("problems") or []),
                         "suggestions": "\n".join(rubric.get("suggestions") or []), "summary": ""}
        return page("call.html", call=row, result=result, rubric=rubric, timeline=timeline,
                    items=views.sheet_rows(result, chosen), turns=views.transcript_rows(result), mine=mine,
                    reviews=reviews, notes=notes, meta=meta, name=Path(row["path"]).name,
                    flags=json.loads(row["flags"] or "[]"), flag_names=FLAG_NAMES, role_names=ROLE_NAMES,
                    who_and_note=who_and_note,
                    status_names=STATUS_NAMES, format_time=format_time,
                    type_names=(result.get("settings") or {}).get("personal_data", {}).get("types", {}),
                    score_text=views.score_text, masked=result.get("personal_data") or [],
                    rewrites=views.vocabulary_rewrites(result), opening=views.opening_redecoded(result),
                    originals=views.originals(result) if user.role in settings.show_originals_to else [],
                    history=history(conn, call_id) if user.role == "lead" else [],
                    calibration=is_calibration(call_id, settings.calibration_share), saved=request.args.get("saved"))

    @app.get("/player.js")
    def player_js() -> Response:
        """The player's and timeline's script, the HTML report's own (qa_audio/report/player.js)."""
        return send_file(PLAYER_JS, mimetype="text/javascript", max_age=0)

    @app.get("/calls/<call_id>/audio")
    def call_audio(call_id: str) -> Response:
        row = call_row(call_id)
        paths = [row["path"]] + [p[0] for p in g.store.conn.execute(
            "SELECT path FROM paths WHERE call_id=? AND path<>? ORDER BY last_seen DESC", (call_id, row["path"]))]
        try:
            data, mime = recordings.get(call_id, paths, int(row["size"] or 0), json.loads(row["result_json"]))
        except RecordingMissing as exc:
            abort(404, str(exc))
        response = send_file(io.BytesIO(data), mimetype=mime, conditional=True, etag=call_id[:32], max_age=0)
        return response

    @app.post("/calls/<call_id>/review")
    def review(call_id: str) -> Any:
        row = call_row(call_id)
        result = json.loads(row["result_json"])
        scores: dict[str, float] = {}
        for item in (result.get("rubric") or {}).get("items") or []:
            value = (request.form.get(f"score_{item['id']}") or "").strip()
            if not value:
                raise views.BadRequest(f"item {item['id']} {item.get('name', '')} has no score: choose one")
            try:
                scores[item["id"]] = float(value)
            except ValueError as exc:
                raise views.BadRequest(f"item {item['id']}: {value[:20]!r} is not a score") from exc
        notes = {}
        for field in ("problems", "suggestions", "summary"):
            text = request.form.get(field) or ""
            if len(text) > MAX_NOTE:
                raise views.BadRequest(f"{field}: at most {MAX_NOTE} characters")
            notes[field] = text.strip()
        user = g.session.user
        submit_review(g.store, Submission(call_id, user.name, scores, **notes), user.role, settings.calibration_share)
        if request.form.get("then") == "next":
            following = views.next_call(g.store.conn, user, settings, call_id)
            if following:
                return redirect(url_for("call_page", call_id=following))
            return redirect(url_for("queue", done=1))
        return redirect(url_for("call_page", call_id=call_id, saved=1))

    # ------------------------------------------------------------------ leads
    @app.get("/agreement")
    def agreement() -> str:
        lead_only()
        machine = agreement_report(g.store)
        calibration = calibration_agreement(g.store.conn)
        by_item = {row["item_id"]: {"machine_all": row} for row in machine["items"]}
        for row in calibration["items"]:
            by_item.setdefault(row["item_id"], {}).update(inspectors=row["inspectors"], machine_same=row["machine"])
        rows = [{"item_id": item_id, **by_item[item_id]} for item_id in sorted(by_item, key=item_order)]
        return page("agreement.html", rows=rows, machine_calls=machine["calls"],
                    calibration_calls=calibration["calls"], share=settings.calibration_share)

    @app.get("/reports")
    def reports() -> Response:
        lead_only()
        by = request.args.get("by") or "agent"
        if by not in ("agent", "team"):
            raise views.BadRequest(f"by {by[:20]!r}: agent or team")
        from qa_audio.coaching.categories import load_categories
        from qa_audio.coaching.figures import build_report
        from qa_audio.coaching.html import render_report_html
        from qa_audio.rubric import load_rubric

        sheet = load_rubric(Path(rules_dir) if rules_dir else None)
        try:
            report = build_report(g.store, sheet, load_categories(rules_dir, sheet), by,
                                  request.args.get("since") or None, request.args.get("until") or None)
        except ValueError as exc:
            raise views.BadRequest(str(exc).replace("--", "")) from exc

        def link(moment: Any) -> str:
            return url_for("call_page", call_id=moment.call_id) + (
                f"#t={moment.start:.2f}" if moment.start is not None else "")

        response = Response(render_report_html(report, link=link), mimetype="text/html")
        response.headers["Content-Security-Policy"] = REPORT_CSP
        return response

    return app


def _local_path(value: str | None, default: str = "/queue") -> str:
    """A redirect target only on this site: a path, never ``//host`` or a URL."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value and len(value) < 2000:
        return value
    return default
