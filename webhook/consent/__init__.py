"""Consent use cases: plain values in, plain values out, a ``Store`` port. No Flask here.

By topic: ``changes`` (the one place a change is recorded), ``inbound`` (messages and
mails), ``contacts`` (statuses, audiences, e-mail preferences), ``review``, ``campaigns``,
``imports`` and ``records`` (audit export and erasure). The edges import from here.
"""

from webhook.consent.campaigns import Send, SendsRecorded, check_campaign_id, record_sends
from webhook.consent.changes import NotRecorded, record_change, record_changes, safe_text
from webhook.consent.channels import InvalidAddress, UnknownChannel, contact_address, email_channel, named_channel, resolve
from webhook.consent.contacts import (
    CATEGORIES,
    AddressHash,
    Audience,
    ContactStatus,
    address_hasher,
    audience,
    audience_channel,
    erased,
    lookup,
    set_email_preference,
    set_status,
    suppressed_among,
)
from webhook.consent.imports import import_event, import_opt_outs
from webhook.consent.inbound import (
    Decision,
    DryRun,
    Outcome,
    StatusOutcome,
    decide,
    dry_run,
    handle_inbound,
    handle_inbound_mail,
    handle_preference,
    handle_status,
)
from webhook.consent.records import EXPORT_FIELDS, contact_csv, contact_record, erase_contact, event_record
from webhook.consent.review import NotOpen, decide_review

__all__ = [
    "CATEGORIES", "EXPORT_FIELDS", "AddressHash", "Audience", "ContactStatus", "Decision", "DryRun", "InvalidAddress",
    "NotOpen", "NotRecorded", "Outcome", "Send", "SendsRecorded", "StatusOutcome", "UnknownChannel", "address_hasher", "audience",
    "audience_channel", "check_campaign_id", "contact_address", "contact_csv",
    "contact_record", "decide", "decide_review", "dry_run", "email_channel", "erase_contact", "erased",
    "event_record", "handle_inbound", "handle_inbound_mail", "import_event", "import_opt_outs", "lookup",
    "named_channel", "handle_preference", "handle_status", "record_change", "record_changes", "record_sends", "resolve",
    "safe_text", "set_email_preference", "set_status", "suppressed_among",
]
