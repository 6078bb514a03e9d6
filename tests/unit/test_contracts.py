"""The contract rules: round trips, subject names, stream coverage, producers for consumers."""

import datetime as dt
import json
import re
from pathlib import Path

import msgspec
import pytest
from jsonschema import Draft7Validator

from contracts import catalog
from contracts.asyncapi import asyncapi_document
from contracts.envelope import Envelope, from_headers, to_headers
from contracts.events import (
    AgentProfile,
    Attempt,
    Brief,
    Candidate,
    CheckResult,
    Choice,
    CouncilCreated,
    CouncilDeleted,
    DeadlinePassed,
    DecisionMade,
    DeliberationAdvanced,
    DeliberationCancelRequested,
    DeliberationCompleted,
    DeliberationFailed,
    DeliberationOutcome,
    DeliberationRef,
    DeliberationRequested,
    DeliberationRetryRequested,
    DeliberationScored,
    DeliberationStarted,
    LegacyPlanApproved,
    LegacyStoryTransitioned,
    MessageRedriven,
    MessageRejected,
    Phase,
    PlanAccepted,
    PlanApproved,
    PlanConcluded,
    PlannedDeliberation,
    PlannedTask,
    PlanRejected,
    ProposalScore,
    RankedProposal,
    Role,
    StoryTransitioned,
    Turn,
    TurnCompleted,
    TurnFailed,
    TurnInput,
    TurnRequested,
    Verdict,
    Winner,
)
from contracts.export import catalog_markdown, json_schemas
from services.councils.domain import new_council
from streams.definitions import CONSUMERS, PROJECTIONS, STREAMS, stream_for_subject
from streams.subjects import subject_matches

NOW = dt.datetime(2026, 11, 22, 10, 30, tzinfo=dt.UTC)
REF = DeliberationRef(deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.QA)
TASK = PlannedTask(task_id="t-1", title="Write tests", description="for the parser")
BRIEF = Brief(task=TASK, rubric={"correctness": "works"}, constraints=["python 3.12"])
COUNCIL = new_council(Role.QA, 3, model="qwen-7b")
QA_1 = COUNCIL.agents[0]
ARCHITECT = AgentProfile(agent_id="architect-1", role=Role.ARCHITECT, persona="The pragmatist.", temperature=0.3,
                         seed=1000)
CRITIQUE = Turn(phase=Phase.CRITIQUE, round=0, agent_id="qa-1", author_id="qa-2")
RANKING = [RankedProposal(rank=1, agent_id="qa-2", score=8.0, qualified=True),
           RankedProposal(rank=2, agent_id="qa-1", score=None, qualified=False)]

