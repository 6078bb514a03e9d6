"""A short run of the evaluation set (`just eval`) on the embedded mesh: the targets hold on tasks the demo never ran.

The user-reported task (QA and DEVOPS, a two-criterion rubric), one in Spanish and one whose brief is
near ingress's size limit.
"""

import pytest

from contracts.events import Role
from eval.__main__ import missed_targets
from eval.cases import load_cases
from eval.measures import OVERALL, report
from eval.run import evaluate
from services.mesh.settings import load_settings
from tests.e2e.flows import as_operator, with_default_councils

pytestmark = pytest.mark.e2e

SHORT = ("devops-rate-limit-gateway", "qa-es-pruebas-de-carga-checkout", "devops-build-logs-near-limit")


@pytest.fixture(scope="module")
async def figures(mesh):
    stack, _ = mesh
    client = await as_operator(stack)
    try:
        await with_default_councils(client.jetstream(), [Role.QA, Role.DEVOPS])
        records = await evaluate(client, [c for c in load_cases() if c.name in SHORT],
                                 load_settings(stack.service_environment()), parallel=3, timeout_s=900,
                                 report=print)
    finally:
        await client.close()
    return records, report(records)


async def test_every_judge_and_select_answer_is_schema_valid_and_every_deliberation_completes(figures):
    records, by_role = figures
    overall = by_role[OVERALL]
    assert overall["deliberations"] == 4
    assert not missed_targets(overall), [(r.case, r.role, r.status, r.reason) for r in records]
    assert overall["structured_answers"] >= 4 * 4  # three judge turns and one select turn each, at least


async def test_the_figures_come_per_role_and_overall(figures):
    _, by_role = figures
    assert set(by_role) == {"QA", "DEVOPS", OVERALL}
    assert by_role["DEVOPS"]["deliberations"] == 2 and by_role["QA"]["deliberations"] == 2
    assert by_role[OVERALL]["tokens_mean"] > 0 and by_role[OVERALL]["seconds_mean"] > 0
    assert by_role[OVERALL]["beats_single_agent_by_checks"]["compared"] == 4
