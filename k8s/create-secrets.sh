#!/usr/bin/env bash
# Creates the Secrets the manifests read, with random passwords, in the fleet's namespace. A Secret
# that already exists is left alone: Neo4j and Valkey keep the password they were first started with,
# so a new one would lock the services out. Nothing secret is printed or passed on a command line.
#
#   k8s/create-secrets.sh [-n NAMESPACE]
#
# Optional, from the environment:
#   HF_TOKEN            a Hugging Face token, for a gated or private model (fleet-huggingface)
#   FLEET_LLM_API_KEY   the API key of an external LLM server (fleet-llm-api-key; components/external-llm)
#   NEO4J_PASSWORD      the password of an existing Neo4j (components/external-neo4j) instead of a new one
set -euo pipefail

namespace=swe-ai-fleet
while getopts "n:h" option; do
  case "$option" in
    n) namespace="$OPTARG" ;;
    *) sed -n '2,13p' "$0"; exit 2 ;;
  esac
done

KUBECTL="${KUBECTL:-kubectl}"
NATS_USERS=(planning dispatch agents collector projection monitor provisioner operator)
NATS_CLIENT_USERS=(upstream subscriber)

workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
umask 077

random() { openssl rand -hex 24; }

exists() { "$KUBECTL" -n "$namespace" get secret "$1" >/dev/null 2>&1; }

# create NAME KEY=FILE...: one Secret from files in $workdir, unless it exists.
create() {
  local name="$1"; shift
  if exists "$name"; then
    echo "secret/$name exists: left as it is"
    return
  fi
  local args=()
  for pair in "$@"; do args+=("--from-file=${pair%%=*}=$workdir/${pair#*=}"); done
  "$KUBECTL" -n "$namespace" create secret generic "$name" "${args[@]}" >/dev/null
  echo "secret/$name created"
}

if ! "$KUBECTL" get namespace "$namespace" >/dev/null 2>&1; then
  "$KUBECTL" create namespace "$namespace" >/dev/null
  echo "namespace/$namespace created"
fi

# One NATS user per service, the provisioning Jobs and the operator's CLI (streams/permissions.py).
pairs=()
for user in "${NATS_USERS[@]}"; do
  printf '%s' "$(random)" > "$workdir/nats-$user"
  pairs+=("$user=nats-$user")
done
create fleet-nats-users "${pairs[@]}"

# Clients outside the mesh (docs/deploy.md), a Secret each: all a client needs to connect, and nothing
# of the services', so it can be copied whole into the client's namespace. Its own Secret also means a
# fleet that already has fleet-nats-users gets it when this script runs again.
for user in "${NATS_CLIENT_USERS[@]}"; do
  files="nats-client-$user"
  printf '%s' "$user" > "$workdir/$files-user"
  printf '%s' "$(random)" > "$workdir/$files-password"
  printf '_INBOX.%s' "$user" > "$workdir/$files-inbox-prefix"
  pairs=()
  for key in user password inbox-prefix; do pairs+=("$key=$files-$key"); done
  create "fleet-nats-$user" "${pairs[@]}"
done

# Valkey: the server includes auth.conf; the projection connects with the URL.
valkey_password="$(random)"
printf '%s' "$valkey_password" > "$workdir/valkey-password"
printf 'requirepass %s\n' "$valkey_password" > "$workdir/valkey-auth.conf"
printf 'redis://:%s@valkey:6379/0' "$valkey_password" > "$workdir/valkey-url"
create fleet-valkey password=valkey-password auth.conf=valkey-auth.conf url=valkey-url

# Neo4j: the server reads NEO4J_AUTH (user/password) on its first start; the projection the password.
neo4j_password="${NEO4J_PASSWORD:-$(random)}"
printf '%s' "$neo4j_password" > "$workdir/neo4j-password"
printf 'neo4j/%s' "$neo4j_password" > "$workdir/neo4j-auth"
create fleet-neo4j password=neo4j-password NEO4J_AUTH=neo4j-auth

# Ray: every node and the agents service present this token (RAY_AUTH_MODE=token).
printf '%s' "$(random)" > "$workdir/ray-token"
create fleet-ray-auth auth_token=ray-token

if [ -n "${HF_TOKEN:-}" ]; then
  printf '%s' "$HF_TOKEN" > "$workdir/hf-token"
  create fleet-huggingface token=hf-token
fi
if [ -n "${FLEET_LLM_API_KEY:-}" ]; then
  printf '%s' "$FLEET_LLM_API_KEY" > "$workdir/llm-api-key"
  create fleet-llm-api-key api-key=llm-api-key
fi
