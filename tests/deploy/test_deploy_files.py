"""The files in deploy/: they parse, agree with each other and with the code they deploy."""

from __future__ import annotations

import ast
import base64
import itertools
import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml  # type: ignore[import-untyped]  # no stubs installed; the tests only index what it returns

from service.cli import main as cli_main
from service.settings import Settings, SettingsError

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
PROMETHEUS = DEPLOY / "prometheus"
# The port every deploy file must agree on: the service's own default.
DEFAULT_PORT = Settings().port

# The metrics the alert rules and the runbook may name: those the issue lists (the dashboards'
# vocabulary). Each must also be defined in service/metrics.py to be used (see exported_metrics).
KNOWN_METRICS = {
    "onecode_http_request_duration_seconds",
    "onecode_engine_errors_total",
    "onecode_db_pool_waiting",
    "onecode_db_pool_size",
    "onecode_db_pool_available",
    "onecode_scans_total",
    "onecode_rewards_total",
}
# Prometheus' own per-target series, allowed beside the service's metrics.
PROMETHEUS_BUILTINS = {"up"}
# The project's packages (pyproject.toml): the image build needs each of them.
PACKAGES = ("service", "codegen", "antifraud", "campaigns", "loadtests")


# --- helpers -------------------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def settings_env_names() -> set[str]:
    """Every environment variable `Settings.from_env` reads, from service/settings.py's source.

    Reads are `env.get("X", ...)`, `env["X"]` and helpers called as `helper(env, "X", ...)`
    (`_int`, `_bool`): any call whose first two arguments are `env` and a string literal.
    """
    tree = ast.parse((ROOT / "service" / "settings.py").read_text())

    def is_env(node: ast.expr) -> bool:
        return isinstance(node, ast.Name) and node.id == "env"

    def literal(node: ast.expr) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func, args = node.func, node.args
            if isinstance(func, ast.Attribute) and func.attr == "get" and is_env(func.value) and args:
                name = literal(args[0])
            elif len(args) >= 2 and is_env(args[0]):
                name = literal(args[1])
            else:
                name = None
        elif isinstance(node, ast.Subscript) and is_env(node.value):
            name = literal(node.slice)
        else:
            name = None
        if name is not None:
            names.add(name)
    return names


