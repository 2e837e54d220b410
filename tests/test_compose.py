"""compose.yaml and the Dockerfiles, checked without a Docker engine.

No engine or compose plugin runs here, so this is what stands between a typo and a user's failed
`docker compose up`: the file must match the Compose Specification schema, everything it builds or
mounts from the repository must exist, and the images must be built from this repository's files
alone (no ``COPY --from`` another image, no ``ADD <url>``, nothing outside the build context).

And it is safe by default: with nothing set, every published port listens on 127.0.0.1 only; no
password is written in compose.yaml or a Dockerfile (compose refuses to start without them, and
``scripts/compose.sh`` generates them into an owner-only ``.env``); the sidecar reads the compiled
artifacts the adapter image was built with.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import stat
import subprocess
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from support.environment import REPO_ROOT

COMPOSE_FILE = REPO_ROOT / "compose.yaml"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_compose_matches_the_compose_specification(
    compose: dict[str, Any], compose_spec: Path
) -> None:
    schema = json.loads(compose_spec.read_text())
    validator = jsonschema.Draft7Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_the_schema_check_catches_a_broken_file(compose_spec: Path) -> None:
    """The validation above is only worth something if it rejects what compose would reject."""
    validator = jsonschema.Draft7Validator(json.loads(compose_spec.read_text()))
    broken = {"services": {"web": {"image": "x:1", "ports": "3000:3000", "restrat": "always"}}}
    messages = [e.message for e in validator.iter_errors(broken)]
    assert any("restrat" in m for m in messages)
    assert any("is not of type 'array'" in m for m in messages)


def test_services_reference_declared_services_and_volumes(compose: dict[str, Any]) -> None:
    services: dict[str, Any] = compose["services"]
    declared_volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        depends = service.get("depends_on") or []
        for other in depends if isinstance(depends, list) else depends.keys():
            assert other in services, f"{name}: depends_on unknown service {other!r}"
        for volume in service.get("volumes") or []:
            source = _volume_source(volume)
            if source and not _is_host_path(source):
                assert source in declared_volumes, f"{name}: volume {source!r} is not declared"


def test_public_images_are_pinned_and_built_images_have_a_dockerfile(
    compose: dict[str, Any],
) -> None:
    services: dict[str, Any] = compose["services"]
    built = {s["image"] for s in services.values() if "build" in s and "image" in s}
    for name, service in services.items():
        if "build" in service:
            build = service["build"]
            context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
            assert context.is_dir(), f"{name}: build context {context} does not exist"
            assert _inside_repo(context), f"{name}: build context {context} is outside the repo"
            dockerfile = context / (
                "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
            )
            assert dockerfile.is_file(), f"{name}: Dockerfile {dockerfile} does not exist"
            continue
        image = service["image"]
        if image in built:
            continue  # another service builds it from this repo
        repository, _, tag = image.rpartition(":")
        assert repository and tag and tag != "latest" and "/" not in tag, (
            f"{name}: public image {image!r} must be pinned to a version tag"
        )


def test_every_repo_file_the_compose_file_mounts_exists(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = _volume_source(volume)
            if source and _is_host_path(source):
                path = (REPO_ROOT / source).resolve()
                assert _inside_repo(path), f"{name}: mounts {source}, outside the repository"
                assert path.exists(), f"{name}: mounts {source}, which does not exist"
        env_files = service.get("env_file") or []
        for env_file in [env_files] if isinstance(env_files, str) else env_files:
            path = env_file if isinstance(env_file, str) else env_file["path"]
            assert (REPO_ROOT / path).is_file(), f"{name}: env_file {path} does not exist"
    for section in ("configs", "secrets"):
        for name, entry in (compose.get(section) or {}).items():
            if "file" in entry:
                assert (REPO_ROOT / entry["file"]).is_file(), f"{section}.{name}: missing file"


@dataclass(frozen=True)
class Copy:
    dockerfile: Path
    instruction: str
    flags: tuple[str, ...]
    sources: tuple[str, ...]


def _dockerfiles(compose: dict[str, Any]) -> dict[Path, Path]:
    """Each Dockerfile compose builds, with its build context."""
    found: dict[Path, Path] = {}
    for service in compose["services"].values():
        build = service.get("build")
        if build is None:
            continue
        context = REPO_ROOT / (build if isinstance(build, str) else build.get("context", "."))
        name = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        found[(context / name).resolve()] = context.resolve()
    return found


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    result = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    return result


def _copies(dockerfile: Path) -> list[Copy]:
    copies = []
    for keyword, args in _instructions(dockerfile):
        if keyword not in {"COPY", "ADD"}:
            continue
        words = json.loads(args) if args.startswith("[") else shlex.split(args)
        flags = tuple(w for w in words if w.startswith("--"))
        paths = [w for w in words if not w.startswith("--")]
        copies.append(Copy(dockerfile, keyword, flags, tuple(paths[:-1])))
    return copies


def test_dockerfiles_copy_only_this_repositorys_files(compose: dict[str, Any]) -> None:
    dockerfiles = _dockerfiles(compose)
    assert len(dockerfiles) >= 2, "compose builds the adapter and the sidecar images"
    ignore = _dockerignore_patterns(REPO_ROOT / ".dockerignore")
    for dockerfile, context in dockerfiles.items():
        assert _copies(dockerfile), f"{dockerfile.name} copies nothing from the repository"
        assert _copy_problems(dockerfile, context, ignore) == []


def test_the_copy_check_catches_foreign_files(tmp_path: Path) -> None:
    context = tmp_path / "repo"
    (context / "src").mkdir(parents=True)
    (context / "src" / "ok.py").write_text("")
    (context / ".floe").mkdir()
    (tmp_path / "secret.txt").write_text("")
    dockerfile = context / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim\n"
        "COPY src/ok.py /app/\n"
        "COPY --from=ghcr.io/example/tool:1 /tool /bin/tool\n"
        "COPY ../secret.txt /app/\n"
        "ADD https://example.com/x.tar.gz /app/\n"
        "COPY missing.txt \\\n    /app/\n"
        "COPY .floe /app/state\n"
    )
    problems = _copy_problems(dockerfile, context, ["**/.floe"])
    assert len(problems) == 5, problems
    for expected in ("another image", "outside the context", "downloads", "does not exist"):
        assert any(expected in p for p in problems), (expected, problems)
    assert any(".dockerignore excludes" in p for p in problems)


def _copy_problems(dockerfile: Path, context: Path, ignore: list[str]) -> list[str]:
    problems = []
    for copy in _copies(dockerfile):
        where = f"{dockerfile.name}: {copy.instruction} {' '.join(copy.sources)}"
        if any(f.startswith("--from") for f in copy.flags):
            problems.append(f"{where}: copies from another image; use only this repository's files")
            continue
        for source in copy.sources:
            if "://" in source:
                problems.append(f"{where}: downloads {source}")
                continue
            path = (context / source).resolve()
            if not path.is_relative_to(context.resolve()):
                problems.append(f"{where}: {source} is outside the context")
            elif not path.exists():
                problems.append(f"{where}: {source} does not exist")
            elif _ignored(path.relative_to(context.resolve()).as_posix(), ignore):
                problems.append(f"{where}: .dockerignore excludes {source}")
    return problems


def test_the_sidecar_image_has_no_dagster_and_no_dbt(compose: dict[str, Any]) -> None:
    pyproject = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    extras = set(pyproject["project"]["optional-dependencies"])
    sidecar_dockerfile = _service_dockerfile(compose, "sidecar")
    installs = _uv_sync_extras(sidecar_dockerfile)
    assert installs, "the sidecar image installs floe with `uv sync --locked`"
    assert all(found == {"sidecar"} for found in installs), installs
    copied = {s for c in _copies(sidecar_dockerfile) for s in c.sources}
    assert "adapter" not in copied, "the sidecar image must not carry the adapter's code"
    # Every extra any image installs exists, so `uv sync --locked` can resolve it from uv.lock.
    for dockerfile in _dockerfiles(compose):
        for found in _uv_sync_extras(dockerfile):
            assert found <= extras, f"{dockerfile.name}: unknown extras {found - extras}"


def test_dagster_instance_config_is_valid_for_the_installed_dagster() -> None:
    from dagster._core.instance.config import dagster_instance_config

    config, _ = dagster_instance_config(str(REPO_ROOT / "deploy" / "dagster"))
    assert "postgres" in config["storage"], "the compose stack keeps runs in PostgreSQL"
    workspace = yaml.safe_load((REPO_ROOT / "deploy" / "dagster" / "workspace.yaml").read_text())
    (entry,) = workspace["load_from"]
    server = entry["grpc_server"]
    compose_file = yaml.safe_load(COMPOSE_FILE.read_text())
    assert server["host"] in compose_file["services"]
    assert str(server["port"]) in compose_file["services"][server["host"]]["command"]


def test_code_location_module_is_in_the_repository(compose: dict[str, Any]) -> None:
    """The user-code server loads the module the adapter ships, and the image prepares it."""
    command = compose["services"]["user-code"]["command"]
    module = command[command.index("-m") + 1]
    path = REPO_ROOT / "adapter" / Path(*module.split("."))
    assert path.with_suffix(".py").is_file() or (path / "__init__.py").is_file(), module
    runs = [args for keyword, args in _instructions(_service_dockerfile(compose, "user-code"))]
    assert any(args.startswith("floe prepare") for args in runs), "the image compiles and parses"


# safe by default ---------------------------------------------------------------------------

SECRETS = {"DAGSTER_PG_PASSWORD": "pw-dagster", "MARQUEZ_PG_PASSWORD": "pw-marquez"}
SECRET_NAME = re.compile(r"PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|CREDENTIAL", re.I)


def test_published_ports_listen_on_loopback_by_default() -> None:
    """With only the secrets set (what scripts/compose.sh provides), nothing listens beyond
    127.0.0.1; FLOE_BIND_ADDRESS is the one, explicit, way to publish wider."""
    published = _published_ports(_interpolated(SECRETS))
    assert len(published) >= 6, published  # the UIs, the Marquez API and Jaeger's OTLP ingest
    wider = [(service, ip, port) for service, ip, port in published if ip != "127.0.0.1"]
    assert not wider, f"published beyond loopback by default: {wider}"
    opted_in = _published_ports(_interpolated({**SECRETS, "FLOE_BIND_ADDRESS": "0.0.0.0"}))
    assert {ip for _, ip, _ in opted_in} == {"0.0.0.0"}


def test_the_port_check_catches_a_port_on_every_interface() -> None:
    compose = {"services": {"web": {"ports": ["3000:3000", {"target": 80, "published": "8080"}]}}}
    assert [ip for _, ip, _ in _published_ports(compose)] == ["0.0.0.0", "0.0.0.0"]
    short = {"services": {"web": {"ports": ["127.0.0.1:3000:3000", "[::1]:4000:4000"]}}}
    assert [ip for _, ip, _ in _published_ports(short)] == ["127.0.0.1", "::1"]


def test_compose_refuses_to_start_without_each_password() -> None:
    for missing in SECRETS:
        others = {k: v for k, v in SECRETS.items() if k != missing}
        with pytest.raises(InterpolationError) as caught:
            _interpolated(others)
        assert missing in str(caught.value)
        assert "scripts/compose.sh" in str(caught.value), "the message says how to fix it"
        with pytest.raises(InterpolationError):
            _interpolated({**others, missing: ""})  # empty is refused too (`:?`)
    compose = _interpolated(SECRETS)
    env = compose["services"]["dagster-db"]["environment"]
    assert env["POSTGRES_PASSWORD"] == "pw-dagster"
    assert compose["services"]["marquez"]["environment"]["POSTGRES_PASSWORD"] == "pw-marquez"


def test_no_literal_password_in_compose_or_dockerfiles(compose: dict[str, Any]) -> None:
    assert _literal_secrets_in_compose(compose) == []
    for dockerfile in _dockerfiles(compose):
        assert _literal_secrets_in_dockerfile(dockerfile) == [], dockerfile.name


def test_the_secret_check_catches_literals(tmp_path: Path) -> None:
    compose = {
        "x-env": {"DB_PASSWORD": "${DB_PASSWORD:-dagster}"},
        "services": {
            "db": {"environment": {"POSTGRES_PASSWORD": "hunter2", "OK": "${X:?set X}"}},
            "api": {"environment": ["API_TOKEN=abc", "SAFE_PASSWORD=${SAFE_PASSWORD:?set it}"]},
        },
    }
    found = _literal_secrets_in_compose(compose)
    assert sorted(found) == ["API_TOKEN", "DB_PASSWORD", "POSTGRES_PASSWORD"], found
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text(
        "FROM python:3.11-slim\nENV PGPASSWORD=secret \\\n    OTHER=1\nARG API_KEY=xyz\n"
        "ARG SECRET_NAME\nENV DAGSTER_HOME=/opt/dagster\n"
    )
    assert sorted(_literal_secrets_in_dockerfile(dockerfile)) == ["API_KEY", "PGPASSWORD"]


def test_the_sidecar_reads_the_compiled_artifacts_of_the_adapter_image(
    compose: dict[str, Any],
) -> None:
    """Its spans then carry floe.yaml's tenant attributes: the sidecar's FLOE_ARTIFACTS names a
    file in a volume it mounts, written by a one-shot service of the adapter image (the image
    whose build ran `floe prepare`) from that image's own FLOE_ARTIFACTS, before the sidecar
    starts."""
    services: dict[str, Any] = compose["services"]
    sidecar = services["sidecar"]
    target = Path(_environment(sidecar)["FLOE_ARTIFACTS"])
    volume = _volume_holding(sidecar, target)
    assert volume is not None, f"the sidecar mounts nothing that holds {target}"
    adapter_dockerfile = _service_dockerfile(compose, "user-code")
    baked = Path(_dockerfile_env(adapter_dockerfile)["FLOE_ARTIFACTS"])
    adapter_image = services["user-code"]["image"]
    writers = [
        name
        for name, service in services.items()
        if service.get("image") == adapter_image
        and _volume_holding(service, target) == volume
        and str(baked) in service.get("command", [])
        and str(target) in service.get("command", [])
    ]
    assert writers, "no service copies the adapter image's artifacts into the sidecar's volume"
    (writer,) = writers
    depends = sidecar.get("depends_on") or {}
    assert depends.get(writer, {}).get("condition") == "service_completed_successfully"
    assert services[writer].get("restart") == "no", "a one-shot copy, not a service to restart"


def test_compose_sh_generates_an_owner_only_env_once(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    shutil.copy2(REPO_ROOT / "scripts" / "compose.sh", tmp_path / "scripts" / "compose.sh")
    env = {k: v for k, v in os.environ.items() if k not in SECRETS}

    def run(extra: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(tmp_path / "scripts" / "compose.sh"), "--env-only"],
            env={**env, **(extra or {})},
            capture_output=True,
            text=True,
            timeout=60,
        )

    first = run()
    assert first.returncode == 0, first.stderr
    dotenv = tmp_path / ".env"
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600
    values = _dotenv(dotenv)
    assert set(values) == set(SECRETS)
    assert all(len(v) >= 24 for v in values.values()), "generated, long and random"
    assert len(set(values.values())) == 2
    assert run().returncode == 0
    assert _dotenv(dotenv) == values, "a second run keeps the passwords it generated"
    # A value the user set is kept; a missing one is added.
    dotenv.write_text("DAGSTER_PG_PASSWORD=mine\nOTHER=1")
    os.chmod(dotenv, 0o644)
    assert run().returncode == 0
    kept = _dotenv(dotenv)
    assert kept["DAGSTER_PG_PASSWORD"] == "mine" and kept["OTHER"] == "1"
    assert len(kept["MARQUEZ_PG_PASSWORD"]) >= 24
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600, "tightened to owner-only"
    # Set in the environment: compose takes it from there, so nothing is written.
    dotenv.unlink()
    assert run({"DAGSTER_PG_PASSWORD": "x", "MARQUEZ_PG_PASSWORD": "y"}).returncode == 0
    assert _dotenv(dotenv) == {}
    dotenv.unlink()
    dotenv.symlink_to(tmp_path / "elsewhere")
    refused = run()
    assert refused.returncode == 2 and "symbolic link" in refused.stderr
    assert not (tmp_path / "elsewhere").exists()


def test_env_files_stay_out_of_git_and_images() -> None:
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()
    assert _ignored(".env", _dockerignore_patterns(REPO_ROOT / ".dockerignore"))


class InterpolationError(ValueError):
    """What `docker compose` says when a required variable is missing."""


_VARIABLE = re.compile(
    r"\$(?:(?P<escaped>\$)|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


def _interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution: $$, $VAR, ${VAR}, ${VAR:-d}, ${VAR-d}, ${VAR:?err},
    ${VAR?err}, ${VAR:+r}, ${VAR+r} (as the Compose Specification defines them)."""

    def substitute(match: re.Match[str]) -> str:
        if match["escaped"]:
            return "$"
        name = match["braced"] or match["named"]
        op, arg = match["op"], match["arg"] or ""
        present = name in env
        filled = present and env[name] != ""
        if op in (":-", "-"):
            return env[name] if (filled if op == ":-" else present) else arg
        if op in (":?", "?"):
            if not (filled if op == ":?" else present):
                raise InterpolationError(f"required variable {name} is missing a value: {arg}")
            return env[name]
        if op in (":+", "+"):
            return arg if (filled if op == ":+" else present) else ""
        return env.get(name, "")

    return _VARIABLE.sub(substitute, value)


