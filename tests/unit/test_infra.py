"""The production deployment files in infra/ checked against the code, so neither can
drift from the other unnoticed: settings names, commands, brokers, ports, the proxy's
routes and sign-in, the image, the secrets template and the runbook's commands.

Nothing here starts a container: the files are parsed (PyYAML for the Compose file, a
small reader for the Caddyfile and the Dockerfile) and compared with svmon's own code.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from svmon.cli import main
from svmon.settings import Settings
from svmon.streams.topics import topic_configs

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
COMPOSE_PATH = INFRA / "compose.yaml"


# ------------------------------------------------------------------ readers


def load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_PATH.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict)
    return data


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines as Compose reads them (quotes removed, comments skipped)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        out[key.strip()] = value
    return out


# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, $NAME, $$
_VAR = re.compile(r"\$(?:(?P<escaped>\$)|\{(?P<name>[A-Za-z_]\w*)(?:(?P<op>:?[-?+])"
                  r"(?P<arg>[^}]*))?\}|(?P<bare>[A-Za-z_]\w*))")


@dataclass(frozen=True)
class Ref:
    name: str
    op: str | None  # None for ${NAME} or $NAME

    @property
    def has_default(self) -> bool:
        return self.op in ("-", ":-", "+", ":+")


def refs(text: str) -> list[Ref]:
    return [Ref(m["name"] or m["bare"], m["op"]) for m in _VAR.finditer(text)
            if not m["escaped"]]


def interpolate(text: str, env: dict[str, str]) -> str:
    """Compose's substitution of ${...} in one value."""

    def one(m: re.Match[str]) -> str:
        if m["escaped"]:
            return "$"
        name, op, arg = m["name"] or m["bare"], m["op"], m["arg"] or ""
        have, value = name in env, env.get(name, "")
        if op == ":-":
            return value if value else arg
        if op == "-":
            return value if have else arg
        if op in (":?", "?") and (not have or (op == ":?" and not value)):
            raise KeyError(f"{name} is required ({arg})")
        if op == ":+":
            return arg if value else ""
        if op == "+":
            return arg if have else ""
        return value

    return _VAR.sub(one, text)


def strings(node: Any) -> Iterator[str]:
    if isinstance(node, str):
        yield node
    elif isinstance(node, dict):
        for k, v in node.items():
            yield from strings(k)
            yield from strings(v)
    elif isinstance(node, list):
        for v in node:
            yield from strings(v)


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):  # KEY=VALUE list form
        env = dict(item.split("=", 1) for item in env)
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


def resolved_environment(service: dict[str, Any], example: dict[str, str]) -> dict[str, str]:
    """The service's environment as a container would see it, with infra/.env made from
    .env.example but its required secrets filled with stand-ins."""
    dotenv = {k: v or f"stand-in-{k.lower()}" for k, v in example.items()}
    return {k: interpolate(v, dotenv) for k, v in environment(service).items()}


def is_svmon_service(service: dict[str, Any]) -> bool:
    return "build" in service


def svmon_invocations(service: dict[str, Any]) -> list[list[str]]:
    """The svmon command lines a service runs: ["svmon", ...] or a shell script of
    them joined by && (the init step)."""
    command = service.get("command")
    if command is None:
        return []
    if isinstance(command, str):
        command = shlex.split(command)
    if command[0] in ("sh", "/bin/sh", "bash") and command[1] in ("-c", "-ec", "-euc"):
        parts = re.split(r"&&|;|\n", command[2])
        return [shlex.split(p) for p in parts if p.strip()]
    return [list(command)]


def resolve_command(args: list[str]) -> tuple[click.Command, list[str]]:
    """The click command that `svmon ARGS` runs, and the arguments left for it."""
    cmd: click.Command = main
    rest = list(args)
    while isinstance(cmd, click.Group) and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = cmd.commands.get(name)
        assert sub is not None, f"`svmon {' '.join(args)}`: no command {name!r}"
        cmd = sub
    assert not isinstance(cmd, click.Group), f"`svmon {' '.join(args)}` names a group only"
    return cmd, rest


def check_options(cmd: click.Command, rest: list[str], where: str) -> None:
    known = {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)} | {"--help"}
    for token in rest:
        if token.startswith("--"):
            assert token.split("=", 1)[0] in known, \
                f"{where}: `{cmd.name}` has no option {token} (it has {sorted(known)})"


