"""deploy/docker-compose.yml: the stack is coherent with the app's settings and the queue.

Docker is not needed: the YAML is read as compose reads it (anchors and merge keys) and
checked against `Settings` and deploy/elasticmq.conf.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices, AliasPath

from services.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APP_SERVICES = ("api", "worker")
# Read by boto3's credential chain (.env.example: "AWS credentials come from boto3's
# chain"), not by Settings: ElasticMQ needs some credentials to be signed, checks none.
BOTO3_CHAIN = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
SHARED = ("POSTGRES_URL", "SQS_QUEUE_URL", "SQS_ENDPOINT_URL", "AWS_REGION", "CHROMA_URL")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = compose["services"]
    return result


def settings_env_names() -> set[str]:
    """Every environment name Settings reads: a field's alias(es), else prefix + its name."""
    prefix = str(Settings.model_config.get("env_prefix", "")).upper()
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        aliases: set[str] = set()
        for alias in (field.validation_alias, field.alias):
            if isinstance(alias, str):
                aliases.add(alias.upper())
            elif isinstance(alias, AliasChoices):
                aliases.update(c.upper() for c in alias.choices if isinstance(c, str))
            elif isinstance(alias, AliasPath) and isinstance(alias.path[0], str):
                aliases.add(alias.path[0].upper())
        names |= aliases or {prefix + name.upper()}
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):  # the KEY=VALUE form
        env = dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    assert isinstance(env, dict)
    return {str(key): str(value) for key, value in env.items()}


def hocon_block(text: str, key: str) -> str:
    """The text between the braces of `key { ... }` (its first occurrence)."""
    start = re.search(rf"(?m)^\s*{re.escape(key)}\s*\{{", text)
    assert start, f"no {key} block"
    depth, i = 1, start.end()
    while depth:
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        i += 1
    return text[start.end() : i - 1]


def hocon_values(block: str) -> dict[str, str]:
    """The `key = value` lines of a block (nested blocks included), quotes removed."""
    return dict(re.findall(r"(?m)^\s*(\w+)\s*=\s*\"?([^\"\n]*?)\"?\s*$", block))


def elasticmq_conf() -> str:
    text = (DEPLOY / "elasticmq.conf").read_text()
    return re.sub(r"(?m)^\s*(#|//).*$", "", text)


def elasticmq_queue_names() -> set[str]:
    """The queues elasticmq.conf creates: the blocks directly inside `queues { }`."""
    queues = hocon_block(elasticmq_conf(), "queues")
    names, depth = set(), 0
    for match in re.finditer(r"([\w.-]+)\s*\{|\{|\}", queues):
        if match.group(0) == "}":
            depth -= 1
            continue
        if depth == 0 and match.group(1):
            names.add(match.group(1))
        depth += 1
    return names


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's `${NAME}`, `${NAME:-default}` and `${NAME:?error}` with `variables`."""

    def one(match: re.Match[str]) -> str:
        name, operator, rest = match.groups()
        if name in variables:
            return variables[name]
        assert operator == ":-", f"${{{name}}} has no default"
        return str(rest)

    return re.sub(r"\$\{(\w+)(?:(:[-?])([^}]*))?\}", one, value)


def test_the_stack_has_its_services(services: dict[str, dict[str, Any]]) -> None:
    assert {"postgres", "chroma", "elasticmq", "api", "worker"} <= set(services)
    assert services["elasticmq"]["image"].startswith("softwaremill/elasticmq-native:")
    assert services["api"]["command"] == ["python", "app.py", "--api"]
    # No mode flag: app.py's worker.
    assert services["worker"]["command"] == ["python", "app.py"]
    replicas = services["worker"]["deploy"]["replicas"]
    assert isinstance(replicas, int) and replicas >= 2


def test_app_services_build_the_deploy_image(services: dict[str, dict[str, Any]]) -> None:
    root = DEPLOY.parent
    for name in (*APP_SERVICES, "chroma"):
        build = services[name]["build"]
        assert (DEPLOY / build["context"]).resolve() == root
        dockerfile = root / build["dockerfile"]
        assert dockerfile.is_file()
    text = (DEPLOY / "Dockerfile").read_text()
    assert "uv sync --frozen --no-dev" in text


def test_every_app_variable_is_a_setting(services: dict[str, dict[str, Any]]) -> None:
    known = settings_env_names()
    for name in APP_SERVICES:
        unknown = set(environment(services[name])) - known - BOTO3_CHAIN
        assert not unknown, f"{name}: not Settings fields: {sorted(unknown)}"


