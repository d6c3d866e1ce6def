"""gunicorn configuration of the Procfile's web process (``--config python:webhook.gunicorn_conf``).

With METRICS_TOKEN set, the workers' metrics add up in one directory (prometheus_client's
multiprocess mode): PROMETHEUS_MULTIPROC_DIR if set, else a new temporary directory. It is
prepared here, when gunicorn reads this module, before the app is loaded and before the
client is imported; files left by an earlier run are removed so the figures start from zero
with the service (Prometheus handles counter resets). A worker that exits (restarted,
killed) keeps its counts; ``child_exit`` drops only its live gauges' files.

The Procfile's command-line flags stay the settings; this module only adds hooks.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

from webhook.metrics import MULTIPROC_ENV

_created: str | None = None
# The files prometheus_client's multiprocess mode writes: counter_<pid>.db, gauge_<mode>_<pid>.db,
# histogram_<pid>.db, summary_<pid>.db.
CLIENT_FILE = re.compile(r"(?:counter|histogram|summary)_\d+\.db|gauge_[a-z]+_\d+\.db")


def prepare_multiproc_dir(environ: Any = os.environ) -> str | None:
    """Create or empty the metrics directory and export it; None when metrics are off."""
    global _created
    if not environ.get("METRICS_TOKEN"):
        return None
    path = environ.get(MULTIPROC_ENV)
    if path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.iterdir():
            # Only prometheus_client's own files: the folder may be shared (a single /data
            # volume holding unsub.db too), and nothing else in it is ours to delete.
            if CLIENT_FILE.fullmatch(stale.name) and stale.is_file():
                stale.unlink()
    else:
        path = _created = tempfile.mkdtemp(prefix="unsub-metrics-")
    environ[MULTIPROC_ENV] = path
    return path


prepare_multiproc_dir()


def child_exit(server: Any, worker: Any) -> None:
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    if _created:
        shutil.rmtree(_created, ignore_errors=True)
