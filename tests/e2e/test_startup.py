"""Starting the service as the Procfile does: a missing setting or an unreachable database is one
line naming the setting, not a usage error or a page of retries (#11 item 20)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import AUTH_TOKEN, SECRET_KEY

ROOT = Path(__file__).parents[2]
WEB = (ROOT / "Procfile").read_text(encoding="utf-8").strip().removeprefix("web: ")


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PORT", "WEB_CONCURRENCY", "DATABASE_URL", "KEYWORDS_FILE", "PUBLIC_BASE_URL")}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # the venv's gunicorn
    env.update(TWILIO_AUTH_TOKEN=AUTH_TOKEN, SECRET_KEY=SECRET_KEY, **extra)
    return env


@pytest.mark.parametrize("shell", [name for name in ("sh", "bash") if shutil.which(name)])
def test_the_procfile_without_port_says_so_in_one_line(tmp_path, shell):
    done = subprocess.run([shell, "-c", WEB], cwd=tmp_path, env=environment(), capture_output=True, text=True, timeout=30)
    assert done.returncode != 0
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "PORT: not set" in lines[0], done.stderr
    assert not (tmp_path / "unsub.db").exists()  # nothing started


def test_the_procfile_binds_port_and_keeps_its_flags(tmp_path):
    shown = subprocess.run(["sh", "-c", "echo " + WEB], env=environment(PORT="5123"), capture_output=True, text=True, timeout=30)
    assert shown.stdout.startswith("gunicorn --preload --bind 0.0.0.0:5123 --workers 2 --timeout 20 --graceful-timeout 20 "
                                   "--access-logfile - --logger-class webhook.access_log.MaskingLogger webhook:create_app()")
