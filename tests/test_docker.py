"""The Docker packaging agrees with itself, the config and the README.

There is no Docker daemon here, so nothing is built or run: the Dockerfile,
docker-compose.yml, config/watcher.toml and README.md are parsed, and every
expected value is taken from one of them and compared with the others.
"""

from __future__ import annotations

import fnmatch
import json
import posixpath
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from watcher.cli import build_parser
from watcher.config import _ENV_REFERENCE

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "docker-compose.yml"
CONFIG = ROOT / "config" / "watcher.toml"
README = ROOT / "README.md"
PYPROJECT = ROOT / "pyproject.toml"

# The command the image and compose are meant to run (the contract).
COMMAND = ["watcher", "run", "--config", "/app/config/watcher.toml"]


# --- Dockerfile ---------------------------------------------------------------------------


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with comments dropped and continuations joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if pending and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line = pending + line
        pending = ""
        keyword, _, args = line.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def exec_form(instruction: str, args: str) -> list[str]:
    """An ENTRYPOINT/CMD in exec (JSON array) form; shell form would break `CMD` arguments."""
    assert args.startswith("["), f"{instruction} must use the exec form: {args}"
    value = json.loads(args)
    assert isinstance(value, list), f"{instruction} is not a JSON array: {args}"
    assert all(isinstance(word, str) for word in value), f"{instruction}: {args}"
    return value


def env_pairs(args: str) -> dict[str, str]:
    words = shlex.split(args)
    if words and "=" not in words[0]:  # legacy `ENV KEY value with spaces`
        return {words[0]: " ".join(words[1:])}
    return dict(word.split("=", 1) for word in words)


class Dockerfile:
    def __init__(self, text: str) -> None:
        self.instructions = dockerfile_instructions(text)
        self.workdir = "/"
        self.entrypoint: list[str] = []
        self.cmd: list[str] = []
        self.env: dict[str, str] = {}
        self.volumes: list[str] = []
        self.user: str | None = None
        self.copy_sources: list[str] = []
        self.bases: list[str] = []
        for keyword, args in self.instructions:
            if keyword == "FROM":
                self.bases.append(args.split()[0])
            elif keyword == "WORKDIR":
                self.workdir = posixpath.normpath(posixpath.join(self.workdir, args))
            elif keyword == "ENTRYPOINT":
                self.entrypoint = exec_form(keyword, args)
                self.cmd = []  # Docker resets an inherited CMD when ENTRYPOINT is set
            elif keyword == "CMD":
                self.cmd = exec_form(keyword, args)
            elif keyword == "ENV":
                self.env.update(env_pairs(args))
            elif keyword == "VOLUME":
                paths = json.loads(args) if args.startswith("[") else args.split()
                self.volumes.extend(posixpath.normpath(p) for p in paths)
            elif keyword == "USER":
                self.user = args.split(":")[0]
            elif keyword == "COPY":
                words = [w for w in args.split() if not w.startswith("--")]
                self.copy_sources.extend(words[:-1])

    @property
    def command(self) -> list[str]:
        return self.entrypoint + self.cmd


# --- docker-compose.yml -------------------------------------------------------------------


def words(value: Any) -> list[str]:
    """A compose command/entrypoint, given as a list or as a string."""
    if isinstance(value, str):
        return shlex.split(value)
    assert isinstance(value, list), value
    return [str(word) for word in value]


def mounts(service: dict[str, Any]) -> list[dict[str, Any]]:
    """The service's volumes, short or long syntax, as {type, source, target, read_only}."""
    found = []
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            parts = entry.split(":")
            if len(parts) == 1:
                source, target, mode = None, parts[0], ""
            else:
                source, target = parts[0], parts[1]
                mode = parts[2] if len(parts) > 2 else ""
            kind = "volume" if source is None or not source.startswith((".", "/", "~")) else "bind"
            found.append(
                {
                    "type": kind,
                    "source": source,
                    "target": target,
                    "read_only": "ro" in mode.split(","),
                }
            )
        else:
            found.append(
                {
                    "type": entry.get("type", "volume"),
                    "source": entry.get("source"),
                    "target": entry["target"],
                    "read_only": bool(entry.get("read_only", False)),
                }
            )
    for mount in found:
        mount["target"] = posixpath.normpath(mount["target"])
    return found


