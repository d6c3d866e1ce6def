"""E-mail unsubscribes over the web: RFC 8058 one-click, the unsubscribe page, inbound mail."""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, render_template, request

from webhook import consent, metrics
from webhook.email_tokens import read_token
from webhook.gating import DEFAULT_SCOPE
from webhook.providers import email_inbound, mailgun_events
from webhook.web import services
from webhook.web.mailgun_events import first_use

bp = Blueprint("email", __name__)
LANGUAGES = ("en", "es", "fr")
REASONS = ("too_many", "not_relevant", "never_signed_up", "other")

# The page's words. Short on purpose: one question, one button.
TEXT = {
    "en": {
        "title": "Unsubscribe",
        "question": "Stop marketing e-mails from {brand} to {address}?",
        "why": "Why are you leaving? (optional)",
        "too_many": "Too many e-mails",
        "not_relevant": "Not relevant to me",
        "never_signed_up": "I never signed up",
        "other": "Other",
        "other_text": "Tell us more (optional)",
        "unsubscribe": "Unsubscribe",
        "done": "You are unsubscribed. {brand} will send no more marketing e-mails to {address}.",
        "resubscribe_hint": "Changed your mind?",
        "resubscribe": "Subscribe again",
        "resubscribed": "You are subscribed again to marketing e-mails from {brand}.",
        "invalid": "This unsubscribe link is not valid.",
    },
    "es": {
        "title": "Darse de baja",
        "question": "¿Dejar de recibir correos de marketing de {brand} en {address}?",
        "why": "¿Por qué te vas? (opcional)",
        "too_many": "Demasiados correos",
        "not_relevant": "No me interesan",
        "never_signed_up": "Nunca me suscribí",
        "other": "Otro motivo",
        "other_text": "Cuéntanos más (opcional)",
        "unsubscribe": "Darme de baja",
        "done": "Te has dado de baja. {brand} no enviará más correos de marketing a {address}.",
        "resubscribe_hint": "¿Cambiaste de opinión?",
        "resubscribe": "Volver a suscribirme",
        "resubscribed": "Vuelves a estar suscrito a los correos de marketing de {brand}.",
        "invalid": "Este enlace para darse de baja no es válido.",
    },
    "fr": {
        "title": "Se désabonner",
        "question": "Ne plus recevoir les e-mails marketing de {brand} à l'adresse {address} ?",
        "why": "Pourquoi partez-vous ? (facultatif)",
        "too_many": "Trop d'e-mails",
        "not_relevant": "Cela ne me concerne pas",
        "never_signed_up": "Je ne me suis jamais inscrit(e)",
        "other": "Autre",
        "other_text": "Dites-nous en plus (facultatif)",
        "unsubscribe": "Me désabonner",
        "done": "Vous êtes désabonné(e). {brand} n'enverra plus d'e-mails marketing à {address}.",
        "resubscribe_hint": "Vous avez changé d'avis ?",
        "resubscribe": "Me réabonner",
        "resubscribed": "Vous êtes de nouveau abonné(e) aux e-mails marketing de {brand}.",
        "invalid": "Ce lien de désabonnement n'est pas valide.",
    },
}
# What the page says is stopped, when the e-mail channel's revocation_scope gates more than
# campaigns (webhook/gating.py): under `automated` marketing and automated e-mails, under
# `all` every e-mail. These replace the TEXT entries of the same name.
SCOPE_TEXT = {
    "automated": {
        "en": {
            "question": "Stop marketing and automated e-mails from {brand} to {address}?",
            "done": "You are unsubscribed. {brand} will send no more marketing or automated e-mails to {address}.",
            "resubscribed": "You are subscribed again to marketing and automated e-mails from {brand}.",
        },
        "es": {
            "question": "¿Dejar de recibir correos de marketing y automáticos de {brand} en {address}?",
            "done": "Te has dado de baja. {brand} no enviará más correos de marketing ni automáticos a {address}.",
            "resubscribed": "Vuelves a estar suscrito a los correos de marketing y automáticos de {brand}.",
        },
        "fr": {
            "question": "Ne plus recevoir les e-mails marketing et automatiques de {brand} à l'adresse {address} ?",
            "done": "Vous êtes désabonné(e). {brand} n'enverra plus d'e-mails marketing ni automatiques à {address}.",
            "resubscribed": "Vous êtes de nouveau abonné(e) aux e-mails marketing et automatiques de {brand}.",
        },
    },
    "all": {
        "en": {
            "question": "Stop all e-mails from {brand} to {address}?",
            "done": "You are unsubscribed. {brand} will send no more e-mails to {address}.",
            "resubscribed": "You are subscribed again to e-mails from {brand}.",
        },
        "es": {
            "question": "¿Dejar de recibir todos los correos de {brand} en {address}?",
            "done": "Te has dado de baja. {brand} no enviará más correos a {address}.",
            "resubscribed": "Vuelves a estar suscrito a los correos de {brand}.",
        },
        "fr": {
            "question": "Ne plus recevoir aucun e-mail de {brand} à l'adresse {address} ?",
            "done": "Vous êtes désabonné(e). {brand} n'enverra plus d'e-mails à {address}.",
            "resubscribed": "Vous êtes de nouveau abonné(e) aux e-mails de {brand}.",
        },
    },
}
INBOUND_MAIL_MAX_BYTES = 30 * 1024 * 1024  # inbound-parse services post whole mails, attachments included
INBOUND_MAIL_FORM_MEMORY = 10 * 1024 * 1024


