"""The Cypher both graph adapters run: one statement per batch, guarded by the stream checkpoint.

Only the subset Neo4j and FalkorDB share: MERGE, SET +=, UNWIND, WITH DISTINCT, coalesce. The schema
DDL is the one thing each adapter writes in its own dialect.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.projection.stores import FENCE
from services.projection.vocabulary import EDGES, EXPIRES_AT, EXPIRING, GraphWrite, Label, NodeWrite, Property

type EdgeKind = tuple[Label, str, Label]


def _present(props: dict[str, Property | None]) -> dict[str, Property]:
    return {key: value for key, value in props.items() if value is not None}


def coalesce_writes(
    writes: Iterable[GraphWrite],
) -> tuple[dict[Label, dict[str, dict]], dict[EdgeKind, dict[tuple[str, str], dict]]]:
    """One row per node and per edge, later writes overriding earlier ones property by property.

    A batch must mean what its events mean one after the other; within a single statement the two
    engines may apply several rows for the same node in any order, so the rows are merged here.
    """
    nodes: dict[Label, dict[str, dict]] = {}
    edges: dict[EdgeKind, dict[tuple[str, str], dict]] = {}
    for write in writes:
        if isinstance(write, NodeWrite):
            nodes.setdefault(write.label, {}).setdefault(write.id, {}).update(_present(write.props))
        else:
            # An edge's endpoints exist before it: a stub node, if nothing filled it yet.
            nodes.setdefault(write.source, {}).setdefault(write.source_id, {})
            nodes.setdefault(write.target, {}).setdefault(write.target_id, {})
            kind = (write.source, write.rel.value, write.target)
            edges.setdefault(kind, {}).setdefault((write.source_id, write.target_id), {}).update(_present(write.props))
    return nodes, edges


def node_dates(writes: Iterable[GraphWrite]) -> dict[Label, dict[str, float]]:
    """Each node's latest date in a batch (its own writes' and its edges'), for the labels that expire."""
    dates: dict[Label, dict[str, float]] = {}

    def date(label: Label, key: str, at: float | None) -> None:
        if at is not None and label in EXPIRING:
            known = dates.setdefault(label, {})
            known[key] = max(at, known.get(key, at))

    for write in writes:
        if isinstance(write, NodeWrite):
            date(write.label, write.id, write.at)
        else:
            date(write.source, write.source_id, write.at)
            date(write.target, write.target_id, write.at)
    return dates


# Only ever later: the writes of two streams may come in either order, and the latest date must win.
LATER_EXPIRY = (f"n.{EXPIRES_AT} = CASE WHEN n.{EXPIRES_AT} IS NULL OR n.{EXPIRES_AT} < row.expires "
                f"THEN row.expires ELSE n.{EXPIRES_AT} END")
APPLIED = "RETURN cp.sequence AS applied"
NODE_ORDER = [label for label in Label if label is not Label.CHECKPOINT]
EDGE_ORDER = [(source, rel.value, target) for rel, pairs in EDGES.items() for source, target in pairs]


