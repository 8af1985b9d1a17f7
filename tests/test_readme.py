"""The README's promises: its two opening commands, its config and its error text."""

from __future__ import annotations

import re

from tests.conftest import REPO, watcher_command, write_config

README = (REPO / "README.md").read_text(encoding="utf-8")
SECRETS = {
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T/B/x",
    "OPS_WEBHOOK_SECRET": "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
}


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_readme_opens_with_exactly_two_commands():
    before_first_section = README.split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", before_first_section, flags=re.S)
    assert len(blocks) == 2 and all(block.count("\n") == 1 for block in blocks)
    run, test = (block.strip() for block in blocks)
    assert run.endswith("watcher run --config config/example.toml")
    assert (REPO / "config" / "example.toml").is_file()
    assert "'.[test]'" in test and "pytest" in test


def test_ci_runs_the_readme_test_command():
    test_command = code_blocks("sh")[1].strip()
    ci_lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert test_command in ci_lines


def test_readme_config_is_valid(tmp_path):
    config = code_blocks("toml")[0]
    write_config(tmp_path, config)
    result = watcher_command(
        "check-config",
        "--config",
        "watcher.toml",
        cwd=tmp_path,
        env=SECRETS,
    )
    assert result.returncode == 0, result.stderr
    for name in ("talks", "team-slack", "ops", "mail", "screen"):
        assert f"    {name}: " in result.stdout


def test_readme_error_example_is_what_the_watcher_says(tmp_path):
    example = re.search(r"```\n(watcher: error: .*?)\n```", README).group(1)
    config = code_blocks("toml")[0].replace('interval = "10m"', 'interval = "10x"')
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "watcher.toml").write_text(config, encoding="utf-8")
    result = watcher_command(
        "check-config",
        cwd=tmp_path,
        env=SECRETS,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == example


def test_every_command_is_documented_and_has_help(tmp_path):
    for command in ("run", "poll", "inspect", "check-config", "status", "redeliver", "test-notify"):
        assert f"`watcher {command}" in README
        result = watcher_command(command, "--help", cwd=tmp_path)
        assert result.returncode == 0 and "usage: watcher" in result.stdout
