"""Documentation that cannot drift: settings, commands and the shipped keywords file."""

from __future__ import annotations

from pathlib import Path

from webhook.cli import main
from webhook.settings import PACKAGED_KEYWORDS, SETTINGS

ROOT = Path(__file__).parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme_table():
    for spec in SETTINGS:
        assert f"| `{spec.name}` | {spec.help} | {spec.default} |" in README, spec.name


def test_every_cli_command_is_in_the_readme():
    for name in main.commands:
        assert f"`unsub {name}" in README, name


def test_readme_has_the_two_commands_and_ci_runs_the_test_one():
    run = "python3 -m venv .venv && .venv/bin/pip install . && .venv/bin/unsub serve"
    test = "python3 -m venv .venv && .venv/bin/pip install '.[test]' && .venv/bin/pytest"
    assert run in README and test in README
    assert test in (ROOT / ".ci" / "run").read_text(encoding="utf-8")


def test_root_keywords_file_is_the_packaged_one():
    assert (ROOT / "keywords.yaml").read_bytes() == PACKAGED_KEYWORDS.read_bytes()


def test_procfile_serves_the_app_factory_with_gunicorn_on_port():
    line = (ROOT / "Procfile").read_text(encoding="utf-8").strip()
    assert line.startswith("web: gunicorn ")
    assert "$PORT" in line and "'webhook:create_app()'" in line


def test_readme_calls_the_cli_one_way():
    """`unsub`, after `. .venv/bin/activate`; `.venv/bin/unsub` only in the quick start's one command."""
    assert ". .venv/bin/activate" in README
    assert README.count(".venv/bin/unsub") == 1
    assert "&& .venv/bin/unsub serve" in README


def test_readme_loads_the_local_secrets_before_curl_uses_them():
    loads = README.index("set -a; . instance/secrets.env; set +a")
    for at, line in enumerate(README.splitlines()):
        if line.startswith("curl") and "$" in line:
            assert sum(len(part) + 1 for part in README.splitlines()[:at]) > loads, line
