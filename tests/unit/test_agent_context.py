"""The context an agent is given, and the redaction of secrets from prompts and logs: pure functions."""

import dataclasses
import hashlib
import logging
import tomllib

import pytest

from contracts.events import Phase, Role
from services.mesh.redaction import MASK, RedactingFilter, redact
from services.mesh.settings import SEED_CONTEXT_BUDGETS
from services.mesh.tokens import estimate_tokens
from services.projection.context import (
    EXCERPT_CHARS,
    SCOPES_FILE,
    ContextFacts,
    Decision,
    Scope,
    build_context,
    load_scopes,
)

SCOPES = load_scopes(SEED_CONTEXT_BUDGETS)


BASE = ContextFacts(
    deliberation_id="d-own", story_id="s-1", task_id="t-1", task_title="Add caching",
    task_description="Cache the reads of the story view.", plan_id="p-1", plan_approved_by="alice",
    plan_constraints=("no new services",), plan_task_count=2,
    decisions=(
        Decision("d-same-task", "t-1", "ARCHITECT", "architect-2", "same-task rationale", "same-task excerpt"),
        Decision("d-other-task", "t-2", "DEV", "dev-2", "other-task rationale", "other-task excerpt"),
        Decision("d-own", "t-1", "DEV", "dev-1", "own rationale", "own excerpt"),
    ),
    related_tasks=(("t-1", "Add caching"), ("t-2", "Measure it")),
)


def facts(**changes) -> ContextFacts:
    """The deliberation d-own on task t-1 of plan p-1, with decisions made on t-1 (its own among them) and t-2."""
    return dataclasses.replace(BASE, **changes)


def scope(budget_tokens: int = 1000, decisions: str = "task") -> Scope:
    return Scope(phases=(Phase.PROPOSE, Phase.REVISE), sections=("story", "plan", "task", "decisions",
                                                                  "related_tasks"),
                 decisions=decisions, budget_tokens=budget_tokens)


# --- scopes -------------------------------------------------------------------------------------


def test_every_role_has_a_scope_in_the_real_scopes_file():
    assert set(SCOPES) == set(Role)


def test_the_architect_sees_decisions_of_the_whole_story_and_a_dev_only_those_of_its_task():
    assert SCOPES[Role.ARCHITECT].decisions == "story"
    assert SCOPES[Role.DEV].decisions == "task"


def test_a_role_table_overrides_the_defaults_and_keeps_the_rest():
    assert SCOPES[Role.DEV].sections[:2] == ("story", "task")
    assert SCOPES[Role.DEV].phases == SCOPES[Role.ARCHITECT].phases


def test_each_role_gets_the_budget_the_settings_give_it():
    scopes = load_scopes({**SEED_CONTEXT_BUDGETS, Role.QA: 123})

    assert scopes[Role.QA].budget_tokens == 123
    assert scopes[Role.ARCHITECT].budget_tokens == SEED_CONTEXT_BUDGETS[Role.ARCHITECT]


def test_the_shipped_scopes_file_holds_only_what_a_scope_reads_and_no_budget():
    # A budget there would be silently ignored: it is the FLEET_CONTEXT_BUDGET_TOKENS setting.
    document = tomllib.loads(SCOPES_FILE.read_text())

    for name, table in [("default", document["default"]), *document["roles"].items()]:
        assert set(table) <= {"phases", "sections", "decisions"}, name


def test_no_role_gets_a_context_for_judging_or_selecting():
    for role, role_scope in SCOPES.items():
        assert Phase.JUDGE not in role_scope.phases, role
        assert Phase.SELECT not in role_scope.phases, role


def test_a_scopes_file_with_an_unknown_section_name_fails_loudly(tmp_path):
    path = tmp_path / "scopes.toml"
    path.write_text(
        '[default]\nphases = ["propose"]\nsections = ["story", "gossip"]\ndecisions = "task"\n'
    )

    with pytest.raises(ValueError, match="gossip"):
        load_scopes(SEED_CONTEXT_BUDGETS, path)


def test_an_unknown_section_name_in_one_roles_table_fails_loudly(tmp_path):
    path = tmp_path / "scopes.toml"
    real = SCOPES_FILE.read_text()
    qa_sections = 'sections = ["story", "task", "related_tasks", "decisions", "plan"]'
    assert qa_sections in real
    path.write_text(real.replace(qa_sections, 'sections = ["story", "task", "weather"]'))

    with pytest.raises(ValueError, match="weather"):
        load_scopes(SEED_CONTEXT_BUDGETS, path)


def test_a_scopes_file_with_an_unknown_decisions_scope_fails_loudly(tmp_path):
    path = tmp_path / "scopes.toml"
    path.write_text(
        '[default]\nphases = ["propose"]\nsections = ["story"]\ndecisions = "everything"\n'
    )

    with pytest.raises(ValueError):
        load_scopes(SEED_CONTEXT_BUDGETS, path)