def _interpolated(env: Mapping[str, str]) -> dict[str, Any]:
    def walk(node: Any) -> Any:
        if isinstance(node, str):
            return _interpolate(node, env)
        if isinstance(node, list):
            return [walk(n) for n in node]
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return node

    result: dict[str, Any] = walk(yaml.safe_load(COMPOSE_FILE.read_text()))
    return result


def _published_ports(compose: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(service, host address, published port) for every published port; no address given
    means every interface, as Docker does."""
    found = []
    for name, service in compose["services"].items():
        for port in service.get("ports") or []:
            if isinstance(port, dict):
                if port.get("published") is None:
                    continue
                found.append((name, port.get("host_ip") or "0.0.0.0", str(port["published"])))
                continue
            spec = str(port).split("/", 1)[0]
            ip = "0.0.0.0"
            if spec.startswith("["):
                ip, _, spec = spec[1:].partition("]:")
            elif spec.count(":") == 2:
                ip, _, spec = spec.partition(":")
            host, sep, _ = spec.rpartition(":")
            if sep:
                found.append((name, ip, host))
    return found


def _environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def _is_required_reference(value: str) -> bool:
    """A value compose must take from the environment, and refuses to start without."""
    return re.fullmatch(r"\$\{[A-Za-z_][A-Za-z0-9_]*:?\?[^}]*\}", value) is not None


def _literal_secrets_in_compose(compose: dict[str, Any]) -> list[str]:
    found = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                secret = isinstance(value, str | int) and SECRET_NAME.search(str(key))
                if secret and not _is_required_reference(str(value)):
                    found.append(str(key))
                walk(value)
        elif isinstance(node, list):
            for item in node:
                if isinstance(item, str) and "=" in item:
                    key, value = item.split("=", 1)
                    if SECRET_NAME.search(key) and not _is_required_reference(value):
                        found.append(key)
                walk(item)

    walk(compose)
    return found


def _dockerfile_env(dockerfile: Path) -> dict[str, str]:
    """ENV and ARG defaults (``KEY=value`` pairs, and the legacy ``ENV KEY value``)."""
    values: dict[str, str] = {}
    for keyword, args in _instructions(dockerfile):
        if keyword not in {"ENV", "ARG"}:
            continue
        words = shlex.split(args)
        if keyword == "ENV" and len(words) >= 2 and "=" not in words[0]:
            values[words[0]] = " ".join(words[1:])
            continue
        for word in words:
            key, sep, value = word.partition("=")
            if sep:
                values[key] = value
    return values


def _literal_secrets_in_dockerfile(dockerfile: Path) -> list[str]:
    return [key for key, value in _dockerfile_env(dockerfile).items() if SECRET_NAME.search(key)]


def _volume_holding(service: dict[str, Any], path: Path) -> str | None:
    """The named volume (or host path) mounted in ``service`` that contains ``path``."""
    for volume in service.get("volumes") or []:
        source = _volume_source(volume)
        target = volume.get("target") if isinstance(volume, dict) else volume.split(":")[1]
        if source and target and path.is_relative_to(target):
            return source
    return None


def _dotenv(path: Path) -> dict[str, str]:
    if not path.exists():
        return {}
    pairs = [line.split("=", 1) for line in path.read_text().splitlines() if "=" in line]
    return {k: v for k, v in pairs}


# helpers -----------------------------------------------------------------------------------


def _service_dockerfile(compose: dict[str, Any], service: str) -> Path:
    build = compose["services"][service]["build"]
    return (REPO_ROOT / build["context"] / build["dockerfile"]).resolve()


def _uv_sync_extras(dockerfile: Path) -> list[set[str]]:
    found = []
    for keyword, args in _instructions(dockerfile):
        if keyword != "RUN":
            continue
        for command in re.split(r"&&|;", args):
            words = shlex.split(command)
            if words[:2] == ["uv", "sync"]:
                assert "--locked" in words, f"{dockerfile.name}: `uv sync` without --locked"
                assert "--all-extras" not in words, f"{dockerfile.name}: installs every extra"
                found.append({words[i + 1] for i, w in enumerate(words) if w == "--extra"})
    return found


def _volume_source(volume: str | dict[str, Any]) -> str | None:
    if isinstance(volume, dict):
        return volume.get("source")
    parts = volume.split(":")
    return parts[0] if len(parts) > 1 else None


def _is_host_path(source: str) -> bool:
    return source.startswith((".", "/", "~"))


def _inside_repo(path: Path) -> bool:
    return path.resolve().is_relative_to(REPO_ROOT)


def _dockerignore_patterns(path: Path) -> list[str]:
    if not path.is_file():
        return []
    lines = [line.strip() for line in path.read_text().splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def _ignored(relative: str, patterns: list[str]) -> bool:
    """Does .dockerignore exclude this path (or a directory holding it)? Enough of Docker's
    matching for the patterns this repository uses: ``**/`` prefixes and shell globs."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        if pattern.startswith("!"):
            continue
        anywhere = pattern.startswith("**/")
        bare = pattern.removeprefix("**/")
        for prefix in prefixes:
            candidates = [prefix]
            if anywhere:
                candidates += ["/".join(prefix.split("/")[i:]) for i in range(len(parts))]
            if any(fnmatch.fnmatchcase(c, bare) for c in candidates):
                return True
    return False
