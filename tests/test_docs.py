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


def test_procfile_serves_the_app_factory_with_gunicorn_on_port_and_runs_the_worker():
    lines = (ROOT / "Procfile").read_text(encoding="utf-8").strip().splitlines()
    web = next(line for line in lines if line.startswith("web: "))
    assert web.startswith("web: gunicorn ")
    assert "$PORT" in web and "'webhook:create_app()'" in web
    assert "worker: unsub worker" in lines  # contract.md, "Processes"


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


def test_the_replies_keywords_md_gives_for_each_scope_fit_it():
    """docs/keywords.md's wording for `automated` and `all`, put into the shipped SMS channel:
    accepted, and no reply left that says "marketing" (issue 15)."""
    import copy
    import io
    import re

    from ruamel.yaml import YAML

    from webhook.keywords import load_file, parse_document, scope_warnings

    text = (ROOT / "docs" / "keywords.md").read_text(encoding="utf-8")
    blocks = re.findall(r"^- `(automated|all)`:\n\n```yaml\n(.*?)```", text, re.M | re.S)
    assert [scope for scope, _ in blocks] == ["automated", "all"]
    shipped = load_file(PACKAGED_KEYWORDS).document
    for scope, block in blocks:
        given = YAML(typ="safe", pure=True).load(io.StringIO(block))
        document = copy.deepcopy(shipped)
        sms = document["channels"]["sms"]
        sms["revocation_scope"] = given.pop("revocation_scope")
        for intent, section in given.items():
            sms[intent]["reply"].update(section["reply"])
        config = parse_document(document)
        assert config.channels["sms"].revocation_scope == scope
        assert scope_warnings(config, "sms") == [], scope