# --- build_context ------------------------------------------------------------------------------


@pytest.mark.parametrize("phase", [Phase.CRITIQUE, Phase.JUDGE, Phase.SELECT])
def test_a_phase_outside_the_scope_gets_no_context_and_no_hash(phase):
    context = build_context(facts(), SCOPES[Role.DEV], phase)

    assert context.text == ""
    assert context.context_hash is None
    assert context.sections == []


def test_a_dev_sees_only_the_decisions_made_on_its_own_task():
    text = build_context(facts(), SCOPES[Role.DEV], Phase.PROPOSE).text

    assert "same-task rationale" in text
    assert "other-task rationale" not in text


def test_the_architect_sees_the_decisions_made_on_other_tasks_of_the_story():
    text = build_context(facts(), SCOPES[Role.ARCHITECT], Phase.PROPOSE).text

    assert "same-task rationale" in text
    assert "other-task rationale" in text
    assert "other-task excerpt" in text


@pytest.mark.parametrize("role", list(Role))
def test_a_deliberations_own_decision_is_never_in_its_context(role):
    text = build_context(facts(), SCOPES[role], Phase.REVISE).text

    assert "own rationale" not in text
    assert "own excerpt" not in text


def test_the_own_task_is_not_listed_among_the_related_tasks():
    context = build_context(facts(), scope(), Phase.PROPOSE)
    related = context.text.split("Other tasks of the plan:")[1]

    assert "t-2: Measure it" in related
    assert "t-1" not in related


def test_a_context_that_fits_its_budget_is_whole():
    context = build_context(facts(), scope(budget_tokens=1000), Phase.PROPOSE)

    assert context.truncated is False
    assert context.sections == ["story", "plan", "task", "decisions", "related_tasks"]
    assert context.estimated_tokens == estimate_tokens(context.text)


def test_a_context_over_its_budget_is_cut_to_it_and_says_so():
    long = facts(task_description="word " * 500)
    context = build_context(long, scope(budget_tokens=50), Phase.PROPOSE)

    assert estimate_tokens(context.text) <= 50
    assert context.truncated is True
    assert context.text.endswith("…")
    assert context.sections[:2] == ["story", "plan"]


def test_the_context_never_exceeds_its_budget_whatever_the_budget():
    long = facts(task_description="word " * 500, plan_constraints=tuple(f"constraint {i}" for i in range(30)))
    for budget in range(1, 300, 7):
        context = build_context(long, scope(budget_tokens=budget, decisions="story"), Phase.PROPOSE)

        assert estimate_tokens(context.text) <= budget, budget
        assert context.truncated is True, budget


def test_the_context_hash_is_the_sha256_of_its_text():
    context = build_context(facts(), SCOPES[Role.ARCHITECT], Phase.PROPOSE)

    assert context.context_hash == hashlib.sha256(context.text.encode()).hexdigest()


def test_the_context_hash_is_stable_and_changes_when_a_fact_changes():
    before = build_context(facts(), SCOPES[Role.DEV], Phase.PROPOSE).context_hash

    assert build_context(facts(), SCOPES[Role.DEV], Phase.PROPOSE).context_hash == before
    assert build_context(facts(task_title="Add a cache"), SCOPES[Role.DEV], Phase.PROPOSE).context_hash != before


SECRETS = ["hunter2", "abcdefghijklmnop", "s3cret", "sk-" + "Ab3dE6gH9jK2mN5pQ8sT"]


def test_secrets_in_a_task_description_never_reach_the_context():
    description = (
        "Connect with password=hunter2 and send Authorization: Bearer abcdefghijklmnop to the API.\n"
        "The database is postgres://app:s3cret@db:5432/x and the model key is sk-Ab3dE6gH9jK2mN5pQ8sT."
    )
    for role in Role:
        context = build_context(facts(task_description=description), SCOPES[role], Phase.PROPOSE)

        assert context.truncated is False, role
        assert "postgres://app:" in context.text
        for secret in SECRETS:
            assert secret not in context.text, (role, secret)


def test_secrets_in_a_winning_proposal_never_reach_the_context():
    decision = Decision("d-other", "t-1", "DEV", "dev-2", "rationale", "Use api_key=Zq9Zq9Zq9 in the header.")
    text = build_context(facts(decisions=(decision,)), SCOPES[Role.DEV], Phase.PROPOSE).text

    assert "Zq9Zq9Zq9" not in text
    assert "api_key=" + MASK in text