def container_ports(service: dict[str, Any]) -> set[int]:
    """The container side of each published port ("[ip:]host:container[/proto]" or long form)."""
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            ports.add(int(entry["target"]))
        else:
            ports.add(int(str(entry).split("/")[0].rsplit(":", 1)[-1]))
    return ports


def published_ports(service: dict[str, Any]) -> set[int]:
    ports = set()
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            if "published" in entry:
                ports.add(int(entry["published"]))
        else:
            parts = str(entry).split("/")[0].split(":")
            if len(parts) >= 2:
                ports.add(int(parts[-2]))
    return ports


def environment(service: dict[str, Any]) -> dict[str, str | None]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return {k: (v if sep else None) for k, sep, v in (e.partition("=") for e in env)}
    return {k: (None if v is None else str(v)) for k, v in env.items()}


def effective_command(image: Dockerfile, service: dict[str, Any]) -> list[str]:
    """What the container runs: compose's entrypoint/command override the image's."""
    if "entrypoint" in service:
        # A compose entrypoint drops the image's CMD too.
        return words(service["entrypoint"]) + words(service.get("command", []))
    cmd = words(service["command"]) if "command" in service else image.cmd
    return image.entrypoint + cmd


# --- fixtures -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def image() -> Dockerfile:
    return Dockerfile(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), "no services"
    return data


@pytest.fixture(scope="module")
def service(compose: dict[str, Any]) -> dict[str, Any]:
    assert "watcher" in compose["services"], "docker-compose.yml has no `watcher` service"
    return compose["services"]["watcher"]


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    return tomllib.loads(CONFIG.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    return tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))


def config_argument(command: list[str]) -> str:
    """The --config of a `watcher run` command, read by the real CLI parser."""
    args = build_parser().parse_args(command[1:])
    assert args.command == "run", f"the container does not run the daemon: {command}"
    assert args.config, f"no --config in {command}"
    return args.config


# --- tests --------------------------------------------------------------------------------


def test_dockerfile_base_and_workdir(image: Dockerfile) -> None:
    assert image.bases[-1] == "python:3.11-slim"
    assert image.workdir == "/app"


def test_dockerfile_command(image: Dockerfile, pyproject: dict[str, Any]) -> None:
    assert image.command == COMMAND
    # The entrypoint is the console script the package installs, and the CMD is one the
    # CLI accepts.
    assert image.entrypoint[0] in pyproject["project"]["scripts"]
    assert config_argument(image.command) == COMMAND[-1]


def test_dockerfile_env_names_the_same_config(image: Dockerfile) -> None:
    assert image.env.get("WATCHER_CONFIG") == config_argument(image.command)


def test_dockerfile_runs_as_non_root(image: Dockerfile) -> None:
    assert image.user not in (None, "", "root", "0"), f"USER is {image.user!r}"


def test_dockerfile_copies_what_pip_install_needs(
    image: Dockerfile, pyproject: dict[str, Any]
) -> None:
    copied = {source.rstrip("/") for source in image.copy_sources}
    needed = {"pyproject.toml", pyproject["project"]["readme"], "watcher", "config"}
    assert needed <= copied, f"not copied: {sorted(needed - copied)}"
    assert any(
        "pip install" in args and " ." in args for kw, args in image.instructions if kw == "RUN"
    )


def test_dockerignore_excludes_local_files_but_not_the_build_inputs(image: Dockerfile) -> None:
    patterns = [
        line.strip().strip("/")
        for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.lstrip().startswith("#")
    ]

    def ignored(name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)

    for name in (".venv", ".git", "data", "tests", "__pycache__", ".pytest_cache"):
        assert ignored(name), f".dockerignore does not exclude {name}"
    for source in image.copy_sources:
        assert not ignored(source.rstrip("/")), f".dockerignore excludes COPY source {source}"


def test_compose_runs_the_image_command(image: Dockerfile, service: dict[str, Any]) -> None:
    assert service.get("build") in (".", {"context": "."}), service.get("build")
    assert effective_command(image, service) == image.command