def kafka_properties(service: dict[str, Any]) -> dict[str, str]:
    """server.properties as the apache/kafka image derives them from KAFKA_* variables:
    "___" -> "-", "__" -> "_", "_" -> "."."""
    props = {}
    for key, value in environment(service).items():
        if not key.startswith("KAFKA_"):
            continue
        name = re.sub(r"_{1,3}", lambda m: {1: ".", 2: "_", 3: "-"}[len(m[0])],
                      key[len("KAFKA_"):].lower())
        props[name] = value
    return props


@dataclass
class Block:
    head: str
    children: list[Block] = field(default_factory=list)

    @property
    def directive(self) -> str:
        return self.head.split()[0] if self.head else ""

    def walk(self, ancestors: tuple[Block, ...] = ()) -> Iterator[tuple[Block, tuple[Block, ...]]]:
        for child in self.children:
            yield child, (*ancestors, self)
            yield from child.walk((*ancestors, self))


def parse_caddyfile(text: str) -> Block:
    """Directives and their blocks; enough of the Caddyfile syntax for these checks."""
    root = Block("")
    stack = [root]
    for raw in text.splitlines():
        line = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if not line:
            continue
        if line == "}":
            stack.pop()
            assert stack, "Caddyfile: unbalanced }"
            continue
        opens = line.endswith("{")
        block = Block(line[:-1].strip() if opens else line)
        stack[-1].children.append(block)
        if opens:
            stack.append(block)
    assert len(stack) == 1, "Caddyfile: unclosed {"
    return root


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    out = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


# ------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose()


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


@pytest.fixture(scope="module")
def example() -> dict[str, str]:
    return read_env_file(INFRA / ".env.example")