def env_example() -> list[tuple[str, str]]:
    """deploy/.env.example as (name, value) pairs in file order."""
    pairs = []
    for line in (DEPLOY / ".env.example").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"not NAME=value: {line!r}"
            pairs.append((name, value))
    return pairs


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """deploy/Dockerfile as stages of (INSTRUCTION, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in (DEPLOY / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    stages: list[list[tuple[str, str]]] = []
    for keyword, arguments in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, arguments))
    return stages


def dockerfile_args() -> dict[str, str]:
    """The ARG defaults declared before the first FROM (usable in FROM lines)."""
    defaults = {}
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.startswith("FROM"):
            break
        if line.startswith("ARG ") and "=" in line:
            name, _, value = line[4:].partition("=")
            defaults[name.strip()] = value.strip()
    return defaults


def instruction(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [arguments for found, arguments in stage if found == keyword]


def k8s_documents() -> dict[str, dict[str, Any]]:
    """deploy/k8s/*.yaml (but kustomization.yaml) by kind; one object of each kind."""
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(K8S.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            assert document["kind"] not in documents, f"two {document['kind']} objects"
            documents[document["kind"]] = document
    return documents


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def expr_metric_names(expr: str) -> set[str]:
    """The series names a PromQL expression reads: identifiers that are not functions, keywords, label
    names of grouping clauses, label matchers, strings or durations."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\boffset\s+\w+", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    keywords = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left", "group_right"}
    identifiers = re.findall(r"\b([A-Za-z_:][A-Za-z0-9_:]*)\b(?!\s*\()", text)
    return {name for name in identifiers if name not in keywords}


def base_metric(name: str) -> str:
    """A histogram's series name without its _bucket/_count/_sum suffix."""
    return re.sub(r"_(bucket|count|sum)$", "", name)


def exported_metrics() -> set[str]:
    """The metric names service/metrics.py defines (the first argument of each Counter/Gauge/...)."""
    source = (ROOT / "service" / "metrics.py").read_text()
    return set(re.findall(r"\b(?:Counter|Gauge|Histogram|Summary)\(\s*\"([a-z_:]+)\"", source))


def alert_rules() -> list[dict[str, Any]]:
    document = load_yaml(PROMETHEUS / "alerts.yaml")
    return [rule for group in document["groups"] for rule in group["rules"]]


def readme_code_blocks() -> list[str]:
    text = (DEPLOY / "README.md").read_text()
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.MULTILINE | re.DOTALL)


def readme_commands() -> list[tuple[str, list[str], list[str]]]:
    """Each `onecode ...` invocation in deploy/README.md's code blocks: (line, words, --options).

    `onecode` counts as the command when it stands alone (not `deploy/onecode`, `onecode:tag`,
    `--x=onecode`) and a word follows; of `... onecode onecode keys` (a compose service named onecode
    running the command) the last one counts. Words are the non-option tokens after it (subcommands,
    then arguments); options are its `--long` ones up to the end of that shell command.
    """
    found = []
    for block in readme_code_blocks():
        for raw in block.splitlines():
            line = re.sub(r"(^|\s)#.*$", "", raw)  # shell comments are prose
            for match in re.finditer(r"(?<![\w/.:=-])onecode[ \t]+(?!onecode\b)(?=[a-z])(.*)", line):
                segment = re.split(r"\s(?:\||&&|;|\\)(?:\s|$)", match.group(1))[0]
                try:
                    tokens = shlex.split(segment)
                except ValueError:  # an unbalanced quote: good enough for finding words
                    tokens = segment.split()
                words = list(itertools.takewhile(lambda token: not token.startswith("-"), tokens))
                options = [token.split("=")[0] for token in tokens if token.startswith("--")]
                found.append((raw.strip(), words, options))
    return found


def resolve_command(words: list[str]) -> tuple[click.Command | None, str]:
    """Walk the click groups from `onecode` along `words`; (the command, how far it got)."""
    command: click.Command = cli_main
    path = "onecode"
    for word in words:
        if not isinstance(command, click.Group):
            break  # the rest are arguments
        sub = command.commands.get(word)
        if sub is None:
            return None, f"{path} {word}"
        command, path = sub, f"{path} {word}"
    return command, path


def option_names(command: click.Command) -> set[str]:
    names = {"--help"}
    for param in command.params:
        names.update(param.opts)
        names.update(param.secondary_opts)
    return names


# --- every file parses ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", sorted(DEPLOY.rglob("*.yaml")), ids=lambda p: str(p.relative_to(DEPLOY)))
def test_every_yaml_file_parses(path: Path) -> None:
    """Each YAML file in deploy/ is valid YAML with at least one document."""
    documents = list(yaml.safe_load_all(path.read_text()))
    assert documents
    assert all(isinstance(document, dict) for document in documents)


# --- .env.example ----------------------------------------------------------------------------------


class TestEnvExample:
    """deploy/.env.example names exactly the variables the service reads, and works as written."""

    def test_the_extractor_finds_the_known_reads(self) -> None:
        """Guard for the extractor itself: reads of every form are found."""
        names = settings_env_names()
        assert {"DATABASE_URL", "ONECODE_HOME", "ONECODE_MASTER_KEY", "ONECODE_OLD_MASTER_KEYS"} <= names
        assert {"ONECODE_PORT", "ONECODE_AUTO_MIGRATE", "ONECODE_IP_DATABASE"} <= names
        assert all(re.fullmatch(r"[A-Z][A-Z0-9_]*", name) for name in names)

    def test_names_equal_the_settings_reads(self) -> None:
        """Every variable Settings.from_env reads is in the file, and the file names nothing else."""
        in_file = [name for name, _ in env_example()]
        assert len(in_file) == len(set(in_file)), "a variable is listed twice"
        read = settings_env_names()
        assert not read - set(in_file), (
            f"read by the service, missing from .env.example: {read - set(in_file)}"
        )
        assert not set(in_file) - read, f"in .env.example, not read by the service: {set(in_file) - read}"

    def test_every_variable_is_explained(self) -> None:
        """Every variable line sits under a comment (a group of related variables may share one)."""
        last_kind = None
        for line in (DEPLOY / ".env.example").read_text().splitlines():
            if not line.strip():
                last_kind = None
            elif line.startswith("#"):
                last_kind = "comment"
            else:
                assert last_kind in {"comment", "variable"}, f"no comment above {line!r}"
                last_kind = "variable"

    def test_values_load_once_the_master_key_is_set(self) -> None:
        """With a real master key the file's values are valid settings (no empty value that breaks)."""
        env = dict(env_example())
        env["ONECODE_MASTER_KEY"] = base64.urlsafe_b64encode(bytes(range(32))).decode()
        settings = Settings.from_env(env)
        assert settings.port == DEFAULT_PORT
        assert settings.host == "0.0.0.0"
        assert settings.auto_migrate is False
        assert settings.workers == 1
        assert settings.database_replica_url is None
        assert settings.old_master_keys == ()

    def test_the_master_key_placeholder_is_refused(self) -> None:
        """Copied without editing, the file fails at start-up instead of running with a known key."""
        with pytest.raises(SettingsError, match="ONECODE_MASTER_KEY"):
            Settings.from_env(dict(env_example()))


# --- Dockerfile ------------------------------------------------------------------------------------


class TestDockerfile:
    """The image: multi-stage, non-root, health-checked, serving on the service's default port."""

    def test_is_multi_stage_with_a_slim_python_runtime(self) -> None:
        """A builder stage and a runtime stage on python:3.11-slim (the venv is copied across)."""
        stages = dockerfile_stages()
        assert len(stages) >= 2
        images = [instruction(stage, "FROM")[0].split()[0] for stage in stages]
        defaults = dockerfile_args()
        images = [re.sub(r"\$\{(\w+)\}", lambda m: defaults[m.group(1)], image) for image in images]
        assert images[-1].startswith("python:3.11-slim")
        assert any("--from=builder" in copy for copy in instruction(stages[-1], "COPY"))

    def test_builder_installs_the_project_with_the_lock(self) -> None:
        """The builder runs `pip install -c requirements.lock .` on a context that holds the packages."""
        builder = dockerfile_stages()[0]
        runs = [run for run in instruction(builder, "RUN") if "pip install" in run]
        assert runs
        assert any("-c requirements.lock" in run and run.rstrip().endswith(" .") for run in runs)
        copied = " ".join(instruction(builder, "COPY"))
        for needed in ("pyproject.toml", "requirements.lock", "README.md", *PACKAGES):
            assert needed in copied, f"the builder does not copy {needed}"

    def test_runs_as_a_non_root_user(self) -> None:
        """The runtime stage's last USER is neither root nor uid 0."""
        users = instruction(dockerfile_stages()[-1], "USER")
        assert users
        user = users[-1].split(":")[0]
        assert user not in {"root", "0"}

    def test_healthcheck_and_port(self) -> None:
        """HEALTHCHECK asks /healthz; EXPOSE is the service's default port."""
        runtime = dockerfile_stages()[-1]
        healthchecks = instruction(runtime, "HEALTHCHECK")
        assert healthchecks
        assert "/healthz" in healthchecks[-1]
        assert instruction(runtime, "EXPOSE") == [str(DEFAULT_PORT)]

    def test_entrypoint_is_the_cli_serving_without_migrating(self) -> None:
        """ENTRYPOINT onecode, CMD serve --no-migrate, and serve really has that option."""
        runtime = dockerfile_stages()[-1]
        assert instruction(runtime, "ENTRYPOINT") == ['["onecode"]']
        assert instruction(runtime, "CMD") == ['["serve", "--no-migrate"]']
        assert "--no-migrate" in option_names(cli_main.commands["serve"])

    def test_listens_on_every_interface_and_ships_the_postgres_client(self) -> None:
        """ONECODE_HOST=0.0.0.0 and pg_dump/pg_restore (postgresql-client) in the runtime stage."""
        runtime = dockerfile_stages()[-1]
        envs = " ".join(instruction(runtime, "ENV"))
        assert "ONECODE_HOST=0.0.0.0" in envs
        assert any("postgresql-client" in run for run in instruction(runtime, "RUN"))


# --- compose -----------------------------------------------------------------------------------------


class TestCompose:
    """deploy/compose.yaml: engines with health checks, one migration step, replicas behind nginx."""

    @pytest.fixture
    def services(self) -> dict[str, Any]:
        services: dict[str, Any] = load_yaml(DEPLOY / "compose.yaml")["services"]
        return services

    def test_has_the_required_services(self, services: dict[str, Any]) -> None:
        """postgres, redis, migrate, onecode and a load balancer."""
        assert {"postgres", "redis", "migrate", "onecode", "nginx"} <= set(services)
        assert services["postgres"]["image"].startswith("postgres:")
        assert services["redis"]["image"].startswith("redis:")

    def test_engines_and_replicas_have_health_checks(self, services: dict[str, Any]) -> None:
        """postgres (pg_isready), redis (ping) and the service (/healthz on its port) are checked."""
        for name in ("postgres", "redis", "onecode"):
            assert services[name]["healthcheck"]["test"], name
        assert "pg_isready" in str(services["postgres"]["healthcheck"]["test"])
        assert "ping" in str(services["redis"]["healthcheck"]["test"])
        onecode_check = " ".join(services["onecode"]["healthcheck"]["test"])
        assert f"127.0.0.1:{DEFAULT_PORT}/healthz" in onecode_check

    def test_migrate_runs_once_before_the_replicas(self, services: dict[str, Any]) -> None:
        """migrate runs `migrate` on the same image after PostgreSQL is healthy; replicas wait for it."""
        migrate, onecode = services["migrate"], services["onecode"]
        assert migrate["command"] == ["migrate"]
        assert migrate["restart"] == "no"
        assert migrate["image"] == onecode["image"]
        assert migrate["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert "migrate" in cli_main.commands
        assert onecode["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert onecode["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert onecode["depends_on"]["redis"]["condition"] == "service_healthy"

    def test_the_service_is_replicated_and_configured_from_env(self, services: dict[str, Any]) -> None:
        """Several replicas, settings from deploy/.env, and an image built from deploy/Dockerfile."""
        onecode = services["onecode"]
        assert onecode["deploy"]["replicas"] > 1
        assert onecode["env_file"] == ".env"
        build = onecode["build"]
        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
        assert (DEPLOY / build["context"]).resolve() == ROOT
        assert "ports" not in onecode, "replicas are reached through the load balancer only"

    def test_load_balancer_publishes_the_service_port(self, services: dict[str, Any]) -> None:
        """nginx publishes the default port and proxies to every replica by the compose service name."""
        nginx = services["nginx"]
        assert nginx["ports"] == [f"{DEFAULT_PORT}:{DEFAULT_PORT}"]
        mounts = [volume.split(":") for volume in nginx["volumes"]]
        assert ["./nginx.conf", "/etc/nginx/nginx.conf", "ro"] in mounts
        conf = (DEPLOY / "nginx.conf").read_text()
        assert re.search(rf"^\s*listen {DEFAULT_PORT};", conf, flags=re.MULTILINE)
        assert re.search(rf"^\s*server onecode:{DEFAULT_PORT}\b", conf, flags=re.MULTILINE)
        assert "proxy_pass http://onecode;" in conf

    def test_mounted_files_exist(self, services: dict[str, Any]) -> None:
        """Every file a service mounts from deploy/ is there."""
        for service in services.values():
            for volume in service.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (DEPLOY / source).is_file(), source


# --- Kubernetes --------------------------------------------------------------------------------------


class TestKubernetes:
    """deploy/k8s: probes, resources, selectors and names agree; kustomize lists every file."""

    @pytest.fixture
    def docs(self) -> dict[str, dict[str, Any]]:
        return k8s_documents()

    @staticmethod
    def pod_spec(docs: dict[str, dict[str, Any]], kind: str) -> dict[str, Any]:
        spec: dict[str, Any] = docs[kind]["spec"]["template"]["spec"]
        return spec

    def test_has_every_manifest(self, docs: dict[str, dict[str, Any]]) -> None:
        """ConfigMap, Secret, Deployment, Service, HPA, PDB and the migration Job."""
        assert set(docs) == {
            "ConfigMap",
            "Secret",
            "Deployment",
            "Service",
            "HorizontalPodAutoscaler",
            "PodDisruptionBudget",
            "Job",
        }
        assert docs["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"
        assert docs["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
        assert docs["Job"]["apiVersion"] == "batch/v1"
        assert all("namespace" not in doc["metadata"] for doc in docs.values()), "namespace-agnostic"

    def test_probes_hit_the_container_port(self, docs: dict[str, dict[str, Any]]) -> None:
        """readinessProbe /readyz and livenessProbe /healthz on the port the container listens on."""
        (container,) = self.pod_spec(docs, "Deployment")["containers"]
        (port,) = container["ports"]
        assert port["containerPort"] == DEFAULT_PORT
        for probe, path in (("readinessProbe", "/readyz"), ("livenessProbe", "/healthz")):
            get = container[probe]["httpGet"]
            assert get["path"] == path
            assert get["port"] in {port["containerPort"], port.get("name")}

    def test_resources_are_requested_and_limited(self, docs: dict[str, dict[str, Any]]) -> None:
        """CPU and memory requests and limits on the service and the Job."""
        for kind in ("Deployment", "Job"):
            for container in self.pod_spec(docs, kind)["containers"]:
                for bound in ("requests", "limits"):
                    assert {"cpu", "memory"} <= set(container["resources"][bound]), (kind, bound)

    def test_pods_never_migrate_and_read_config_and_secret(self, docs: dict[str, dict[str, Any]]) -> None:
        """ONECODE_AUTO_MIGRATE=false; envFrom the ConfigMap and Secret defined here."""
        (container,) = self.pod_spec(docs, "Deployment")["containers"]
        assert {"name": "ONECODE_AUTO_MIGRATE", "value": "false"} in container["env"]
        for kind in ("Deployment", "Job"):
            (container,) = self.pod_spec(docs, kind)["containers"]
            sources = container["envFrom"]
            assert {"configMapRef": {"name": docs["ConfigMap"]["metadata"]["name"]}} in sources
            assert {"secretRef": {"name": docs["Secret"]["metadata"]["name"]}} in sources

    def test_config_and_secret_keys_are_settings(self, docs: dict[str, dict[str, Any]]) -> None:
        """Every key is a variable the service reads; none is in both; the secrets are in the Secret."""
        config = set(docs["ConfigMap"]["data"])
        secret = set(docs["Secret"]["stringData"])
        known = settings_env_names()
        assert not (config | secret) - known, f"not read by the service: {(config | secret) - known}"
        assert not config & secret
        assert {"DATABASE_URL", "REDIS_URL", "ONECODE_MASTER_KEY"} <= secret

    def test_runs_non_root_on_a_read_only_root(self, docs: dict[str, dict[str, Any]]) -> None:
        """runAsNonRoot as the image's uid, read-only root, writable ONECODE_HOME and /tmp from emptyDirs."""
        uid = next(u for u in instruction(dockerfile_stages()[-1], "USER")).split(":")[0]
        home = docs["ConfigMap"]["data"]["ONECODE_HOME"]
        assert f"ONECODE_HOME={home}" in " ".join(instruction(dockerfile_stages()[-1], "ENV"))
        for kind in ("Deployment", "Job"):
            spec = self.pod_spec(docs, kind)
            assert spec["securityContext"]["runAsNonRoot"] is True
            assert str(spec["securityContext"]["runAsUser"]) == uid
            (container,) = spec["containers"]
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            empty_dirs = {volume["name"] for volume in spec["volumes"] if "emptyDir" in volume}
            mounted = {m["mountPath"] for m in container["volumeMounts"] if m["name"] in empty_dirs}
            assert {home, "/tmp"} <= mounted, kind

    def test_service_hpa_and_pdb_select_the_service_pods(self, docs: dict[str, dict[str, Any]]) -> None:
        """The Service and PDB select the Deployment's pods (not the Job's); the HPA scales it by name."""
        deployment = docs["Deployment"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        job_labels = docs["Job"]["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)
        service = docs["Service"]
        assert selects(service["spec"]["selector"], labels)
        assert not selects(service["spec"]["selector"], job_labels)
        (port,) = service["spec"]["ports"]
        assert port["targetPort"] in {DEFAULT_PORT, "http"}
        pdb = docs["PodDisruptionBudget"]
        assert selects(pdb["spec"]["selector"]["matchLabels"], labels)
        assert not selects(pdb["spec"]["selector"]["matchLabels"], job_labels)
        assert "minAvailable" in pdb["spec"] or "maxUnavailable" in pdb["spec"]
        target = docs["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
        assert target == {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "name": deployment["metadata"]["name"],
        }
        (metric,) = docs["HorizontalPodAutoscaler"]["spec"]["metrics"]
        assert metric["resource"]["name"] == "cpu"
        assert metric["resource"]["target"] == {"type": "Utilization", "averageUtilization": 70}

    def test_job_runs_migrate(self, docs: dict[str, dict[str, Any]]) -> None:
        """The Job runs `onecode migrate` (the image's entrypoint with the migrate argument) once."""
        spec = self.pod_spec(docs, "Job")
        (container,) = spec["containers"]
        assert [*container.get("command", []), *container["args"]][-1] == "migrate"
        assert "migrate" in cli_main.commands
        assert spec["restartPolicy"] in {"Never", "OnFailure"}
        assert container["image"] == self.pod_spec(docs, "Deployment")["containers"][0]["image"]

    def test_kustomization_lists_every_file(self) -> None:
        """kustomization.yaml's resources are exactly the other files of deploy/k8s."""
        kustomization = load_yaml(K8S / "kustomization.yaml")
        files = {path.name for path in K8S.iterdir() if path.name != "kustomization.yaml"}
        assert sorted(kustomization["resources"]) == sorted(files)

    @pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
    def test_kustomize_builds(self) -> None:
        """`kubectl kustomize deploy/k8s` renders (offline) with the image rewritten."""
        result = subprocess.run(
            ["kubectl", "kustomize", str(K8S)], capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        rendered = list(yaml.safe_load_all(result.stdout))
        assert len(rendered) == len(k8s_documents())
        images = [
            container["image"]
            for document in rendered
            if document["kind"] in {"Deployment", "Job"}
            for container in document["spec"]["template"]["spec"]["containers"]
        ]
        assert len(images) == 2
        assert all(not image.startswith("onecode:") for image in images), "the images entry rewrites both"


# --- Prometheus ----------------------------------------------------------------------------------------


class TestPrometheus:
    """Alert rules use only the service's metrics; the scrape config loads them and scrapes /metrics."""

    def test_the_expression_parser_finds_metric_names(self) -> None:
        """Guard for the helper: functions, keywords, grouping labels and matchers are not names."""
        expr = (
            'histogram_quantile(0.99, sum by (le) (rate(onecode_x_bucket{route="/a"}[5m] offset 1d)))'
            " > 0.25 and on (instance) up == 0 or vector(0)"
        )
        assert expr_metric_names(expr) == {"onecode_x_bucket", "up"}

    def test_rules_are_well_formed(self) -> None:
        """Each rule has a unique alert name, an expression, a severity and a summary."""
        rules = alert_rules()
        names = [rule["alert"] for rule in rules]
        assert len(names) == len(set(names))
        for rule in rules:
            assert rule["expr"].strip()
            assert rule["labels"]["severity"] in {"critical", "warning", "info"}
            assert rule["annotations"]["summary"]

    def test_every_metric_is_one_the_service_exports(self) -> None:
        """Series names in exprs start with onecode_, are in the issue's list and defined by the service."""
        used: set[str] = set()
        for rule in alert_rules():
            names = expr_metric_names(rule["expr"]) - PROMETHEUS_BUILTINS
            assert all(name.startswith("onecode_") for name in names), (rule["alert"], names)
            regex_names = set(re.findall(r"onecode_[a-z_]+", rule["expr"]))
            assert regex_names == names, rule["alert"]
            used |= {base_metric(name) for name in names}
        assert not used - KNOWN_METRICS, f"not in the issue's list: {used - KNOWN_METRICS}"
        assert not used - exported_metrics(), (
            f"not defined in service/metrics.py: {used - exported_metrics()}"
        )

    def test_the_runbook_names_only_exported_metrics(self) -> None:
        """deploy/README.md's metrics section names metrics that service/metrics.py defines."""
        text = (DEPLOY / "README.md").read_text()
        section = text[text.index("## Metrics and alerts") :]
        named = {base_metric(name) for name in re.findall(r"`(onecode_[a-z_]+)", section)}
        assert named
        assert not named - exported_metrics(), named - exported_metrics()

    def test_the_required_alerts_exist(self) -> None:
        """Latency, 5xx, engine errors, pool saturation, counterfeit and clone spikes are covered."""
        exprs = {rule["alert"]: rule["expr"] for rule in alert_rules()}
        latency = next(e for e in exprs.values() if "histogram_quantile(0.99" in e)
        assert 'route="/v1/scans"' in latency
        assert "> 0.25" in latency
        assert any('status=~"5.."' in e for e in exprs.values())
        assert any("onecode_engine_errors_total" in e for e in exprs.values())
        assert any("onecode_db_pool_waiting" in e for e in exprs.values())
        assert any('verdict="counterfeit"' in e for e in exprs.values())
        assert any('verdict="suspect_clone"' in e for e in exprs.values())

    def test_scrape_config_loads_the_rules_and_scrapes_metrics(self) -> None:
        """prometheus.yaml loads alerts.yaml and scrapes /metrics as the job the `up` alert names."""
        config = load_yaml(PROMETHEUS / "prometheus.yaml")
        assert "alerts.yaml" in config["rule_files"]
        (job,) = config["scrape_configs"]
        assert job["metrics_path"] == "/metrics"
        assert job["dns_sd_configs"][0]["port"] == DEFAULT_PORT
        assert any(f'up{{job="{job["job_name"]}"}}' in rule["expr"] for rule in alert_rules())

    @pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool is not installed")
    def test_promtool_accepts_the_files(self) -> None:
        """`promtool check config` (which checks the rule file too) passes."""
        result = subprocess.run(
            ["promtool", "check", "config", "prometheus.yaml"],
            cwd=PROMETHEUS,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr


# --- README ----------------------------------------------------------------------------------------------


class TestReadme:
    """deploy/README.md only shows `onecode` commands and options the CLI has."""

    def test_finds_the_commands(self) -> None:
        """Guard for the extractor: commands in every position are found, nested ones with both words."""
        found = {tuple(words[:2]) for _, words, _ in readme_commands()}
        assert ("keys", "rotate") in found  # after `run --rm --no-deps onecode` and after `-- onecode`
        assert ("brand", "create") in found  # at the start of a line
        assert any(words[:1] == ("backup",) for words in found)  # on a continuation line

    def test_every_command_exists(self) -> None:
        """Each `onecode <subcommand> [<subcommand>]` in a code block resolves in service.cli.main."""
        missing = sorted(
            {
                path
                for _, words, _ in readme_commands()
                for command, path in [resolve_command(words)]
                if not command
            }
        )
        assert not missing, f"not in the CLI: {missing}"

    def test_every_option_exists(self) -> None:
        """Each `--option` shown with a command is one of that command's options."""
        wrong = []
        for line, words, options in readme_commands():
            command, _ = resolve_command(words)
            if command is not None:
                wrong += [(line, option) for option in options if option not in option_names(command)]
        assert not wrong, wrong