def _language() -> str:
    asked = request.args.get("lang", "")
    if asked in LANGUAGES:
        return asked
    return request.accept_languages.best_match(LANGUAGES) or "en"


def _page(language: str, state: str, token: str, channel: str, address: str, status: int = 200) -> Response:
    svc = services()
    found = svc.config.channel(channel)
    scope = found.revocation_scope if found is not None else DEFAULT_SCOPE
    text = TEXT[language] | SCOPE_TEXT.get(scope, {}).get(language, {})
    words = {key: value.format(brand=svc.config.brand, address=address) for key, value in text.items()}
    html = render_template(
        "unsubscribe.html", t=words, language=language, state=state, token=token, reasons=REASONS, languages=LANGUAGES
    )
    response = Response(html, status=status, mimetype="text/html")
    # A page about one person's address: never cached, never framed, never indexed.
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["X-Robots-Tag"] = "noindex"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


def _subject(token: str, language: str) -> tuple[str, str]:
    """(channel name, address) a token names, or a 404 page that says nothing more."""
    svc = services()
    subject = read_token(svc.settings.secret_key or "", token)
    if subject is None:
        words = TEXT[language]
        abort(_page_invalid(language, words["invalid"]))
    return consent.email_channel(svc.config, subject.channel).name, subject.address


def _page_invalid(language: str, message: str) -> Response:
    html = render_template("unsubscribe_invalid.html", language=language, message=message, title=TEXT[language]["title"])
    response = Response(html, status=404, mimetype="text/html")
    response.headers["Cache-Control"] = "no-store"
    return response


def _reason(form) -> str | None:
    reason = form.get("reason", "")
    if reason not in REASONS:
        return None
    detail = (form.get("detail") or "").strip()
    return f"{reason}: {detail}" if detail else reason


@bp.get("/unsubscribe/<token>")
def unsubscribe_page(token: str) -> Response:
    """Shows the page only: link scanners prefetch GETs, so a GET never unsubscribes."""
    language = _language()
    channel, address = _subject(token, language)
    current = services().store.subscription(channel, address)
    state = "done" if current is not None and current.status == "unsubscribed" else "ask"
    return _page(language, state, token, channel, address)


@bp.post("/unsubscribe/<token>")
def unsubscribe(token: str) -> Response:
    """RFC 8058 one-click (body List-Unsubscribe=One-Click), or the page's own buttons."""
    svc = services()
    language = _language()
    channel, address = _subject(token, language)
    form = request.form  # urlencoded or multipart/form-data alike
    if form.get("List-Unsubscribe") == "One-Click":
        consent.set_email_preference(svc.config, svc.store, channel, address, "opt_out", "one_click")
        # 200 with a body, never a redirect (RFC 8058 section 3.2).
        return Response("You are unsubscribed.\n", mimetype="text/plain", headers={"Cache-Control": "no-store"})
    action = form.get("action")
    if action == "unsubscribe":
        consent.set_email_preference(svc.config, svc.store, channel, address, "opt_out", "page", _reason(form))
        return _page(language, "done", token, channel, address)
    if action == "resubscribe":
        consent.set_email_preference(svc.config, svc.store, channel, address, "opt_in", "page")
        return _page(language, "resubscribed", token, channel, address)
    abort(400, description="unknown action; send List-Unsubscribe=One-Click, or use the page's buttons")


def _record_mail(mail, provider: str) -> Response:
    svc = services()
    found = consent.handle_inbound_mail(mail, svc.config, svc.store)
    metrics.count_inbound(provider, "email", found.intent if found else "none")
    return Response(("unsubscribed\n" if found else "no unsubscribe request found\n"), mimetype="text/plain")


def _allow_whole_mails() -> None:
    request.max_content_length = INBOUND_MAIL_MAX_BYTES
    request.max_form_memory_size = INBOUND_MAIL_FORM_MEMORY


@bp.post("/webhooks/email/sendgrid/<secret>")
def sendgrid_inbound(secret: str) -> Response:
    """SendGrid Inbound Parse; its URL carries SENDGRID_INBOUND_SECRET (SendGrid does not sign)."""
    expected = services().settings.sendgrid_inbound_secret
    if not expected or not hmac.compare_digest(secret.encode(), expected.encode()):
        abort(403, description="unknown inbound-mail URL")
    _allow_whole_mails()
    try:
        mail = email_inbound.parse_sendgrid(request.form)
    except email_inbound.MalformedMail as error:
        abort(400, description=f"malformed inbound mail: {error}")
    return _record_mail(mail, "sendgrid")


@bp.post("/webhooks/email/mailgun")
def mailgun_inbound() -> Response:
    """A Mailgun route forwarding mails here; its signature is checked with MAILGUN_SIGNING_KEY."""
    _allow_whole_mails()
    form = request.form
    if not email_inbound.mailgun_signature_ok(services().settings.mailgun_signing_key, form):
        abort(403, description="invalid or missing Mailgun signature")
    # The signature covers timestamp + token, not the mail: within its 12 hours a captured one
    # could carry any sender. Each token is accepted once, on this route or the events route.
    if not first_use(form["token"], mailgun_events.token_expiry(form["timestamp"])):
        abort(403, description="this Mailgun signature was used before")
    try:
        mail = email_inbound.parse_mailgun(request.form)
    except email_inbound.MalformedMail as error:
        abort(400, description=f"malformed inbound mail: {error}")
    return _record_mail(mail, "mailgun")