@pytest.fixture(scope="module")
def brokers(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {n: s for n, s in services.items()
             if str(s.get("image", "")).startswith("apache/kafka")}
    assert len(found) == 3, f"expected three Kafka nodes, found {sorted(found)}"
    return found


def svmon_services(services: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    found = {n: s for n, s in services.items() if is_svmon_service(s)}
    assert found, "no service builds the svmon image"
    return found


def service_running(services: dict[str, dict[str, Any]], command: str) -> tuple[str, dict]:
    hits = [(n, s) for n, s in svmon_services(services).items()
            if any(inv[1:2] == [command] for inv in svmon_invocations(s))]
    assert len(hits) == 1, f"expected one service running `svmon {command}`, got {hits}"
    return hits[0]


# ------------------------------------------------------------------ settings


def test_every_svmon_variable_in_compose_is_a_setting(
        services: dict[str, dict[str, Any]]) -> None:
    known = set(Settings().to_env())
    for name, service in services.items():
        for key in environment(service):
            if key.startswith("SVMON_") or key == "DATABASE_URL":
                assert key in known, f"{name}: {key} is not read by Settings.from_env"


def test_to_env_is_what_from_env_reads() -> None:
    """The list the previous test trusts: every name to_env writes is read back."""
    odd = Settings(broker_url="kafka://a:1;kafka://b:2", database_url="postgresql://x/y",
                   data_dir=Path("d"), app_id="g", topic_prefix="p", partitions=7,
                   tick_seconds=5.0, catalogue_files=("c.csv",), log_level="debug",
                   smtp_url="smtp://h:25", smtp_from="f@x", smtp_cafile="ca.pem",
                   webhook_secret="s", dashboard_url="https://d/c", escalate_hours=3.0,
                   dispatch_lease_seconds=9.0, fetch_max_wait_ms=55, api_host="0.0.0.0",
                   api_port=81, redeliver_seconds=4.0, dashboard_port=82,
                   replication_factor=3, min_insync_replicas=2, batch_writer="thread",
                   token_last_used_seconds=6.0, check_partitions=False)
    assert Settings.from_env(odd.to_env()) == odd


def test_an_unknown_batch_writer_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="SVMON_BATCH_WRITER must be one of process, thread"):
        Settings.from_env({"SVMON_BATCH_WRITER": "fork"})


def test_services_read_a_replicated_three_broker_setup(
        services: dict[str, dict[str, Any]], brokers: dict[str, dict[str, Any]],
        example: dict[str, str]) -> None:
    advertised = set()
    for node in brokers.values():
        for listener in kafka_properties(node)["advertised.listeners"].split(","):
            if not listener.startswith("CONTROLLER:"):
                advertised.add(listener.split("://", 1)[1])
    for name, service in svmon_services(services).items():
        s = Settings.from_env(resolved_environment(service, example))
        assert s.replication_factor == 3, name
        assert s.min_insync_replicas == 2, name
        assert set(s.bootstrap.split(",")) == advertised and len(advertised) == 3, \
            f"{name}: bootstrap {s.bootstrap} is not the three brokers {sorted(advertised)}"
        assert s.database_url.startswith("postgresql://"), name
        assert "@postgres:5432/" in s.database_url and "postgres" in services, name
    api_name, api = service_running(services, "api")
    assert Settings.from_env(resolved_environment(api, example)).api_host == "0.0.0.0", \
        f"{api_name} must listen beyond its own container for the proxy"


def test_partitions_leave_room_for_the_workers(
        services: dict[str, dict[str, Any]], example: dict[str, str]) -> None:
    name, worker = service_running(services, "worker")
    replicas = str(worker.get("deploy", {}).get("replicas", ""))
    assert any(r.name == "SVMON_WORKERS" for r in refs(replicas)), \
        f"{name}: deploy.replicas should come from SVMON_WORKERS (got {replicas!r})"
    n_workers = int(interpolate(replicas, {}))
    partitions = Settings.from_env(resolved_environment(worker, example)).partitions
    assert 1 <= n_workers <= partitions, "more default workers than partitions would idle"
    assert partitions % n_workers == 0, "default workers should share partitions evenly"
    assert "container_name" not in worker, "a fixed container name cannot be scaled"


# ------------------------------------------------------------------ brokers


def test_brokers_form_one_kraft_cluster(brokers: dict[str, dict[str, Any]],
                                        compose: dict[str, Any]) -> None:
    props = {name: kafka_properties(node) for name, node in brokers.items()}
    voters = {p["controller.quorum.voters"] for p in props.values()}
    assert len(voters) == 1, f"the nodes disagree on the quorum voters: {voters}"
    cluster_ids = {environment(node).get("CLUSTER_ID") for node in brokers.values()}
    assert len(cluster_ids) == 1 and None not in cluster_ids, \
        f"the nodes disagree on the cluster id: {cluster_ids}"
    node_ids = {p["node.id"] for p in props.values()}
    assert len(node_ids) == 3, f"node ids must differ: {node_ids}"
    for tag in {n.get("image") for n in brokers.values()}:
        assert re.fullmatch(r"apache/kafka:\d+\.\d+\.\d+", str(tag)), f"unpinned {tag}"

    by_id = {p["node.id"]: name for name, p in props.items()}
    voter_list = voters.pop().split(",")
    assert len(voter_list) == 3
    for voter in voter_list:
        node_id, _, hostport = voter.partition("@")
        host, _, port = hostport.rpartition(":")
        name = by_id.get(node_id)
        assert name is not None, f"voter {voter} is not one of the nodes"
        p = props[name]
        assert "controller" in p["process.roles"].split(","), f"{name} is a voter, not a controller"
        assert host in (name, brokers[name].get("hostname")), f"voter {voter} is not {name}"
        assert f"CONTROLLER://:{port}" in p["listeners"].split(","), \
            f"{name} does not listen for the controller quorum on {port}"

    volumes = set()
    for name, p in props.items():
        assert "broker" in p["process.roles"].split(","), name
        advertised = p["advertised.listeners"].split("://", 1)[1]
        assert advertised.rsplit(":", 1)[0] in (name, brokers[name].get("hostname")), name
        assert p["default.replication.factor"] == "3", name
        assert p["min.insync.replicas"] == "2", name
        assert p["offsets.topic.replication.factor"] == "3", name
        assert p["transaction.state.log.replication.factor"] == "3", name
        assert p["transaction.state.log.min.isr"] == "2", name
        assert p["unclean.leader.election.enable"] == "false", name
        assert p["auto.create.topics.enable"] == "false", name
        mounts = {m.split(":")[1]: m.split(":")[0] for m in brokers[name].get("volumes", [])}
        assert p["log.dirs"] in mounts, f"{name}: log.dirs is not on a volume"
        source = mounts[p["log.dirs"]]
        assert source in (compose.get("volumes") or {}), f"{name}: {source} is not a named volume"
        volumes.add(source)
        assert "healthcheck" in brokers[name], f"{name} has no health check"
    assert len(volumes) == 3, "each node needs its own volume"


def test_project_topics_follow_the_runbook() -> None:
    """svmon.streams.topics creates what RUNBOOK.md promises: contract-events kept forever and
    never compacted; min.insync.replicas only where there are replicas."""
    prod = Settings(replication_factor=3, min_insync_replicas=2)
    events = topic_configs(prod, prod.events_topic)
    assert events["retention.ms"] == "-1" and events["retention.bytes"] == "-1"
    assert "compact" not in events.get("cleanup.policy", "")
    assert events["min.insync.replicas"] == "2"
    alerts = topic_configs(prod, prod.alerts_topic)
    assert "retention.ms" not in alerts and alerts["min.insync.replicas"] == "2"
    assert "min.insync.replicas" not in topic_configs(Settings(), Settings().events_topic)
    runbook = (INFRA / "RUNBOOK.md").read_text()
    for key, value in events.items():
        if key.startswith("retention"):
            assert f"{key}={value}" in runbook, f"RUNBOOK.md does not mention {key}={value}"


# ------------------------------------------------------------------ services


def test_every_command_is_an_svmon_command(services: dict[str, dict[str, Any]]) -> None:
    used = set()
    for name, service in svmon_services(services).items():
        invocations = svmon_invocations(service)
        assert invocations, f"{name} runs the image's default command"
        for inv in invocations:
            assert inv[0] == "svmon", f"{name}: {inv} is not an svmon command"
            cmd, rest = resolve_command(inv[1:])
            check_options(cmd, rest, f"compose service {name}")
            used.add(inv[1])
    assert {"init-db", "topics", "worker", "api", "dispatch", "dashboards"} <= used


def test_init_runs_before_the_workers(services: dict[str, dict[str, Any]]) -> None:
    init_name = next(n for n, s in svmon_services(services).items()
                     if ["svmon", "init-db"] in svmon_invocations(s))
    assert ["svmon", "topics"] in svmon_invocations(services[init_name]), \
        f"{init_name} must create the topics as well as the schema"
    assert services[init_name].get("restart") in ("no", None), "init is a one-shot"
    for command in ("worker", "api", "dispatch", "dashboards"):
        name, service = service_running(services, command)
        needs = service.get("depends_on") or {}
        assert needs.get(init_name, {}).get("condition") == "service_completed_successfully", \
            f"{name} must wait for {init_name}"
    _, worker = service_running(services, "worker")
    for broker in (n for n, s in services.items() if "kafka" in str(s.get("image", ""))):
        assert worker["depends_on"].get(broker, {}).get("condition") == "service_healthy", \
            f"the workers must wait for {broker}"
        assert services[init_name]["depends_on"][broker]["condition"] == "service_healthy"
    for name, service in services.items():
        for dep, how in (service.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown {dep}"
            if how.get("condition") == "service_healthy":
                assert "healthcheck" in services[dep], f"{dep} has no health check"


def test_postgres_is_pinned_persistent_and_secret(services: dict[str, dict[str, Any]],
                                                 compose: dict[str, Any]) -> None:
    pg = services["postgres"]
    assert re.fullmatch(r"postgres:\d+(\.\d+)?(-\w+)?", pg["image"]), pg["image"]
    assert "healthcheck" in pg
    sources = [v.split(":")[0] for v in pg.get("volumes", [])]
    assert any(s in (compose.get("volumes") or {}) for s in sources), "no named volume"
    password = environment(pg)["POSTGRES_PASSWORD"]
    assert refs(password) and not refs(password)[0].has_default, \
        "the password must come from the environment, without a default"


def test_only_the_proxy_publishes_ports(services: dict[str, dict[str, Any]]) -> None:
    published = {n for n, s in services.items() if s.get("ports")}
    assert published == {"proxy"}, f"services with published ports: {sorted(published)}"
    assert str(services["proxy"]["image"]).startswith("caddy:")
    assert any("443" in str(p) for p in services["proxy"]["ports"])
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name} bypasses the proxy"


def test_secrets_come_from_the_environment(services: dict[str, dict[str, Any]]) -> None:
    secret = re.compile(r"PASSWORD|SECRET|SMTP_URL|HASH|CLUSTER_ID|DATABASE_URL")
    for name, service in services.items():
        for key, value in environment(service).items():
            if secret.search(key):
                assert refs(value), f"{name}: {key} is written into compose.yaml"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--no-index", "infra/.env"],
                             cwd=ROOT, check=False).returncode == 0
    assert ignored, "infra/.env (the deployment's secrets) must be git-ignored"


