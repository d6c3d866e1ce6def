"""Admin pages under /admin: sign in with the admin token, keywords, contacts, events.

Server-rendered HTML; every form carries a CSRF token (Flask-WTF); without a session
every page redirects to the sign-in page.
"""

from __future__ import annotations

import copy
import hmac
import io
import threading
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, flash, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from webhook import consent
from webhook.addresses import normalise_address
from webhook.analytics import scope_changes
from webhook.csv_safe import SafeWriter
from webhook.domain import SOURCES, EventFilter, iso
from webhook.gating import DEFAULT_SCOPE, REVOCATION_SCOPES, SCOPE_SHORT, SCOPE_WORDS
from webhook.keywords import INTENT_WORDS, INTENTS, KeywordConfigError, language_name, parse_document, scope_warnings
from webhook.web import services

bp = Blueprint("admin", __name__, url_prefix="/admin")
IDENTITY_WORDS = {"number": "number", "messaging_service": "Twilio Messaging Service",
                  "phone_number_id": "WhatsApp Cloud phone number id", "asm_group_id": "SendGrid unsubscribe group"}
CHANNEL_TYPE_WORDS = {"sms": "SMS", "whatsapp": "WhatsApp", "email": "E-mail"}
# The e-mail page's reason codes (webhook/web/email.py REASONS) and sources, in an admin's words.
REASON_WORDS = {"too_many": "Too many e-mails", "not_relevant": "Not relevant", "never_signed_up": "Never signed up",
                "other": "Other"}
SOURCE_WORDS = {"keyword": "message", "carrier": "carrier block", "admin": "admin", "import": "imported list",
                "one_click": "e-mail one-click", "page": "e-mail page", "inbound_mail": "e-mail reply",
                "provider": "the provider's own settings", "complaint": "spam complaint"}


@bp.app_template_filter("channel_label")
def channel_label(name: str, channel_type: str) -> str:
    """"SMS" for the default sms channel, "brand-b (SMS)" for a named one: never "sms (sms)"."""
    words = CHANNEL_TYPE_WORDS.get(channel_type, channel_type)
    return words if name == channel_type else f"{name} ({words})"


@bp.app_template_filter("reason_words")
def reason_words(text: str | None) -> str:
    """A stored reason with the e-mail page's code in words ("too_many: daily" -> "Too many e-mails: daily")."""
    if not text:
        return ""
    code, sep, rest = text.partition(":")
    if code in REASON_WORDS:
        return REASON_WORDS[code] + (f":{rest}" if sep else "")
    return text


@bp.app_template_filter("source_words")
def source_words(source: str | None) -> str:
    return SOURCE_WORDS.get(source or "", (source or "").replace("_", " "))
PAGE_SIZE = 50
EARLIEST = datetime(1970, 1, 1, tzinfo=timezone.utc)
LATEST = datetime(9000, 1, 1, tzinfo=timezone.utc)
MAX_TRY_TEXT = 1600  # a message's length (Twilio): the Try box matches no more
CSV_LIMIT = 100_000
PUBLIC_ENDPOINTS = {"admin.login"}


@bp.before_request
def require_session() -> BaseResponse | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not services().settings.admin_token or not session.get("admin"):
        return redirect(url_for("admin.login", next=request.full_path.rstrip("?")))
    return None


@bp.after_request
def security_headers(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = "default-src 'self'; frame-ancestors 'none'; form-action 'self'"
    if (services().settings.public_base_url or "").startswith("https:"):
        response.headers["Strict-Transport-Security"] = "max-age=31536000"
    return response


def _safe_next(target: str | None) -> str:
    """Only a path inside /admin: never an open redirect, never a header split by CR/LF
    (or any other control character or space). The default is the dashboard."""
    if (target and target.startswith("/admin") and not target.startswith("//") and len(target) <= 2000
            and target.isprintable() and " " not in target and not urlsplit(target).netloc):
        return target
    return url_for("admin.dashboard")


MAX_PAGE = 1_000_000


def page_arg() -> int:
    """The ``page`` query parameter: 1 without it, 400 unless a whole number from 1 to MAX_PAGE."""
    raw = request.args.get("page", "1").strip() or "1"
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 7 and 1 <= int(raw) <= MAX_PAGE):
        abort(400, description=f"page must be a whole number from 1 to {MAX_PAGE}")
    return int(raw)


