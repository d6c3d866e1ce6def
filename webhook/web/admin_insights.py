"""Admin pages for what the numbers say: the dashboard, the review queue, and one contact's
audit export and erasure. Same blueprint, session and CSRF protection as the other admin pages."""

from __future__ import annotations

import json
from datetime import date, timedelta

from flask import Response, abort, flash, redirect, render_template, request, session, url_for
from markupsafe import Markup

from webhook import consent
from webhook.analytics import LABELS
from webhook.domain import utcnow
from webhook.gating import SCOPE_SHORT
from webhook.store import ErasureKeyMismatch
from webhook.web import services
from webhook.web.admin import bp, page_arg
from webhook.web.api_data import stats_report
from webhook.web.charts import daily_bars, horizontal_bars

PERIODS = (7, 30, 90)
# How an opt-out came, in an admin's words (stats' "kind": match kind or source).
KIND_LABELS = {
    "keyword": "keyword alone (STOP)", "first_word": "keyword first (STOP please)", "phrase": "phrase (please stop)",
    "emoji": "stop sign emoji", "provider": "Twilio's own opt-out", "carrier": "carrier or WhatsApp block (21610, 131050)",
    "whatsapp_settings": "WhatsApp settings (Offers and announcements)",
    "complaint": "spam complaint (SendGrid, Mailgun)", "sendgrid_unsubscribe": "SendGrid unsubscribe",
    "sendgrid_group_unsubscribe": "SendGrid unsubscribe group", "mailgun_unsubscribed": "Mailgun unsubscribe",
    "admin": "admin", "import": "imported list", "one_click": "e-mail one-click", "page": "e-mail page",
    "inbound_mail": "e-mail reply",
    "typo": "mistyped keyword (Sotp)", "stretched": "stretched keyword (Stooop)", "wrong_number": "wrong number",
}
REVIEW_PAGE = 50
# How a campaign's complaint rate stands, in an admin's words (stats' complaint_level).
COMPLAINT_WORDS = {"ok": "", "warning": "above 0.1 %", "over_limit": "0.3 % or more"}


def _days(since: date, until: date) -> list[str]:
    count = (until - since).days
    return [(since + timedelta(days=n)).isoformat() for n in range(count + 1)]


def _charts(report: dict, since: date, until: date) -> dict[str, Markup]:
    """The dashboard's SVG charts (escaped inside charts.py, so safe to insert as markup)."""
    days = _days(since, until)
    position = {day: n for n, day in enumerate(days)}
    per_channel: dict[str, list[int]] = {}
    for row in report["daily"]:
        counts = per_channel.setdefault(row["channel"], [0] * len(days))
        if row["day"] in position:
            counts[position[row["day"]]] += row["opt_outs"]
    rated = [c for c in report["campaigns"] if c["opt_out_rate"] is not None]
    return {
        name: Markup(svg)  # noqa: S704 (charts.py escapes every piece of data)
        for name, svg in {
            "daily": daily_bars(days, per_channel, title="Opt-outs per day and channel"),
            "campaigns": horizontal_bars(
                [(f"{c['campaign']} · {c['channel']}", c["opt_out_rate"]) for c in rated],
                title="Opt-out rate per campaign, worst first", value_format="{:.1%}",
            ),
            "kinds": horizontal_bars([(KIND_LABELS.get(k["kind"], k["kind"]), k["opt_outs"]) for k in report["kinds"]],
                                     title="Opt-outs by how they came"),
            "reasons": horizontal_bars(
                [(c["label"], c["count"]) for c in report["reasons"]["categories"]], title="Why people left"
            ),
        }.items()
    }


@bp.get("/dashboard")
def dashboard():
    svc = services()
    days = request.args.get("days", type=int) or 30
    if days not in PERIODS:
        days = 30
    channel = request.args.get("channel") or None
    if channel is not None and svc.config.channel(channel) is None:
        channel = None
    until = utcnow()
    since = until - timedelta(days=days)
    report = stats_report(since, until, channel)
    return render_template(
        "admin/dashboard.html", report=report, charts=_charts(report, since.date(), until.date()), days=days,
        labels=LABELS, complaint_words=COMPLAINT_WORDS, backlog=svc.store.outbox_backlog(),
        periods=PERIODS, channel=channel, channels=sorted(svc.config.channels), scope_short=SCOPE_SHORT,
    )


@bp.get("/review")
def review():
    status = request.args.get("status", "open")
    if status not in ("open", "confirmed", "dismissed"):
        status = "open"
    page = page_arg()
    items, total = services().store.review_items(status, REVIEW_PAGE, (page - 1) * REVIEW_PAGE)
    return render_template("admin/review.html", items=items, total=total, status=status, page=page,
                           pages=max(1, -(-total // REVIEW_PAGE)))


@bp.post("/review/<int:item_id>")
def decide_review(item_id: int):
    svc = services()
    decision = request.form.get("decision", "")
    if decision not in ("confirm", "dismiss"):
        abort(400, description="decision must be confirm or dismiss")
    try:
        item = consent.decide_review(svc.store, item_id, decision, "admin page")
    except consent.NotOpen as error:
        flash(str(error), "error")
    else:
        if item.status == "confirmed":
            flash(f"{item.address} is now unsubscribed on {item.channel}.")
        else:
            flash(f"Dismissed: {item.address} stays as they were on {item.channel}.")
    return redirect(url_for("admin.review"))


@bp.get("/contacts/export")
def contact_export():
    fmt = request.args.get("format", "json")
    try:
        record = consent.contact_record(services().store, request.args.get("address", ""),
                                        services().settings.default_region)
    except consent.InvalidAddress as error:
        flash(str(error), "error")
        return redirect(url_for("admin.contacts"))
    if fmt == "csv":
        body, mimetype, ext = consent.contact_csv(record), "text/csv", "csv"
    else:
        body, mimetype, ext = json.dumps(record, indent=2, ensure_ascii=False), "application/json", "json"
    response = Response(body, mimetype=mimetype)
    response.headers["Content-Disposition"] = f"attachment; filename=consent-history.{ext}"
    return response


@bp.post("/contacts/erase")
def contact_erase():
    svc = services()
    address, confirm = request.form.get("address", ""), request.form.get("confirm", "").strip()
    try:
        normal = consent.contact_address(address, svc.settings.default_region)
    except consent.InvalidAddress as error:
        flash(str(error), "error")
        return redirect(url_for("admin.contacts"))
    if confirm != normal:
        flash(f"Nothing erased: type the address exactly as shown ({normal}) to confirm.", "error")
        return redirect(url_for("admin.contacts", q=normal))
    try:
        erasure = consent.erase_contact(svc.store, normal, svc.address_hash)
    except ErasureKeyMismatch:
        flash("Nothing erased: this database's erasures were made with another ERASURE_KEY (or SECRET_KEY).", "error")
        return redirect(url_for("admin.contacts", q=normal))
    kept = ", ".join(erasure.suppressed_channels) or "no channel"
    flash(f"Erased {normal}: {sum(erasure.deleted.values())} records deleted; still suppressed on {kept}.")
    session.modified = True
    return redirect(url_for("admin.contacts"))