EXAMPLES = {
    catalog.PLAN_APPROVED.subject: PlanApproved(
        story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV, Role.QA], tasks=[TASK],
        rubric={"correctness": "works"}, constraints=["python 3.12"],
    ),
    catalog.LEGACY_PLAN_APPROVED.subject: LegacyPlanApproved(
        story_id="s-1", plan_id="p-1", approved_by="alice", roles=[Role.DEV], timestamp="2025-01-01T00:00:00Z"
    ),
    catalog.STORY_TRANSITIONED.subject: StoryTransitioned(
        story_id="s-1", from_state="DESIGN", to_state="BUILD", transitioned_by="alice", reason="plan approved",
    ),
    catalog.LEGACY_STORY_TRANSITIONED.subject: LegacyStoryTransitioned(
        story_id="s-1", from_state="DESIGN", to_state="BUILD", transitioned_by="alice", timestamp=1764000000,
    ),
    catalog.PLAN_ACCEPTED.subject: PlanAccepted(
        story_id="s-1", plan_id="p-1", approved_by="alice", approval_id="p-1-approved",
        deliberations=[PlannedDeliberation(deliberation_id="d-1", task_id="t-1", role=Role.QA)],
    ),
    catalog.PLAN_REJECTED.subject: PlanRejected(
        approval_id="p-1-approved", original_subject="planning.plan.approved.v1", story_id="s-1", plan_id="p-1",
        reasons=["no council for role DATA"],
    ),
    catalog.PLAN_CONCLUDED.subject: PlanConcluded(
        story_id="s-1", plan_id="p-1", completed=1, failed=1, revision=2,
        outcomes=[
            DeliberationOutcome(deliberation_id="d-1", task_id="t-1", role=Role.QA, outcome="completed",
                                winner_id="qa-2"),
            DeliberationOutcome(deliberation_id="d-2", task_id="t-1", role=Role.DEV, outcome="cancelled",
                                reason="cancelled by alice: wrong brief"),
        ],
    ),
    catalog.DELIBERATION_CANCEL_REQUESTED.subject: DeliberationCancelRequested(
        deliberation_id="d-1", requested_by="alice", reason="wrong brief",
    ),
    catalog.DELIBERATION_RETRY_REQUESTED.subject: DeliberationRetryRequested(
        deliberation_id="d-1", requested_by="alice", reason="the LLM was down",
    ),
    catalog.COUNCIL_CREATED.subject: CouncilCreated(council=COUNCIL, created_by="alice"),
    catalog.COUNCIL_DELETED.subject: CouncilDeleted(role=Role.QA, deleted_by="alice"),
    catalog.DELIBERATION_REQUESTED.subject: DeliberationRequested(
        deliberation=REF, brief=BRIEF, approved_by="alice", council=COUNCIL, architect=ARCHITECT,
        attempt=Attempt(first_id="d-0", previous_id="d-0", number=2, requested_by="alice", reason="LLM down"),
    ),
    catalog.DELIBERATION_STARTED.subject: DeliberationStarted(
        deliberation=REF, brief=BRIEF, council=COUNCIL, architect=ARCHITECT, started_at=NOW,
    ),
    catalog.DELIBERATION_ADVANCED.subject: DeliberationAdvanced(
        deliberation_id="d-1", phase=Phase.CRITIQUE, round=0, turns=[CRITIQUE.key], deadline_at=NOW,
    ),
    catalog.DEADLINE_PASSED.subject: DeadlinePassed(
        deliberation_id="d-1", phase=Phase.CRITIQUE, round=0, deadline_at=NOW,
    ),
    catalog.TURN_REQUESTED.subject: TurnRequested(
        deliberation=REF, turn=CRITIQUE, agent=QA_1, brief=BRIEF,
        input=TurnInput(proposal="Test the edges.", candidates=[Candidate(agent_id="qa-2", content="x", score=8.0)]),
    ),
    catalog.TURN_COMPLETED.subject: TurnCompleted(
        deliberation=REF, turn=CRITIQUE, agent=QA_1, content='{"criteria": {"correctness": 8}}',
        verdict=Verdict(criteria={"correctness": 8}, justification="works"),
        choice=Choice(winner_id="qa-2", rationale="simplest"), model="m", temperature=0.3, seed=1000,
        prompt_tokens=10, completion_tokens=5, latency_ms=120, attempts=2,
    ),
    catalog.TURN_FAILED.subject: TurnFailed(
        deliberation=REF, turn=CRITIQUE, agent=QA_1, error_class="LlmTimeout", message="no answer within 60s",
    ),
    catalog.DELIBERATION_SCORED.subject: DeliberationScored(
        deliberation_id="d-1",
        scores=[
            ProposalScore(agent_id="qa-2", criteria={"correctness": 8}, justification="works",
                          checks=[CheckResult(check="python parses", passed=True)], score=8.0, qualified=True),
            ProposalScore(agent_id="qa-1", criteria={}, justification="", checks=[], score=None, qualified=False,
                          scoring_error="StructuredOutputInvalid: not JSON"),
        ],
    ),
    catalog.DECISION_MADE.subject: DecisionMade(
        deliberation_id="d-1", winner_id="qa-2", candidates=["qa-2"], ranking=RANKING, rationale="simplest",
        decided_by="architect-1", architect_error=None,
    ),
    catalog.DELIBERATION_COMPLETED.subject: DeliberationCompleted(
        deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.QA,
        winner=Winner(agent_id="qa-2", content="Test the edges.", score=8.0, revisions=1), ranking=RANKING,
        rationale="simplest", decided_by="architect-1", duration_ms=900, failed_agents=["qa-3"],
    ),
    catalog.DELIBERATION_FAILED.subject: DeliberationFailed(
        deliberation_id="d-1", story_id="s-1", plan_id="p-1", task_id="t-1", role=Role.QA, phase=Phase.PROPOSE,
        reason="1 proposal, quorum is 2", duration_ms=900, cancelled_by="alice",
    ),
    catalog.MESSAGE_REJECTED.subject: MessageRejected(
        service="planning", consumer="planning-plan-approvals", reason="bad",
        original_subject="planning.plan.approved.v1",
        original_headers={"Nats-Msg-Id": "x"}, original_body=b"\xff\xfenot utf-8", stream="PLANNING",
        stream_sequence=7, deliveries=1,
    ),
    catalog.MESSAGE_REDRIVEN.subject: MessageRedriven(
        letter_id="l-1", letter_sequence=3, original_subject="planning.plan.approved.v1", original_stream="PLANNING",
        original_sequence=7, republished_id="r-1", republished_sequence=9, redriven_by="alice",
    ),
}


