"""What an opt-out gates: the one place that decides it (pure: no I/O).

A business sends three categories of message: ``campaign`` (marketing), ``flow``
(automated journeys: reminders, notifications) and ``inbox`` (an agent's one-to-one
replies). Each channel's ``revocation_scope`` in the keyword configuration says which of
them an unsubscribed contact must not get on that channel:

- ``campaign`` (the default): campaign messages only;
- ``automated``: campaign and flow messages, every automated text (the FCC's revoke-all
  rule, 47 CFR 64.1200(a)(10)); an agent's one-to-one replies may still go out;
- ``all``: every category.

Every gate (the audience API, ``unsub audience filter``, a contact's ``gated_categories``)
asks ``is_gated``; none compares a category with ``"campaign"`` itself.
"""

from __future__ import annotations

CATEGORIES = ("campaign", "inbox", "flow")
REVOCATION_SCOPES = ("campaign", "automated", "all")
DEFAULT_SCOPE = "campaign"

_GATED: dict[str, frozenset[str]] = {
    "campaign": frozenset({"campaign"}),
    "automated": frozenset({"campaign", "flow"}),
    "all": frozenset(CATEGORIES),
}

# In an admin's words: what an opt-out stops under each scope.
SCOPE_WORDS = {
    "campaign": "campaign (marketing) messages only; flow and inbox messages still go out",
    "automated": "campaign and flow messages (every automated message); an agent's inbox replies still go out",
    "all": "every message: campaign, flow and inbox",
}
SCOPE_SHORT = {"campaign": "campaigns", "automated": "campaigns and flows", "all": "everything"}


def is_gated(scope: str, category: str) -> bool:
    """True when an unsubscribed contact must not get a message of ``category`` on a channel
    whose revocation scope is ``scope``. An unknown scope or category is an error, never
    "not gated": a missed opt-out breaks the law."""
    if scope not in _GATED:
        raise ValueError(f"unknown revocation scope {scope!r}; use one of {', '.join(REVOCATION_SCOPES)}")
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; use one of {', '.join(CATEGORIES)}")
    return category in _GATED[scope]


def gated_categories(scope: str) -> list[str]:
    """The categories an opt-out gates under ``scope``, in the order of CATEGORIES."""
    return [category for category in CATEGORIES if is_gated(scope, category)]
