"""Settings from the environment, falling back to the endpoints a running `fleet up` wrote."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from contracts.events import Role
from streams.capacity import READ_MODEL_RETENTION_S
from streams.permissions import inbox_prefix

DEFAULT_DATA_DIR = ".fleet"
ENDPOINTS_FILE = "endpoints.json"

# Environment variable -> endpoints.json key. Each one, when set, points at an external server.
ENDPOINT_VARIABLES = {
    "FLEET_NATS_URL": "nats_url",
    "FLEET_VALKEY_URL": "valkey_url",
    "FLEET_GRAPH_URI": "graph_uri",
    "FLEET_LLM_BASE_URL": "llm_base_url",
    "FLEET_LLM_MODEL": "llm_model",
    "RAY_ADDRESS": "ray_address",
}


# The seeds' figures: how many tokens of read-model context each role is given (estimated: services/mesh/tokens.py).
DEFAULT_CONTEXT_BUDGET_TOKENS = 4096
SEED_CONTEXT_BUDGETS = dict.fromkeys(Role, DEFAULT_CONTEXT_BUDGET_TOKENS) | {Role.ARCHITECT: 8192}


class SettingsError(RuntimeError):
    """A setting is missing or malformed; the message says which and how to fix it."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    nats_url: str
    valkey_url: str | None = None
    graph_uri: str | None = None
    llm_base_url: str | None = None
    llm_model: str = "SmolLM2-135M-Instruct"
    llm_api_key: str | None = field(default=None, repr=False)
    ray_address: str | None = None
    llm_max_tokens: int = 2048
    # Tokens the model reads and writes per request (vLLM's --max-model-len): prompts are cut to fit it.
    llm_context_tokens: int = 8192
    # "json_schema" (OpenAI, vLLM) or "json_object" (llama.cpp's Python server): how to ask for JSON.
    llm_response_format: str = "json_schema"
    llm_timeout_s: float = 60.0
    # "off" asks a hybrid reasoning model (Qwen3 on vLLM) to answer without thinking first.
    llm_thinking: bool = True
    agent_concurrency: int = 16
    # What each agent's Ray actor asks Ray for. An actor waits on the LLM's HTTP answer: about 20 ms of
    # CPU for a turn of seconds, and a worker process of about 105 MB resident (measured on the embedded
    # mesh). The asks are what lets Ray spread actors over nodes and the autoscaler add one (docs/deploy.md).
    agent_actor_cpus: float = 0.05
    agent_actor_memory_mib: int = 128
    # Read models: graph names and key prefixes start with these, so several fleets can share a server.
    graph_name: str = "fleet"
    kv_prefix: str = "fleet"
    # How long the read models keep an aggregate after its latest event (FLEET_READ_MODEL_RETENTION_S).
    read_model_retention_s: float = READ_MODEL_RETENTION_S
    # Neo4j only (FLEET_GRAPH_URI=neo4j://... or bolt://...).
    graph_user: str = "neo4j"
    graph_password: str | None = field(default=None, repr=False)
    # Tokens of read-model context per role; the agents cut what the model's context cannot hold.
    context_budget_tokens: Mapping[Role, int] = field(default_factory=lambda: dict(SEED_CONTEXT_BUDGETS))
    # How long an agent waits for its context before writing without one.
    context_timeout_s: float = 3.0
    # /metrics and /healthz; 0 picks a free port (and logs it).
    metrics_port: int = 0
    # The monitor service's dashboard.
    monitor_port: int = 8470
    # NATS user of this process (each service has its own, with least-privilege permissions); none: no auth.
    nats_user: str | None = None
    nats_password: str | None = field(default=None, repr=False)

    @property
    def inbox_prefix(self) -> str:
        """Where replies to this process come: under its user's own prefix, the only inboxes it may read."""
        return inbox_prefix(self.nats_user) if self.nats_user else "_INBOX"

    @property
    def nats_servers(self) -> list[str]:
        return nats_servers(self.nats_url)

    def nats_options(self) -> dict[str, str]:
        """Credentials and inbox prefix for nats.connect; nothing when NATS runs without auth."""
        if not self.nats_user:
            return {}
        return {"user": self.nats_user, "password": self.nats_password or "", "inbox_prefix": self.inbox_prefix}

    def require_read_models(self) -> tuple[str, str]:
        if not self.graph_uri or not self.valkey_url:
            raise SettingsError("no read-model stores: set FLEET_GRAPH_URI and FLEET_VALKEY_URL, or run `fleet up`")
        return self.graph_uri, self.valkey_url

    def require_llm(self) -> str:
        if not self.llm_base_url:
            raise SettingsError("no LLM server: set FLEET_LLM_BASE_URL or run `fleet up`")
        return self.llm_base_url


