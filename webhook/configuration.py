"""The running keyword configuration: numbered versions in the database, picked up by
every process within RELOAD_SECONDS, and the file read at start-up recorded as a version.

No Flask here: the edges call ``KeywordConfigs.current()``, ``save``, ``rollback``.
"""

from __future__ import annotations

import difflib
import json
import logging
import os
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable

from webhook.domain import KeywordVersion, NewKeywordVersion
from webhook.keywords import ConfigProblem, KeywordConfig, KeywordConfigError, config_version, parse_document, parse_yaml, to_yaml
from webhook.store import Store, StoreUnavailable

RELOAD_SECONDS = 1.0
log = logging.getLogger("unsub.configuration")


def _diff(old: str, new: str, old_name: str, new_name: str) -> str:
    return "".join(difflib.unified_diff(old.splitlines(True), new.splitlines(True), old_name, new_name))


def dropped_channel_problems(store: Store, previous: KeywordVersion | None, config: KeywordConfig) -> list[ConfigProblem]:
    """A channel of the running version that ``config`` no longer has, while the store holds
    statuses for it: refused, because its contacts' opt-outs would stop being enforced (an
    audience check for an unknown channel has nothing to gate with) and seen nowhere."""
    if previous is None:
        return []
    try:
        before = json.loads(previous.document).get("channels", {})
    except (ValueError, AttributeError):
        return []
    problems = []
    for name in sorted(set(before) - set(config.channels)):
        count = store.status_count(name)
        if count:
            problems.append(ConfigProblem(
                f"channels.{name}",
                f"channel {name!r} cannot be removed: it holds the subscription status of {count} contact(s), "
                "whose opt-outs would no longer be enforced; keep the channel (unbind its senders instead)",
            ))
    return problems


def _last_file_hash(store: Store) -> str | None:
    """The content hash of the last version read from the keywords file (as the store's
    ``only_if_file_changed`` compares it)."""
    offset = 0
    while True:
        page = store.keyword_versions(50, offset)
        for version in page:
            if version.source == "file":
                return version.content_hash
        if len(page) < 50:
            return None
        offset += 50


def config_of(version: KeywordVersion) -> KeywordConfig:
    return parse_document(json.loads(version.document), f"keyword version {version.number}", str(version.number))


class KeywordConfigs:
    """The current configuration of this process, refreshed from the store when it changes."""

    def __init__(self, store: Store, version: KeywordVersion, config: KeywordConfig | None = None) -> None:
        """``config``: the version already parsed, when the caller has it (saves a parse)."""
        self.store = store
        self._state = (version, config or config_of(version))  # swapped as one value
        self._lock = threading.Lock()
        self._poller_pid: int | None = None
        # Rules that need the service's settings (forward URLs: https only, no loop), checked
        # on every save besides the document's own validation; create_app sets it.
        self.policy: Callable[[KeywordConfig], list[ConfigProblem]] | None = None

    @classmethod
    def start(cls, store: Store, path: Path, config: KeywordConfig) -> "KeywordConfigs":
        """Record the keywords file (``config``: it, validated by the caller) as a version when
        it changed since it was last recorded; run the latest version."""
        text = path.read_text(encoding="utf-8")
        previous = store.latest_keyword_version()
        if previous is not None and _last_file_hash(store) != config_version(config.document):
            # The file changed since it was last recorded, so it is about to replace the running version.
            problems = dropped_channel_problems(store, previous, config)
            if problems:
                raise KeywordConfigError(problems, str(path))
        version = store.add_keyword_version(
            NewKeywordVersion(
                content_hash=config_version(config.document),
                document=json.dumps(config.document, ensure_ascii=False),
                yaml=text,
                source="file",
                author="deploy",
                note=f"read from {path.name} at start-up",
                diff=_diff(previous.yaml, text, f"version {previous.number}", path.name) if previous else None,
            ),
            only_if_file_changed=True,
        )
        if version.content_hash == config_version(config.document):
            # The running version is the file just parsed: use it under its number.
            config.version = str(version.number)
            return cls(store, version, config)
        return cls(store, version)

    @property
    def version(self) -> KeywordVersion:
        return self._state[0]

    @property
    def loaded(self) -> KeywordConfig:
        """The configuration this object holds now, without starting the poller (start-up code)."""
        return self._state[1]

    def current(self) -> KeywordConfig:
        """The running configuration. A background thread of this process looks for a newer
        version every RELOAD_SECONDS, so a request never waits on that (nor on a database
        that is down)."""
        if self._poller_pid != os.getpid():
            self._start_poller()
        return self._state[1]

    def _start_poller(self) -> None:
        with self._lock:
            if self._poller_pid == os.getpid():
                return
            self._poller_pid = os.getpid()  # a forked worker starts its own
            threading.Thread(target=_poll, args=(weakref.ref(self),), name="unsub-keywords", daemon=True).start()

    def refresh(self) -> None:
        """Switch to the newest stored version if there is a newer one."""
        try:
            latest = self.store.latest_keyword_version_number()
            if latest == self.version.number:
                return
            version = self.store.keyword_version(latest)
        except StoreUnavailable as error:
            log.warning("keeping keyword version %s: %s", self.version.number, error)
            return
        if version is not None:
            self._use(version)

    def _use(self, version: KeywordVersion) -> None:
        if version.number != self.version.number:
            self._state = (version, config_of(version))

    def save(self, document: Any, *, yaml_text: str | None = None, source: str, author: str | None, note: str | None = None) -> tuple[KeywordVersion, bool]:
        """Validate and save a new version (a document, or YAML text). Returns it and whether
        it is new (an unchanged document keeps the current version).

        Raises KeywordConfigError listing every problem; the running version stays.
        """
        if yaml_text is not None:
            config = parse_yaml(yaml_text, "keyword configuration")
            text = yaml_text
        else:
            config = parse_document(document)
            text = to_yaml(config.document, self.version.yaml)
        problems = self.policy(config) if self.policy is not None else []
        latest = self.store.latest_keyword_version() or self.version
        problems += dropped_channel_problems(self.store, latest, config)
        if problems:
            raise KeywordConfigError(problems)
        content_hash = config_version(config.document)
        if content_hash == latest.content_hash:
            self._use(latest)
            return latest, False
        version = self.store.add_keyword_version(
            NewKeywordVersion(
                content_hash=content_hash,
                document=json.dumps(config.document, ensure_ascii=False),
                yaml=text,
                source=source,
                author=author,
                note=note,
                diff=_diff(latest.yaml, text, f"version {latest.number}", "new"),
            )
        )
        self._use(version)
        return version, True

    def rollback(self, number: int, *, author: str | None, source: str = "rollback") -> KeywordVersion | None:
        """A new version with the content of an earlier one; None when it does not exist."""
        target = self.store.keyword_version(number)
        if target is None:
            return None
        version, _ = self.save(None, yaml_text=target.yaml, source=source, author=author, note=f"rollback to version {number}")
        return version


def _poll(configs: "weakref.ref[KeywordConfigs]") -> None:
    """Refresh every RELOAD_SECONDS; ends when its KeywordConfigs is gone (an app closed in tests)."""
    while True:
        time.sleep(RELOAD_SECONDS)
        target = configs()
        if target is None:
            return
        try:
            target.refresh()
        except Exception:  # noqa: BLE001 - the poller must survive anything; the next round retries
            log.exception("keyword configuration refresh failed")
        del target
