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
# The Procfile's web: line, as a platform runs it through a shell.
WEB = next(line for line in (ROOT / "Procfile").read_text(encoding="utf-8").splitlines()
           if line.startswith("web: ")).removeprefix("web: ")


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
                                   "--access-logfile - --logger-class webhook.access_log.MaskingLogger --config python:webhook.gunicorn_conf "
                                   "webhook:create_app()")


DEAD_POSTGRES = "postgresql://postgres@127.0.0.1:1/x"  # nothing listens on port 1: refused at once
ONE_LINE = "DATABASE_URL cannot be used: PostgreSQL at 127.0.0.1:1/x: connection failed: "


def test_create_app_with_postgresql_down_is_one_line(tmp_path):
    done = subprocess.run([sys.executable, "-c", "from webhook import create_app; create_app()"], cwd=tmp_path,
                          env=environment(DATABASE_URL=DEAD_POSTGRES), capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1, done.stderr  # no pool retry warnings before it
    assert done.stderr.startswith("unsub: configuration error: " + ONE_LINE)


def test_the_procfile_with_postgresql_down_is_one_line(tmp_path):
    from tests.e2e.servers import free_port

    done = subprocess.run(["sh", "-c", WEB], cwd=tmp_path, env=environment(PORT=str(free_port()), DATABASE_URL=DEAD_POSTGRES),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.splitlines() == [line for line in done.stderr.splitlines() if ONE_LINE in line], done.stderr
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.parametrize("args,name", [
    (["migrate"], "DATABASE_URL"), (["stats"], "DATABASE_URL"), (["keywords", "export"], "DATABASE_URL"),
    (["suppressions", "import", "--channel", "sms", "-"], "DATABASE_URL"),
    (["copy-db", DEAD_POSTGRES, "sqlite:///copy.db"], "SOURCE"),
])
def test_a_command_with_postgresql_down_is_one_line(tmp_path, args, name):
    unsub = shutil.which("unsub", path=str(Path(sys.executable).parent))
    assert unsub
    done = subprocess.run([unsub, *args], cwd=tmp_path, env=environment(DATABASE_URL=DEAD_POSTGRES), input="",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert done.stderr.startswith(f"unsub: error: {name} cannot be used: PostgreSQL at 127.0.0.1:1/x: connection failed: ")