def test_env_example_names_every_required_variable(compose: dict[str, Any],
                                                   example: dict[str, str]) -> None:
    raw = COMPOSE_PATH.read_text()
    required = {r.name for r in refs(raw) if not r.has_default}
    assert required, "compose.yaml should take its secrets from the environment"
    missing = required - set(example)
    assert not missing, f".env.example lacks {sorted(missing)}"
    for value in strings(compose):  # every substitution resolves with .env.example
        interpolate(value, {k: v or "x" for k, v in example.items()})
    for key, value in example.items():
        if re.search(r"PASSWORD|SECRET|HASH|CLUSTER_ID", key):
            assert value == "", f".env.example must not carry a value for {key}"


# ------------------------------------------------------------------ proxy


def _port(services: dict[str, dict[str, Any]], command: str, attr: str) -> tuple[str, int]:
    name, service = service_running(services, command)
    example = read_env_file(INFRA / ".env.example")
    return name, getattr(Settings.from_env(resolved_environment(service, example)), attr)


def test_proxy_signs_in_dashboards_and_passes_the_api_through(
        services: dict[str, dict[str, Any]]) -> None:
    text = (INFRA / "Caddyfile").read_text()
    root = parse_caddyfile(text)
    api_name, api_port = _port(services, "api", "api_port")
    dash_name, dash_port = _port(services, "dashboards", "dashboard_port")
    auth = ("basic_auth", "basicauth", "forward_auth")

    proxies = [(b, a) for b, a in root.walk() if b.directive == "reverse_proxy"]
    to_api = [(b, a) for b, a in proxies if b.head.split()[1:] == [f"{api_name}:{api_port}"]]
    to_dash = [(b, a) for b, a in proxies if b.head.split()[1:] == [f"{dash_name}:{dash_port}"]]
    assert len(to_api) == 1, f"expected one reverse_proxy {api_name}:{api_port}"
    assert len(to_dash) == 1, f"expected one reverse_proxy {dash_name}:{dash_port}"
    assert len(proxies) == 2, "nothing else should be proxied"

    _, api_ancestors = to_api[0]
    assert api_ancestors[-1].head == "handle /v1/*", \
        "the API must be reached by `handle /v1/*` (path kept, unlike handle_path)"
    for block in api_ancestors:
        assert not any(c.directive in auth for c in block.children), \
            "the proxy must not ask API clients for a sign-in (bearer tokens are the API's)"

    _, dash_ancestors = to_dash[0]
    siblings = [c.directive for c in dash_ancestors[-1].children]
    signed_in = [i for i, d in enumerate(siblings) if d in auth]
    assert signed_in and signed_in[0] < siblings.index("reverse_proxy"), \
        "the dashboards must be behind a sign-in, before the proxying"
    assert dash_ancestors[-2].head == "handle", "the dashboards are the catch-all route"

    assert "handle_path" not in text and "strip_prefix" not in text
    assert not re.search(r"(header_up|request_header)\s+-?Authorization", text), \
        "the Authorization header must reach the API unchanged"
    placeholders = set(re.findall(r"\{\$(\w+)\}", text))
    given = set(environment(services["proxy"]))
    assert placeholders <= given, f"the proxy lacks {sorted(placeholders - given)}"
    assert "./Caddyfile:/etc/caddy/Caddyfile:ro" in services["proxy"]["volumes"]