def day_arg(name: str, *, plus: int = 0) -> datetime | None:
    """A YYYY-MM-DD query parameter as midnight UTC (None when empty); 400 when it is not a
    date between 1970 and 9000 (so adding a day can never overflow)."""
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        moment = datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=timezone.utc)
    except ValueError:
        abort(400, description=f"{name} must be a date like 2026-11-26")
    if not 1970 <= moment.year <= 9000:
        abort(400, description=f"{name} must be a date between 1970 and 9000")
    return moment + timedelta(days=plus)


class FailedSignIns:
    """Failed sign-ins per client address in a sliding window (per process: with N
    processes an attacker gets N times the budget, still far too few to guess a token)."""

    def __init__(self, limit: int = 10, window_seconds: float = 600) -> None:
        self.limit, self.window = limit, window_seconds
        self._failures: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> list[float]:
        recent = [t for t in self._failures.get(client, []) if now - t < self.window]
        if recent:
            self._failures[client] = recent
        else:
            self._failures.pop(client, None)
        return recent

    def blocked_for(self, client: str) -> float:
        """Seconds until this client may try again (0: now)."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent(client, now)
            return self.window - (now - recent[0]) if len(recent) >= self.limit else 0.0

    def failed(self, client: str) -> None:
        with self._lock:
            if len(self._failures) > 10_000:  # bounded memory under a spray of addresses
                self._failures.clear()
            self._failures.setdefault(client, []).append(time.monotonic())


failed_sign_ins = FailedSignIns()


@bp.route("/login", methods=["GET", "POST"])
def login():
    token = services().settings.admin_token
    error = None
    if request.method == "POST":
        client = request.remote_addr or "unknown"
        wait = failed_sign_ins.blocked_for(client)
        if wait:
            response = Response(
                render_template("admin/login.html", error="Too many failed sign-ins: try again later.", next=""), status=429
            )
            response.headers["Retry-After"] = str(int(wait) + 1)
            return response
        given = request.form.get("token", "")
        if token and hmac.compare_digest(given.encode(), token.encode()):
            session.clear()
            session["admin"] = True
            return redirect(_safe_next(request.form.get("next")))
        failed_sign_ins.failed(client)
        error = "The admin pages are disabled: set ADMIN_TOKEN." if not token else "That token is not right."
    return render_template("admin/login.html", error=error, next=request.args.get("next", "")), (401 if error else 200)


@bp.post("/logout")
def logout():
    session.clear()
    return redirect(url_for("admin.login"))


@bp.get("/")
def home():
    return redirect(url_for("admin.dashboard"))


# -- keywords --------------------------------------------------------------------

@bp.get("/keywords")
def keywords():
    svc = services()
    warned = {problem.path.split(".")[1] for problem in scope_warnings(svc.config)}
    return render_template("admin/keywords.html", config=svc.config, version=svc.keywords.version,
                           identity_words=IDENTITY_WORDS, scope_short=SCOPE_SHORT, warned=warned)


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.replace(",", "\n").splitlines() if line.strip()]


def _proposed(document: dict, channel: str, language: str, form) -> dict:
    """The document with this channel and language's fields replaced by the form's."""
    proposed = copy.deepcopy(document)
    entry = proposed["channels"][channel]
    # The revocation scope is the channel's, whichever language's page saves it: only a
    # select the admin changed (from the value the page showed) changes it, so saving a
    # page opened before someone else changed the scope keeps their change.
    scope = form.get("revocation_scope")
    if scope is not None and scope != form.get("revocation_scope_was"):
        entry["revocation_scope"] = scope
    # The forward is the channel's too, and changes in the same way.
    if form.get("forward_url") is not None and _forward_form(form) != form.get("forward_was"):
        url = form.get("forward_url", "").strip()
        if url:
            timeout = form.get("forward_timeout", "").strip()
            entry["forward"] = {"url": url, "messages": form.get("forward_messages") or "non_consent",
                                "timeout_seconds": int(timeout) if timeout.isascii() and timeout.isdigit() and len(timeout) < 4
                                else timeout or 8}
        else:
            entry.pop("forward", None)
    for intent in INTENTS:
        section = entry.setdefault(intent, {})
        fields = [("keywords", _lines(form.get(f"{intent}_keywords", "")))]
        if intent == "opt_out":
            fields += [("first_word", _lines(form.get("first_word", ""))), ("phrases", [p for p in form.get("phrases", "").splitlines() if p.strip()])]
        for name, values in fields:
            by_language = section.setdefault(name, {})
            if values:
                by_language[language] = [v.strip() for v in values]
            else:
                by_language.pop(language, None)
        reply = form.get(f"{intent}_reply", "").strip()
        replies = section.setdefault("reply", {})
        if reply:
            replies[language] = reply
        else:
            replies.pop(language, None)
    return proposed


def _forward_form(form) -> str:
    """The forward fields of a form as one value, to tell whether the admin changed them."""
    return "|".join((form.get("forward_url", "").strip(), form.get("forward_messages", ""), form.get("forward_timeout", "").strip()))


def _fields(document: dict, channel: str, language: str) -> dict[str, str]:
    entry = document["channels"][channel]
    out = {}
    for intent in INTENTS:
        section = entry.get(intent, {})
        out[f"{intent}_keywords"] = "\n".join(section.get("keywords", {}).get(language, []))
        out[f"{intent}_reply"] = section.get("reply", {}).get(language, "")
    out["first_word"] = "\n".join(entry["opt_out"].get("first_word", {}).get(language, []))
    out["phrases"] = "\n".join(entry["opt_out"].get("phrases", {}).get(language, []))
    out["revocation_scope"] = out["revocation_scope_was"] = entry.get("revocation_scope", DEFAULT_SCOPE)
    forward = entry.get("forward") or {}
    out["forward_url"] = forward.get("url", "")
    out["forward_messages"] = forward.get("messages", "non_consent")
    out["forward_timeout"] = str(forward.get("timeout_seconds", 8))
    out["forward_was"] = _forward_form(out)
    return out


FIELD_LABELS = {
    "opt_out_keywords": "Opt-out keywords", "first_word": "First words", "phrases": "Opt-out phrases",
    "opt_out_reply": "Opt-out reply", "opt_in_keywords": "Opt-in keywords", "opt_in_reply": "Opt-in reply",
    "help_keywords": "Help keywords", "help_reply": "Help reply", "revocation_scope": "What an opt-out stops",
    "forward_url": "Forward URL", "forward_messages": "Forward which messages", "forward_timeout": "Forward timeout",
}
FORWARD_FIELDS = {"url": "forward_url", "messages": "forward_messages", "timeout_seconds": "forward_timeout"}


def _field_of(path: str, channel: str, language: str) -> str | None:
    """The form field a problem's path points at, when it is one of this page's fields."""
    parts = path.split(".")
    if parts[:3] == ["channels", channel, "revocation_scope"]:
        return "revocation_scope"
    if parts[:3] == ["channels", channel, "forward"]:
        return FORWARD_FIELDS.get(parts[3], "forward_url") if len(parts) > 3 else "forward_url"
    if parts[:2] != ["channels", channel] or len(parts) < 4 or parts[2] not in INTENTS:
        return None
    intent, kind = parts[2], parts[3]
    if kind == "keywords" and len(parts) == 4:
        return f"{intent}_keywords"  # a rule on the whole channel (a required keyword): every language's page
    if kind == "reply":
        return f"{intent}_reply" if len(parts) == 4 or parts[4] == language else None
    if len(parts) < 5 or parts[4] != language:
        return None
    if kind == "keywords":
        return f"{intent}_keywords"
    return kind if intent == "opt_out" and kind in ("first_word", "phrases") else None


def _problems_by_field(problems: list, channel: str, language: str) -> tuple[dict[str, list[str]], list[str]]:
    """Each problem beside its field; the others (another language, the whole document) apart."""
    by_field: dict[str, list[str]] = {}
    others: list[str] = []
    for problem in problems:
        field = _field_of(problem.path, channel, language)
        if field is None:
            others.append(problem.message)
        else:
            by_field.setdefault(field, []).append(problem.message)
    return by_field, others


@bp.route("/keywords/<channel>/<language>", methods=["GET", "POST"])
def keyword_edit(channel: str, language: str):
    svc = services()
    config = svc.config
    document = config.document
    if channel not in document["channels"] or language not in document["channels"][channel]["languages"]:
        abort(404)
    fields = _fields(document, channel, language)
    errors: list = []
    tried = None
    status = 200
    if request.method == "POST":
        # A form without the scope (an older page, a script) keeps the channel's scope.
        fields = {name: request.form.get(name, fields[name] if name.startswith(("revocation_scope", "forward_")) else "")
                  for name in fields}
        proposed = _proposed(document, channel, language, request.form)
        if request.form.get("action") == "save":
            try:
                version, created = svc.keywords.save(proposed, source="admin", author="admin", note=request.form.get("note") or None)
            except KeywordConfigError as error:
                errors, status = error.problems, 422
            else:
                flash(f"Saved as version {version.number}." if created else "Nothing changed.")
                return redirect(url_for("admin.keyword_edit", channel=channel, language=language))
        else:  # try a message under the proposed configuration, without saving
            text = request.form.get("text", "")[:MAX_TRY_TEXT]
            try:
                proposed_config = parse_document(proposed)
            except KeywordConfigError as error:
                errors, status = error.problems, 422
            else:
                result = consent.dry_run(proposed_config.channels[channel], text)
                tried = {"text": text, "match": result.match, "reply": result.reply,
                         "review_reason": result.decision.review_reason}
    field_errors, other_errors = _problems_by_field(errors, channel, language)
    return render_template(
        "admin/keyword_edit.html", channel=channel, language=language, fields=fields, errors=errors, tried=tried,
        field_errors=field_errors, other_errors=other_errors, labels=FIELD_LABELS, language_name=language_name(language),
        version=svc.keywords.version, channel_type=document["channels"][channel]["type"],
        scope=config.channels[channel].revocation_scope, scopes=REVOCATION_SCOPES, scope_words=SCOPE_WORDS,
        scope_short=SCOPE_SHORT, warnings=_replies_saying_marketing(config, channel),
    ), status


def _replies_saying_marketing(config, channel: str) -> list[str]:
    """The channel's replies that still say "marketing" under a wider scope, one line per
    intent: "opt-out reply: English, French" (keywords.scope_warnings has one per reply)."""
    languages: dict[str, list[str]] = {}
    for warning in scope_warnings(config, channel):
        _, _, intent, _, language = warning.path.split(".")
        languages.setdefault(intent, []).append(language_name(language))
    return [f"{INTENT_WORDS[intent]} reply: {', '.join(names)}" for intent, names in languages.items()]


@bp.get("/keywords/versions")
def versions():
    svc = services()
    return render_template("admin/versions.html", versions=svc.store.keyword_versions(200), current=svc.keywords.version.number)


@bp.get("/keywords/versions/<int:number>")
def version(number: int):
    found = services().store.keyword_version(number)
    if found is None:
        abort(404)
    return render_template("admin/version.html", version=found, current=services().keywords.version.number)


@bp.post("/keywords/versions/<int:number>/rollback")
def rollback(number: int):
    try:
        version = services().keywords.rollback(number, author="admin")
    except KeywordConfigError as error:  # an old version today's rules refuse, or one that drops a channel in use
        flash(f"Not rolled back to version {number}: " + "; ".join(f"{p.path}: {p.message}" for p in error.problems[:5]))
        return redirect(url_for("admin.versions"))
    if version is None:
        abort(404)
    flash(f"Rolled back: version {version.number} has the content of version {number}.")
    return redirect(url_for("admin.versions"))


# -- contacts --------------------------------------------------------------------

@bp.get("/contacts")
def contacts():
    svc = services()
    query = request.args.get("q", "").strip()
    results = []
    if query:
        for channel in svc.config.channels.values():
            address = normalise_address(channel.type, query, svc.settings.default_region)
            if address is None and channel.type != "email" and query.replace(" ", "").isdigit():
                # "14155550123": an international number whose + was lost (a pasted link, say).
                address = normalise_address(channel.type, "+" + query.replace(" ", ""))
            if address is None:
                continue
            # lookup: an erased address that had unsubscribed still reads as unsubscribed.
            found = consent.lookup(svc.config, svc.store, channel.name, address, svc.address_hash)
            results.append({
                "channel": channel.name,
                "type": channel.type,
                "address": address,
                "subscription": found.subscription,
                "history": found.history[::-1],
                "gated": found.gated_categories,  # under the channel's revocation scope
            })
    return render_template("admin/contacts.html", query=query, results=results, searched=bool(query),
                           region=svc.settings.default_region)


@bp.post("/contacts/<channel>/<path:address>")
def set_contact_status(channel: str, address: str):
    svc = services()
    status, reason = request.form.get("status", ""), request.form.get("reason", "").strip()
    if status not in ("subscribed", "unsubscribed") or not reason:
        flash("Choose a status and give a reason: both are recorded.", "error")
    else:
        try:
            consent.set_status(svc.config, svc.store, channel, address, status, reason, svc.settings.default_region)
            flash(f"{address} is now {status} on {channel}.")
        except (consent.UnknownChannel, consent.InvalidAddress) as error:
            flash(str(error), "error")
    return redirect(url_for("admin.contacts", q=address))


# -- events ----------------------------------------------------------------------

def _filters() -> tuple[EventFilter, dict[str, str]]:
    args = {name: request.args.get(name, "").strip()[:100] for name in ("channel", "action", "source", "from", "to")}
    return EventFilter(
        channel=args["channel"] or None,
        action=args["action"] or None,
        source=args["source"] or None,
        since=day_arg("from"),
        until=day_arg("to", plus=1),  # the "to" day is included
    ), args


@bp.get("/events")
def events():
    svc = services()
    filters, args = _filters()
    page = page_arg()
    found, total = svc.store.events(filters, PAGE_SIZE, (page - 1) * PAGE_SIZE)
    pages = max(1, -(-total // PAGE_SIZE))
    # When what an opt-out gates changed within the filtered dates (every version, without dates).
    changes = scope_changes(svc.store.channel_scopes(filters.since or EARLIEST, filters.until or LATEST),
                            filters.channel)
    return render_template(
        "admin/events.html", events=found, total=total, page=page, pages=pages, args=args,
        channels=list(svc.config.channels), sources=SOURCES, scope_changes=changes, scope_short=SCOPE_SHORT,
    )


@bp.get("/events.csv")
def events_csv():
    filters, _ = _filters()
    found, _ = services().store.events(filters, CSV_LIMIT, 0)
    out = io.StringIO()
    writer = SafeWriter(out)
    writer.writerow(["at", "channel", "address", "action", "source", "keyword", "language", "match_kind", "message_id", "config_version", "reason", "text"])
    for e in found:
        writer.writerow((
            iso(e.occurred_at), e.channel, e.address, e.action, e.source, e.keyword, e.language,
            e.match_kind, e.message_id, e.config_version, e.reason, e.raw_text,
        ))
    return Response(out.getvalue(), mimetype="text/csv", headers={"Content-Disposition": "attachment; filename=consent-events.csv"})