def data_dir_from(env: Mapping[str, str]) -> Path:
    return Path(env.get("FLEET_DATA_DIR", DEFAULT_DATA_DIR)).resolve()


def read_endpoints(data_dir: Path) -> dict[str, str]:
    path = data_dir / ENDPOINTS_FILE
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _number[T: (int, float)](env: Mapping[str, str], name: str, kind: type[T], default: T) -> T:
    raw = env.get(name)
    if raw is None:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise SettingsError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if value <= 0:
        raise SettingsError(f"{name}={raw!r} must be positive")
    return value


RESPONSE_FORMATS = ("json_schema", "json_object")


def _choice(env: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = env.get(name, default)
    if value not in allowed:
        raise SettingsError(f"{name}={value!r} must be one of {', '.join(allowed)}")
    return value


def context_budgets_from(env: Mapping[str, str]) -> dict[Role, int]:
    """FLEET_CONTEXT_BUDGET_TOKENS: a number for every role, ROLE=number for one, each once: `4096,ARCHITECT=8192`."""
    raw = env.get("FLEET_CONTEXT_BUDGET_TOKENS")
    budgets = dict(SEED_CONTEXT_BUDGETS)
    if raw is None:
        return budgets
    every, named = None, {}
    for entry in filter(None, (e.strip() for e in raw.split(","))):
        name, equals, number = (part.strip() for part in entry.rpartition("="))
        if equals and not name:
            # `=5` is a slip, not "every role": the bare number says that, so a missing name is refused.
            raise SettingsError(f"FLEET_CONTEXT_BUDGET_TOKENS={raw!r}: {entry!r} names no role; "
                                f"roles are {', '.join(Role)}")
        if name and name not in Role.__members__:
            raise SettingsError(f"FLEET_CONTEXT_BUDGET_TOKENS={raw!r}: no role {name!r}; "
                                f"roles are {', '.join(Role)}")
        # ASCII digits only: str.isdigit also takes '²' and other digits int() refuses.
        if not number.isascii() or not number.isdigit() or int(number) <= 0:
            raise SettingsError(f"FLEET_CONTEXT_BUDGET_TOKENS={raw!r}: {entry!r} is not a positive number of "
                                f"tokens (a number for every role, ROLE=number for one: 4096,ARCHITECT=8192)")
        # Given twice, one of the two figures is a mistake, and which one cannot be guessed.
        if (Role[name] in named) if name else (every is not None):
            whose = f"{name}'s" if name else "every role's"
            raise SettingsError(f"FLEET_CONTEXT_BUDGET_TOKENS={raw!r}: {entry!r} sets {whose} budget a second time")
        if name:
            named[Role[name]] = int(number)
        else:
            every = int(number)
    if every is not None:
        budgets = dict.fromkeys(Role, every)
    return budgets | named


def port_from(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) > 65535:
        raise SettingsError(f"{name}={raw!r} must be a port number from 0 to 65535 (0: any free port)")
    return int(raw)


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """`NAME_FILE` (a mounted Secret) wins over `NAME`; neither is ever logged."""
    if path := env.get(f"{name}_FILE"):
        return Path(path).read_text().strip()
    return env.get(name)


def _nats_credentials(env: Mapping[str, str], endpoints: Mapping[str, str]) -> tuple[str | None, str | None]:
    """FLEET_NATS_USER with FLEET_NATS_PASSWORD[_FILE]; else the operator's, from a `fleet up --auth`."""
    if user := env.get("FLEET_NATS_USER"):
        password = _secret(env, "FLEET_NATS_PASSWORD")
        if password is None:
            raise SettingsError(f"FLEET_NATS_USER={user!r} needs FLEET_NATS_PASSWORD or FLEET_NATS_PASSWORD_FILE")
        return user, password
    if (user := endpoints.get("nats_user")) and (path := endpoints.get("nats_password_file")):
        return user, Path(path).read_text().strip()
    return None, None


def nats_servers(url: str) -> list[str]:
    """FLEET_NATS_URL may list a cluster's servers, comma-separated (as the Go client and the nats CLI take them):
    a client that loses one reconnects to another."""
    servers = [server.strip() for server in url.split(",") if server.strip()]
    if not servers:
        raise SettingsError(f"FLEET_NATS_URL={url!r} names no server; e.g. nats://nats:4222 or "
                            "nats://a:4222,nats://b:4222,nats://c:4222")
    return servers


READ_MODEL_RETENTION_VARIABLE = "FLEET_READ_MODEL_RETENTION_S"


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Environment first, then `<data dir>/endpoints.json`; NATS is the one required endpoint."""
    env = os.environ if env is None else env
    data_dir = data_dir_from(env)
    endpoints = read_endpoints(data_dir)
    resolved = {key: env.get(var) or endpoints.get(key) for var, key in ENDPOINT_VARIABLES.items()}
    if not resolved["nats_url"]:
        raise SettingsError(
            f"no NATS server: set FLEET_NATS_URL, or start the embedded stack with `fleet up` "
            f"(looked for {data_dir / ENDPOINTS_FILE})"
        )
    nats_user, nats_password = _nats_credentials(env, endpoints)
    return Settings(
        data_dir=data_dir,
        nats_user=nats_user,
        nats_password=nats_password,
        nats_url=resolved["nats_url"],
        valkey_url=resolved["valkey_url"],
        graph_uri=resolved["graph_uri"],
        llm_base_url=resolved["llm_base_url"],
        llm_model=resolved["llm_model"] or Settings.llm_model,
        llm_api_key=_secret(env, "FLEET_LLM_API_KEY"),
        ray_address=resolved["ray_address"],
        llm_max_tokens=_number(env, "FLEET_LLM_MAX_TOKENS", int, Settings.llm_max_tokens),
        llm_context_tokens=_number(env, "FLEET_LLM_CONTEXT_TOKENS", int, Settings.llm_context_tokens),
        llm_response_format=_choice(env, "FLEET_LLM_RESPONSE_FORMAT", RESPONSE_FORMATS, Settings.llm_response_format),
        llm_timeout_s=_number(env, "FLEET_LLM_TIMEOUT_S", float, Settings.llm_timeout_s),
        llm_thinking=_choice(env, "FLEET_LLM_THINKING", ("on", "off"), "on") == "on",
        agent_concurrency=_number(env, "FLEET_AGENT_CONCURRENCY", int, Settings.agent_concurrency),
        agent_actor_cpus=_number(env, "FLEET_AGENT_ACTOR_CPUS", float, Settings.agent_actor_cpus),
        agent_actor_memory_mib=_number(env, "FLEET_AGENT_ACTOR_MEMORY_MIB", int, Settings.agent_actor_memory_mib),
        graph_name=env.get("FLEET_GRAPH_NAME", Settings.graph_name),
        kv_prefix=env.get("FLEET_KV_PREFIX", Settings.kv_prefix),
        read_model_retention_s=_number(env, READ_MODEL_RETENTION_VARIABLE, float, Settings.read_model_retention_s),
        graph_user=env.get("FLEET_GRAPH_USER", Settings.graph_user),
        graph_password=_secret(env, "FLEET_GRAPH_PASSWORD"),
        context_budget_tokens=context_budgets_from(env),
        context_timeout_s=_number(env, "FLEET_CONTEXT_TIMEOUT_S", float, Settings.context_timeout_s),
        metrics_port=port_from(env, "FLEET_METRICS_PORT", Settings.metrics_port),
        monitor_port=port_from(env, "FLEET_MONITOR_PORT", Settings.monitor_port),
    )