def test_every_event_in_the_catalog_has_an_example_here():
    assert set(EXAMPLES) == {spec.subject for spec in catalog.EVENTS}


@pytest.mark.parametrize("spec", catalog.EVENTS, ids=lambda s: s.subject)
def test_every_event_round_trips_through_its_wire_encoding(spec):
    example = EXAMPLES[spec.subject]
    assert spec.decoder.decode(catalog.encode(example)) == example


AGGREGATE_IDS = {"plan": "p-1", "story": "s-1", "council": "QA", "deliberation": "d-1", "message": "PLANNING:7",
                 "letter": "l-1"}


@pytest.mark.parametrize("spec", catalog.EVENTS, ids=lambda s: s.subject)
def test_every_event_names_the_aggregate_it_belongs_to(spec):
    assert EXAMPLES[spec.subject].aggregate_id() == AGGREGATE_IDS[spec.aggregate_type]


def test_a_turn_is_keyed_by_phase_round_agent_and_author():
    assert CRITIQUE.key == "critique/0/qa-1/qa-2"


@pytest.mark.parametrize("spec", [s for s in catalog.EVENTS if not s.legacy], ids=lambda s: s.subject)
def test_every_subject_follows_context_aggregate_event_version(spec):
    assert catalog.SUBJECT_PATTERN.match(spec.subject), spec.subject
    assert spec.subject.endswith(f".v{spec.version}")
    assert spec.subject.split(".")[1:3] == spec.event_type.split(".")


def test_the_only_subjects_outside_the_naming_rule_are_the_legacy_ingress():
    outside = [s.subject for s in catalog.EVENTS if not catalog.SUBJECT_PATTERN.match(s.subject)]
    assert outside == ["planning.plan.approved", "planning.story.transitioned"]
    assert all(catalog.spec_for_subject(subject).legacy for subject in outside)


@pytest.mark.parametrize("spec", catalog.EVENTS, ids=lambda s: s.subject)
def test_every_subject_is_covered_by_exactly_one_stream(spec):
    covering = [s.name for s in STREAMS if any(subject_matches(p, spec.subject) for p in s.subjects)]
    assert len(covering) == 1, f"{spec.subject} is covered by {covering}"


def test_no_two_streams_claim_overlapping_subjects():
    patterns = [(stream.name, pattern) for stream in STREAMS for pattern in stream.subjects]
    for name, pattern in patterns:
        for other_name, other in patterns:
            if name != other_name:
                assert not subject_matches(pattern, other.replace(">", "x")), (pattern, other)


def test_every_consumed_subject_has_a_producer_or_is_ingress():
    for spec in catalog.EVENTS:
        if spec.consumers:
            assert spec.producers, f"{spec.subject} is consumed but nobody produces it"
    for consumer in CONSUMERS:
        for spec in consumer.events:
            subject = spec.subject
            assert spec.is_ingress or spec.producers
            assert consumer.service in spec.consumers, f"{consumer.durable} reads {subject} without saying so"
            assert stream_for_subject(subject).name == consumer.stream


# Planning folds the council log on demand with direct gets (services/councils/directory.py), and the
# projections read whole streams from their own checkpoints with ordered consumers: neither uses a durable.
READ_WITHOUT_A_DURABLE = {
    (catalog.PLANNING, catalog.COUNCIL_CREATED.subject),
    (catalog.PLANNING, catalog.COUNCIL_DELETED.subject),
} | {
    (projection.service, spec.subject)
    for projection in PROJECTIONS
    for spec in catalog.EVENTS
    if stream_for_subject(spec.subject) in projection.streams
}


def test_catalog_consumers_are_exactly_the_durables_the_council_log_readers_and_the_projections():
    declared = {(c.service, spec.subject) for c in CONSUMERS for spec in c.events}
    catalogued = {(service, spec.subject) for spec in catalog.EVENTS for service in spec.consumers
                  if service not in catalog.OUTSIDE_READERS}
    assert declared == catalogued - READ_WITHOUT_A_DURABLE
    assert catalogued >= READ_WITHOUT_A_DURABLE


def test_the_ingress_contract_keeps_its_exact_fields():
    fields = [f.name for f in msgspec.structs.fields(PlanApproved)]
    assert fields == ["story_id", "plan_id", "approved_by", "roles", "tasks", "rubric", "constraints"]
    assert {f.name for f in msgspec.structs.fields(PlannedTask)} == {"task_id", "title", "description"}


