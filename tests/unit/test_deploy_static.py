"""docker-compose.yml and the Dockerfile, validated statically (no Docker engine on the test machines).

They must run the same processes as `make run` (the Procfile), wait on healthchecks, migrate once before any
service starts, run as a non-root user and keep secrets out of the file."""
import os
import re
import shlex

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
INFRA = {"postgres", "rabbitmq", "migrate", "prometheus"}


def compose():
    with open(os.path.join(ROOT, "docker-compose.yml")) as fh:
        return yaml.safe_load(fh)


def procfile():
    entries = {}
    with open(os.path.join(ROOT, "Procfile")) as fh:
        for line in fh:
            if line.strip() and not line.startswith("#"):
                name, command = line.split(":", 1)
                entries[name.strip()] = shlex.split(command.strip())
    return entries


def test_every_procfile_process_is_a_compose_service_with_the_same_command():
    services = compose()["services"]
    for name, command in procfile().items():
        assert name in services, "Procfile process %s missing from docker-compose.yml" % name
        assert services[name]["command"] == command, name


def test_app_services_wait_for_healthy_infrastructure_and_the_migration():
    services = compose()["services"]
    for name, service in services.items():
        if name in INFRA:
            continue
        deps = service.get("depends_on", {})
        assert deps.get("postgres", {}).get("condition") == "service_healthy", name
        assert deps.get("rabbitmq", {}).get("condition") == "service_healthy", name
        assert deps.get("migrate", {}).get("condition") == "service_completed_successfully", name
        assert "healthcheck" in service and service["healthcheck"]["test"], "%s has no healthcheck" % name
    assert services["migrate"]["restart"] == "no"
    for infra in ("postgres", "rabbitmq"):
        assert services[infra]["healthcheck"]["test"]


def test_health_urls_match_the_ports_the_processes_listen_on():
    services = compose()["services"]
    for name, service in services.items():
        test = service.get("healthcheck", {}).get("test", [])
        urls = [t for t in test if isinstance(t, str) and t.startswith("http://")]
        for url in urls:
            port = int(re.search(r":(\d+)/", url).group(1))
            if name == "gateway":
                assert port == 8000
            elif os.path.exists(os.path.join(ROOT, "services", name, "config.yml")):
                config = open(os.path.join(ROOT, "services", name, "config.yml")).read()
                assert re.search(r"METRICS_PORT:\s*\$\{\w+:%d\}" % port, config), (name, port)


def test_no_secrets_in_the_compose_file():
    text = open(os.path.join(ROOT, "docker-compose.yml")).read()
    assert "EXCHANGER_ADMIN_PASSWORD: ${EXCHANGER_ADMIN_PASSWORD:?" in text
    for key in ("TWILIO_AUTH_TOKEN", "TWILIO_ACCOUNT_SID"):
        assert re.search(r"%s: \$\{%s:-\}" % (key, key), text), key


def test_dockerfile_copies_what_exists_and_runs_unprivileged():
    dockerfile = open(os.path.join(ROOT, "deploy/docker/app.Dockerfile")).read()
    for source in re.findall(r"^COPY (?!--from)(\S+)", dockerfile, re.M):
        for path in source.split():
            assert os.path.exists(os.path.join(ROOT, path)), path
    assert re.search(r"^USER (?!root)\w+", dockerfile, re.M)
    assert "-c constraints.txt" in dockerfile
    services = compose()["services"]
    assert services["orders"]["build"]["dockerfile"] == "deploy/docker/app.Dockerfile"