def test_the_settings_are_valid(services: dict[str, dict[str, Any]]) -> None:
    """The values, interpolated with the required secrets, are accepted by Settings."""
    secrets = {"POSTGRES_PASSWORD": "pw", "REVIEW_LINK_SECRET": "s" * 32}
    for name in APP_SERVICES:
        env = {
            key.lower(): interpolate(value, secrets)
            for key, value in environment(services[name]).items()
            if key not in BOTO3_CHAIN
        }
        settings = Settings.model_validate(env)  # the values alone, not this environment
        settings.check_backends()
        assert settings.postgres_url is not None
        url = urlsplit(settings.postgres_url.get_secret_value())
        assert (url.hostname, url.password) == ("postgres", "pw")
        assert settings.review_link_secret is not None


def test_workers_and_api_share_database_queue_and_knowledge(
    services: dict[str, dict[str, Any]],
) -> None:
    api, worker = (environment(services[name]) for name in APP_SERVICES)
    for key in SHARED:
        assert key in worker, f"the worker has no {key}"
        assert api.get(key) == worker[key], key
    # Review links signed by a worker verify at the API.
    assert api["REVIEW_LINK_SECRET"] == worker["REVIEW_LINK_SECRET"]
    # The app reaches the other services by their compose names.
    postgres = interpolate(worker["POSTGRES_URL"], {"POSTGRES_PASSWORD": "pw"})
    assert urlsplit(postgres).hostname == "postgres"
    assert urlsplit(worker["SQS_ENDPOINT_URL"]).hostname == "elasticmq"
    assert urlsplit(worker["SQS_QUEUE_URL"]).hostname == "elasticmq"
    assert urlsplit(worker["CHROMA_URL"]).hostname == "chroma"


def test_ports_are_valid(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        for mapping in service.get("ports", []):
            assert isinstance(mapping, str), f"{name}: quote port mappings ({mapping!r})"
            *host, container = mapping.split(":")
            for port in [container, *host[-1:]]:
                assert port.isdigit() and 0 < int(port) < 65536, f"{name}: {mapping}"
    api = environment(services["api"])
    assert api["API_HOST"] == "0.0.0.0"  # reachable from outside its container
    published = [m.split(":")[-1] for m in services["api"]["ports"]]
    assert api["API_PORT"] in published
    assert f":{api['API_PORT']}/health" in " ".join(services["api"]["healthcheck"]["test"])


def test_start_order_is_coherent(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        depends = service.get("depends_on", {})
        assert isinstance(depends, dict), f"{name}: use the long depends_on form"
        for target, spec in depends.items():
            assert target in services, f"{name} depends on unknown {target}"
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services[target], f"{target} has no healthcheck"
    # No cycle: a topological order exists.
    remaining = {n: set(s.get("depends_on", {})) for n, s in services.items()}
    while remaining:
        ready = [n for n, deps in remaining.items() if not deps & set(remaining)]
        assert ready, f"depends_on cycle among {sorted(remaining)}"
        for n in ready:
            del remaining[n]
    # The worker opens PostgreSQL and the knowledge base before it consumes.
    worker = services["worker"]["depends_on"]
    assert worker["postgres"]["condition"] == "service_healthy"
    assert worker["chroma"]["condition"] == "service_healthy"
    assert "elasticmq" in worker
    assert services["api"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_elasticmq_defines_the_configured_queue_and_its_dlq(
    services: dict[str, dict[str, Any]],
) -> None:
    worker = environment(services["worker"])
    queue = urlsplit(worker["SQS_QUEUE_URL"]).path.rsplit("/", 1)[-1]
    assert queue == worker["SQS_QUEUE_NAME"]
    names = elasticmq_queue_names()
    assert queue in names, f"elasticmq.conf does not define {queue}"
    conf = hocon_values(hocon_block(hocon_block(elasticmq_conf(), "queues"), queue))
    # services/queue.py names the DLQ NAME-dlq; the redrive count is SQS_MAX_RECEIVE_COUNT.
    assert conf.get("name") == f"{queue}-dlq"
    assert conf["name"] in names
    assert conf.get("maxReceiveCount") == worker["SQS_MAX_RECEIVE_COUNT"]
    visibility = worker["WORKER_VISIBILITY_TIMEOUT_SECONDS"]
    assert conf.get("defaultVisibilityTimeout") == f"{visibility} seconds"
    mounts = services["elasticmq"]["volumes"]
    assert any(m.split(":")[:2] == ["./elasticmq.conf", "/opt/elasticmq.conf"] for m in mounts)
    # Queue URLs ElasticMQ hands out (GetQueueUrl) name the host the app reaches.
    node = hocon_values(hocon_block(elasticmq_conf(), "node-address"))
    assert node["host"] == urlsplit(worker["SQS_QUEUE_URL"]).hostname
    assert node["port"] == str(urlsplit(worker["SQS_QUEUE_URL"]).port)
    account = hocon_values(hocon_block(elasticmq_conf(), "aws"))["accountId"]
    assert urlsplit(worker["SQS_QUEUE_URL"]).path == f"/{account}/{queue}"