def test_compose_mounts_the_config_the_command_reads(
    image: Dockerfile, service: dict[str, Any]
) -> None:
    config_in_container = config_argument(effective_command(image, service))
    by_target = {mount["target"]: mount for mount in mounts(service)}
    assert config_in_container in by_target, f"{config_in_container} is not mounted"
    mount = by_target[config_in_container]
    assert mount["type"] == "bind" and mount["read_only"], mount
    source = (COMPOSE.parent / mount["source"]).resolve()
    # The mounted file is the one the image path names, relative to its WORKDIR.
    in_repo = posixpath.relpath(config_in_container, image.workdir)
    assert source == (ROOT / in_repo).resolve()
    assert source == CONFIG.resolve()


def test_compose_volume_holds_the_state_file(
    image: Dockerfile, compose: dict[str, Any], service: dict[str, Any], config: dict[str, Any]
) -> None:
    state = config["watcher"]["state"]
    state_dir = posixpath.normpath(posixpath.join(image.workdir, posixpath.dirname(state)))
    assert state_dir != image.workdir, f"state {state!r} is not in a directory of its own"
    by_target = {mount["target"]: mount for mount in mounts(service)}
    assert state_dir in by_target, f"nothing mounted at {state_dir} (state is {state!r})"
    mount = by_target[state_dir]
    assert mount["type"] == "volume" and not mount["read_only"], mount
    assert mount["source"] in (compose.get("volumes") or {}), f"{mount['source']} undeclared"
    assert state_dir in image.volumes, f"Dockerfile VOLUME {image.volumes} != {state_dir}"


def test_compose_passes_the_config_secrets_through(
    service: dict[str, Any], config: dict[str, Any]
) -> None:
    def references(value: Any) -> set[str]:
        if isinstance(value, str):
            return set(_ENV_REFERENCE.findall(value))
        if isinstance(value, dict):
            return set().union(*map(references, value.values()))
        if isinstance(value, list):
            return set().union(*map(references, value))
        return set()

    env = environment(service)
    for name in references(config) | {"SLACK_WEBHOOK_URL", "WEBHOOK_URL"}:
        value = env.get(name) or ""
        assert value.startswith((f"${{{name}:-}}", f"${{{name}:?")), (
            f"compose environment {name}: {value}"
        )
    assert service.get("restart") == "unless-stopped"


def test_compose_has_mailpit_for_email(compose: dict[str, Any]) -> None:
    mailpit = compose["services"].get("mailpit")
    assert mailpit, "no mailpit service"
    assert mailpit["image"].split(":")[0] == "axllent/mailpit"
    assert {1025, 8025} <= container_ports(mailpit)
    assert {1025, 8025} <= published_ports(mailpit)


def test_readme_documents_compose_and_the_same_config(
    image: Dockerfile, service: dict[str, Any]
) -> None:
    readme = README.read_text(encoding="utf-8")
    assert re.search(r"docker compose up\b", readme), "README does not say `docker compose up`"
    in_repo = posixpath.relpath(config_argument(effective_command(image, service)), image.workdir)
    assert in_repo == "config/watcher.toml"
    assert in_repo in readme, f"README does not mention {in_repo}"


def test_the_http_side_is_one_port_everywhere(
    image: Dockerfile, service: dict[str, Any], config: dict[str, Any]
) -> None:
    """The template's listen, the image's EXPOSE, HEALTHCHECK and WATCHER_LISTEN, compose's
    published port (on the host's loopback only) and the README name one port."""
    from watcher.schema import listen_address

    host, port = listen_address(config["watcher"]["listen"], "listen")
    assert host == "127.0.0.1", "the template binds to loopback"
    exposed = [args for keyword, args in image.instructions if keyword == "EXPOSE"]
    assert exposed == [str(port)]
    [check] = [args for keyword, args in image.instructions if keyword == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{port}/healthz" in check
    inside = listen_address(image.env["WATCHER_LISTEN"], "WATCHER_LISTEN")
    assert inside == ("0.0.0.0", port), "reachable through the published port"
    assert listen_address(environment(service)["WATCHER_LISTEN"], "compose") == inside
    assert service["ports"] == [f"127.0.0.1:{port}:{port}"], "published on loopback only"
    assert container_ports(service) == published_ports(service) == {port}
    readme = README.read_text(encoding="utf-8")
    assert f"http://127.0.0.1:{port}" in readme and f'listen = "127.0.0.1:{port}"' in readme