def test_the_result_contract_carries_ids_winner_ranking_and_duration():
    fields = {f.name for f in msgspec.structs.fields(DeliberationCompleted)}
    assert {"deliberation_id", "story_id", "plan_id", "task_id", "role", "winner", "ranking", "duration_ms"} <= fields
    failed = {f.name for f in msgspec.structs.fields(DeliberationFailed)}
    assert {"deliberation_id", "story_id", "plan_id", "task_id", "role", "reason"} <= failed


def test_export_writes_a_schema_per_event_and_a_catalog_naming_each_subject():
    schemas = json_schemas()
    assert len(schemas) == len(catalog.EVENTS)
    markdown = catalog_markdown()
    for spec in catalog.EVENTS:
        assert f"`{spec.subject}`" in markdown


def test_the_envelope_survives_a_trip_through_headers():
    envelope = Envelope(
        event_id="e-1", event_type="deliberation.completed", schema_version=1, occurred_at=NOW,
        producer="collector", correlation_id="c-1", causation_id="e-0", aggregate_type="deliberation",
        aggregate_id="d-1", traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01",
    )
    read = from_headers(
        to_headers(envelope), event_type="deliberation.completed", schema_version=1,
        aggregate_type="deliberation", aggregate_id="d-1", received_at=dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
    )
    assert read == envelope


def test_the_checked_in_catalog_and_schemas_match_the_code():
    folder = Path(__file__).parents[2] / "docs" / "contracts"
    on_disk = {path.name for path in folder.glob("*.schema.json")}
    assert on_disk == set(json_schemas()), "run `just contracts`, and delete the schemas of events that are gone"
    assert (folder / "catalog.md").read_text() == catalog_markdown(), "run `just contracts`"
    for name, schema in json_schemas().items():
        assert json.loads((folder / name).read_text()) == schema, f"{name} is stale: run `just contracts`"


def test_the_read_model_page_names_exactly_the_graph_vocabulary():
    from services.projection.vocabulary import EDGES, Label, Rel

    page = (Path(__file__).parents[2] / "docs" / "read-models.md").read_text()
    documented_labels = set(re.findall(r"^\| `([A-Z][A-Za-z]+)` \| (?!.*→)", page, re.MULTILINE))
    documented_rels = set(re.findall(r"^\| `([A-Z_]+)` \| [A-Za-z]+ →", page, re.MULTILINE))
    assert documented_labels == {label.value for label in Label}
    assert documented_rels == {rel.value for rel in Rel} == {rel.value for rel in EDGES}


def test_every_query_has_a_subject_in_the_naming_rule_and_a_line_in_the_catalog():
    from contracts.queries import QUERIES

    markdown = catalog_markdown()
    for query in QUERIES:
        assert catalog.SUBJECT_PATTERN.match(query.subject) and query.subject.startswith("query.")
        assert f"`{query.subject}`" in markdown
        assert stream_for_subject_or_none(query.subject) is None, "queries are core NATS, never stored"


def stream_for_subject_or_none(subject: str):
    try:
        return stream_for_subject(subject)
    except LookupError:
        return None


def test_the_checked_in_asyncapi_document_matches_the_code_and_is_valid_asyncapi_3():
    folder = Path(__file__).parents[2] / "docs" / "contracts"
    document = asyncapi_document()
    # The AsyncAPI 3.0.0 JSON Schema from the npm package @asyncapi/specs 6.11.1 (Apache-2.0).
    official = json.loads((Path(__file__).parents[1] / "fixtures" / "asyncapi-3.0.0.schema.json").read_text())

    assert json.loads((folder / "asyncapi.json").read_text()) == document, "run `just contracts`"
    problems = [f"{list(e.path)}: {e.message[:200]}" for e in Draft7Validator(official).iter_errors(document)]
    assert problems == []


def test_the_asyncapi_document_has_every_subject_and_who_sends_and_receives_it():
    from contracts.queries import QUERIES

    document = asyncapi_document()
    addresses = {channel["address"] for channel in document["channels"].values()}
    operations = document["operations"].values()

    assert {spec.subject for spec in catalog.EVENTS} | {query.subject for query in QUERIES} <= addresses
    for spec in catalog.EVENTS:
        on_subject = [o for o in operations if document["channels"][o["channel"]["$ref"].rsplit("/", 1)[1]]["address"]
                      == spec.subject]
        assert sum(o["action"] == "send" for o in on_subject) == len(spec.producers), spec.subject
        assert sum(o["action"] == "receive" for o in on_subject) == len(spec.consumers), spec.subject
    for query in QUERIES:
        on_query = [o for o in operations if document["channels"][o["channel"]["$ref"].rsplit("/", 1)[1]]["address"]
                    == query.subject]
        assert {o["action"] for o in on_query} == {"send", "receive"}, query.subject
        assert all("reply" in o for o in on_query), query.subject