def test_a_secret_cut_by_the_excerpt_limit_never_reaches_the_context():
    key = "ghp_" + "A1b2C3d4E5" * 4
    excerpt = "x" * (EXCERPT_CHARS - 30) + " " + key
    decision = Decision("d-other", "t-1", "DEV", "dev-2", "rationale", excerpt)
    text = build_context(facts(decisions=(decision,)), scope(), Phase.PROPOSE).text

    assert key[:12] not in text


# --- redaction ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("password=hunter2", f"password={MASK}"),
    ("DB_PASSWORD: hunter2", f"DB_PASSWORD: {MASK}"),
    ('password="correct horse battery"', f"password={MASK}"),
    ("token: abc123xyz", f"token: {MASK}"),
    ("access_token=abc123xyz&user=bob", f"access_token={MASK}&user=bob"),
    ("api_key=AbC123", f"api_key={MASK}"),
    ("X-API-Key: AbC123", f"X-API-Key: {MASK}"),
    ("client_secret = s3cr3t, next", f"client_secret = {MASK}, next"),
    ("Authorization: Bearer abcdefghijklmnop", f"Authorization: Bearer {MASK}"),
    ("bearer eyJhbGciOi.eyJzdWIi.sig-nature", f"bearer {MASK}"),
    ("postgres://app:s3cret@db:5432/x", f"postgres://app:{MASK}@db:5432/x"),
    ("see https://bob:pa55@example.com/path", f"see https://bob:{MASK}@example.com/path"),
    ("key sk-" + "a1" * 10 + " here", f"key {MASK} here"),
    ("sk-proj-" + "Z" * 20, MASK),
    ("AKIAABCDEFGHIJKLMNOP", MASK),
    ("ghp_" + "a" * 36, MASK),
    ('{"password": "hunter2", "user": "bob"}', f'{{"password": {MASK}, "user": "bob"}}'),
    ("{'api_key': 'AbC123'}", f"{{'api_key': {MASK}}}"),
    ("redis://:p@ss@cache:6379/0", f"redis://:{MASK}@cache:6379/0"),
])
def test_each_secret_shape_is_masked(text, expected):
    assert redact(text) == expected


@pytest.mark.parametrize("text", [
    "the password policy requires 12 characters",
    "rotate the API key every month",
    "send a bearer token in the header",
    "the token bucket refills each second",
    "see https://example.com/path?a=1 for details",
    "mail alice@example.com about sk-short",
    "",
])
def test_ordinary_text_is_left_alone(text):
    assert redact(text) == text


def test_redacting_twice_is_the_same_as_redacting_once():
    text = "password=hunter2 Bearer abcdefghijklmnop postgres://app:s3cret@db/x AKIAABCDEFGHIJKLMNOP"

    assert redact(redact(text)) == redact(text)


def test_a_password_only_url_is_masked():
    assert redact("redis://:hunter2@cache:6379/0") == f"redis://:{MASK}@cache:6379/0"


def test_token_counts_are_not_secrets():
    assert redact("prompt_tokens: 12, max_tokens=512") == "prompt_tokens: 12, max_tokens=512"


def test_a_misspelled_role_table_fails_loudly(tmp_path):
    path = tmp_path / "scopes.toml"
    path.write_text(SCOPES_FILE.read_text() + "\n[roles.DEVV]\ndecisions = 'story'\n")
    with pytest.raises(ValueError, match="DEVV"):
        load_scopes(SEED_CONTEXT_BUDGETS, path)


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected():
    handler = Collect()
    handler.addFilter(RedactingFilter())
    logger = logging.getLogger("tests.unit.test_agent_context")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield logger, handler.records
    finally:
        logger.removeHandler(handler)
        logger.propagate = True


def test_a_log_record_whose_message_holds_a_secret_is_redacted(collected):
    logger, records = collected

    logger.info("connecting to %s with %s", "postgres://app:s3cret@db/x", "password=hunter2")

    (record,) = records
    assert record.getMessage() == f"connecting to postgres://app:{MASK}@db/x with password={MASK}"
    assert "s3cret" not in record.getMessage() and "hunter2" not in record.getMessage()


def test_a_traceback_that_holds_a_secret_is_redacted(collected):
    logger, records = collected

    try:
        raise ConnectionError("cannot reach redis://:hunter2@cache:6379")
    except ConnectionError:
        logger.exception("store unreachable")

    (record,) = records
    text = logging.Formatter().format(record)
    assert "hunter2" not in text
    assert f"redis://:{MASK}@cache:6379" in text


def test_a_log_record_without_a_secret_is_passed_on_untouched(collected):
    logger, records = collected

    logger.info("deliberation %s finished in %d ms", "d-1", 4200)

    (record,) = records
    assert record.msg == "deliberation %s finished in %d ms"
    assert record.args == ("d-1", 4200)
