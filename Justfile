# Recipes run inside the locked environment; `./dev <recipe>` installs it first on a fresh machine.
set dotenv-load := false

export RAY_AUTH_MODE := "disabled"
export RAY_USAGE_STATS_ENABLED := "0"
# Recipes run under `uv run`; Ray must not start its workers with `uv run` too (services/embedded/stack.py).
export RAY_ENABLE_UV_RUN_RUNTIME_ENV := "0"

# List the recipes.
default:
    @just --list

# Start the embedded mesh (NATS, Redis+FalkorDB, llama.cpp, Ray) and every service, until Ctrl-C.
up *ARGS:
    uv run fleet up {{ARGS}}

# The mesh as production runs it, on this machine: 3 clustered nats-servers (R3), 2 replicas of every service, a Ray head and 2 workers.
cluster *ARGS:
    uv run fleet up --cluster {{ARGS}}

# Any `fleet` command, e.g. `./dev fleet plan approve docs/examples/plan.json --wait`.
fleet *ARGS:
    uv run fleet {{ARGS}}

# Publish a sample plan approval and follow each deliberation to its winner.
demo *ARGS:
    uv run fleet demo {{ARGS}}

# The whole suite: unit, contract, integration and end-to-end tests on real servers.
test *ARGS:
    uv run pytest -ra {{ARGS}}

# Only the tests that need no server.
test-unit *ARGS:
    uv run pytest -ra tests/unit {{ARGS}}

# Regenerate what is derived from the contracts: JSON Schemas, the event catalog and the AsyncAPI 3.0
# document under docs/contracts, and the NATS users and permissions in k8s/base/nats/auth.conf.
contracts:
    uv run fleet contracts export --out docs/contracts
    uv run fleet nats auth --out k8s/base/nats/auth.conf

# The Kubernetes tree, with no cluster: render each overlay, validate, scan (checkov), lint, cross-check with the code.
k8s-check *ARGS:
    uv run pytest -ra tests/deploy {{ARGS}}

# Benchmarks (all, or those named): a table, and JSON under bench/results/. See bench/README.md.
bench *ARGS:
    uv run python -m bench {{ARGS}}

# Fault runs: plan approvals through each injected fault (services killed, NATS, the LLM, the stores restarted),
# then the invariants as a table, and JSON under bench/results/. See docs/reliability.md.
chaos *ARGS:
    uv run python -m tests.chaos {{ARGS}}

# The evaluation set (eval/approvals.toml) through the mesh: completion, valid JSON, distinct proposals, key
# terms, winner against a single agent, time and tokens, per role; JSON under eval/results/. See eval/README.md.
eval *ARGS:
    uv run python -m eval {{ARGS}}

lint:
    uv run ruff check .