def batch_statement(
    writes: Iterable[GraphWrite], stream: str, sequence: int, fence: int | None = None,
    retention_s: float | None = None,
) -> tuple[str, dict]:
    """One statement: every node, then every edge, then the checkpoint; skipped whole if already applied,
    or, with a `fence` (the writer's lease token), if a newer lease holder has written to the graph.
    With a `retention_s`, each dated node's `expires_at` moves on to its latest date plus the retention."""
    writes = list(writes)
    nodes, edges = coalesce_writes(writes)
    dates = node_dates(writes) if retention_s is not None else {}
    params: dict = {"stream": stream, "sequence": sequence}
    if fence is None:
        carried = "cp"
        clauses = [
            f"MERGE (cp:{Label.CHECKPOINT} {{id: $stream}})",
            "WITH cp WHERE coalesce(cp.sequence, 0) < $sequence",
        ]
    else:
        carried = "cp, fence"
        params |= {"fence_id": FENCE, "token": fence}
        clauses = [
            f"MERGE (cp:{Label.CHECKPOINT} {{id: $stream}})",
            f"MERGE (fence:{Label.CHECKPOINT} {{id: $fence_id}})",
            "WITH cp, fence WHERE coalesce(fence.token, 0) <= $token AND coalesce(cp.sequence, 0) < $sequence",
        ]
    for index, label in enumerate(label for label in NODE_ORDER if nodes.get(label)):
        name = f"n{index}"
        if dates.get(label):
            params[name] = [{"id": key, "props": props, "expires": _plus(dates[label].get(key), retention_s)}
                            for key, props in sorted(nodes[label].items())]
            setting = f"SET n += row.props, {LATER_EXPIRY}"
        else:
            params[name] = [{"id": key, "props": props} for key, props in sorted(nodes[label].items())]
            setting = "SET n += row.props"
        clauses += [f"UNWIND ${name} AS row MERGE (n:{label} {{id: row.id}}) {setting}",
                    f"WITH DISTINCT {carried}"]
    for index, kind in enumerate(kind for kind in EDGE_ORDER if edges.get(kind)):
        source, rel, target = kind
        name = f"e{index}"
        params[name] = [
            {"source": s, "target": t, "props": props} for (s, t), props in sorted(edges[kind].items())
        ]
        clauses += [
            f"UNWIND ${name} AS row MATCH (a:{source} {{id: row.source}}) MATCH (b:{target} {{id: row.target}}) "
            f"MERGE (a)-[r:{rel}]->(b) SET r += row.props",
            f"WITH DISTINCT {carried}",
        ]
    clauses.append("SET cp.sequence = $sequence" + ("" if fence is None else ", fence.token = $token"))
    # One row when the batch was applied, none when a guard skipped it: what the adapters report.
    clauses.append(APPLIED)
    return "\n".join(clauses), params


def _plus(at: float | None, retention_s: float | None) -> float | None:
    return None if at is None or retention_s is None else at + retention_s


# Nodes deleted per statement when expired ones are swept: one statement holds a write lock in either engine.
EXPIRED_PER_STATEMENT = 5_000


def expired_statement(label: Label) -> str:
    """Delete up to $limit nodes of a label past their `expires_at` ($now), with their edges; returns how many."""
    return (f"MATCH (n:{label}) WHERE n.{EXPIRES_AT} < $now WITH n LIMIT $limit "
            "DETACH DELETE n RETURN count(*) AS deleted")


CHECKPOINT_QUERY = f"MATCH (cp:{Label.CHECKPOINT} {{id: $stream}}) RETURN cp.sequence"
# A graph's fence: the highest lease token that has written to it. Made with the indexes (`prepare`), so
# that two writers never both create it, as two concurrent MERGEs of one node in FalkorDB may.
FENCE_QUERY = f"MATCH (fence:{Label.CHECKPOINT} {{id: $fence_id}}) RETURN fence.token"
MAKE_FENCE = f"MERGE (fence:{Label.CHECKPOINT} {{id: $fence_id}})"
RAISE_FENCE = (f"MERGE (fence:{Label.CHECKPOINT} {{id: $fence_id}}) "
               "WITH fence WHERE coalesce(fence.token, 0) <= $token SET fence.token = $token RETURN fence.token")
REWIND_QUERY = f"MERGE (cp:{Label.CHECKPOINT} {{id: $stream}}) SET cp.sequence = $sequence"

# Everything but checkpoints, in a canonical order: what "the same graph" means.
CONTENT_NODES_QUERY = (
    f"MATCH (n) WHERE NOT n:{Label.CHECKPOINT} RETURN labels(n)[0] AS label, n.id AS id, properties(n) AS props"
)
CONTENT_EDGES_QUERY = (
    "MATCH (a)-[r]->(b) RETURN labels(a)[0] AS source_label, a.id AS source, type(r) AS rel, "
    "labels(b)[0] AS target_label, b.id AS target, properties(r) AS props"
)