def test_health_checks_use_the_configured_ports(services: dict[str, dict[str, Any]]) -> None:
    for command, attr in (("api", "api_port"), ("dashboards", "dashboard_port")):
        name, port = _port(services, command, attr)
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/" in check, f"{name}'s health check is not on {port}"


# ------------------------------------------------------------------ image


def test_dockerfile_builds_from_the_repository_and_drops_root(
        services: dict[str, dict[str, Any]]) -> None:
    dockerfile = INFRA / "Dockerfile"
    for name, service in svmon_services(services).items():
        build = service["build"]
        assert (COMPOSE_PATH.parent / build["context"]).resolve() == ROOT, name
        assert (ROOT / build["dockerfile"]).resolve() == dockerfile, name
    steps = dockerfile_instructions(dockerfile.read_text())
    froms = [i for i, (w, _) in enumerate(steps) if w == "FROM"]
    final = steps[froms[-1]:]
    assert final[0][1].split()[0] == "python:3.11-slim"
    users = [arg for w, arg in final if w == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as root"
    copied = []
    for word, arg in steps:
        if word == "COPY" and "--from=" not in arg:
            args = [a for a in shlex.split(arg) if not a.startswith("--")]
            for src in args[:-1]:
                assert list(ROOT.glob(src.rstrip("/"))), f"COPY {src}: not in the repository"
                copied.append(src.rstrip("/"))
    installs = " ".join(arg for w, arg in steps if w == "RUN" and "pip" in arg)
    assert "[test]" not in installs and "pip install" in installs

    allowed = [ln[1:].rstrip("/") for ln in
               (INFRA / "Dockerfile.dockerignore").read_text().splitlines()
               if ln.startswith("!")]
    for src in copied:
        assert any(fnmatch.fnmatch(src, p) or src == p for p in allowed), \
            f"COPY {src} is excluded by Dockerfile.dockerignore"

    _, dash = service_running(services, "dashboards")
    inv = svmon_invocations(dash)[0]
    folder = inv[inv.index("--notebooks") + 1]
    assert any(w == "COPY" and "notebooks" in a and a.split()[-1].rstrip("/") == folder
               for w, a in final), f"the image does not put the notebooks in {folder}"


def test_dashboards_command_serves_voila_locked_down(monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    seen: dict[str, Any] = {}

    def fake_exec(file: str, argv: list[str], env: dict[str, str]) -> None:
        seen.update(file=file, argv=argv, env=env)

    monkeypatch.setattr("os.execvpe", fake_exec)
    result = CliRunner().invoke(main, ["dashboards", "--ip", "0.0.0.0", "--notebooks",
                                       str(ROOT / "notebooks")],
                                env={"SVMON_DASHBOARD_PORT": "8877",
                                     "DATABASE_URL": "postgresql://u:p@db:5432/svmon"})
    assert result.exit_code == 0, result.output
    argv = seen["argv"]
    # Voila with the contents API removed and template paths checked (voila_server.py)
    assert argv[1:3] == ["-m", "svmon.cli.voila_server"] and str(ROOT / "notebooks") in argv
    for flag in ("--Voila.ip=0.0.0.0", "--port=8877", "--show_tracebacks=False",
                 "--strip_sources=True", "--VoilaConfiguration.file_denylist=['.*']",
                 "--ContentsManager.hide_globs=*"):
        assert flag in argv, flag
    assert seen["env"]["DATABASE_URL"] == "postgresql://u:p@db:5432/svmon"


# ------------------------------------------------------------------ runbook


def runbook_commands(text: str) -> Iterator[list[str]]:
    """`svmon ...` command lines in the runbook's code blocks and inline code."""
    fenced = re.findall(r"```[a-z]*\n(.*?)```", text, re.S)
    prose = re.sub(r"```[a-z]*\n.*?```", "", text, flags=re.S)
    pieces = [re.sub(r"\s#\s.*$", "", line) for block in fenced for line in block.splitlines()]
    pieces += re.findall(r"`([^`\n]+)`", prose)
    for piece in pieces:
        for m in re.finditer(r"(?:^|(?<=\s))svmon\s+([a-z][\w-]*.*)$", piece):
            words = []
            for token in shlex.split(m[1]):
                if token in ("&&", "||", "|", ";", ">", "<") or token.startswith((">", "#")):
                    break
                words.append(token)
            yield words


def test_runbook_commands_exist() -> None:
    text = (INFRA / "RUNBOOK.md").read_text()
    seen = set()
    for words in runbook_commands(text):
        cmd, rest = resolve_command(words)
        check_options(cmd, rest, "RUNBOOK.md")
        seen.add(words[0])
    for needed in ("init-db", "topics", "token", "replay", "worker", "api", "intake",
                   "dispatch", "dashboards"):
        assert needed in seen, f"RUNBOOK.md never shows `svmon {needed}`"
    assert "svmon init-db` applies pending schema migrations" in text
    assert "--verify" in text and "pg_restore" in text and "pg_dump" in text
