"""Scoring final proposals: the judge's verdict, deterministic checks, and the ranking. Pure: no I/O."""

from __future__ import annotations

import ast
import difflib
import re
import statistics

from contracts.events import CheckResult, ProposalScore, RankedProposal, ScoredBy, Verdict

NOT_EMPTY = "not_empty"
ORIGINAL = "original"
PYTHON_PARSES = "python_parses"

# Checks that disqualify: an empty proposal or a copy of a peer's can never win.
GATES = frozenset({NOT_EMPTY, ORIGINAL})
# A failed scored check halves the judge's score instead: broken code counts against a proposal
# that may still be the best plan.
SCORED_CHECK_FACTOR = 0.5
COPY_SIMILARITY = 0.9
# Proposals are compared token by token on their first this many tokens: the comparison's cost grows with
# the square of the length, and at Text's 64,000 characters it took minutes, past the handler's deadline.
COMPARED_TOKENS = 2_000
# A token is a run of at most 8 word characters, or one punctuation mark. Split on spaces alone, text
# without them (Chinese, minified code) was one word, and a near-copy of it compared as different.
_TOKEN = re.compile(r"\w{1,8}|[^\w\s]")

# Closed fences only: a block cut off by the token limit says nothing about the code.
_PYTHON_BLOCK = re.compile(r"```[ \t]*(?:python|py|python3)[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())[:COMPARED_TOKENS]


def python_blocks(text: str) -> list[str]:
    return _PYTHON_BLOCK.findall(text)


def check_not_empty(text: str) -> CheckResult:
    passed = bool(text.strip())
    return CheckResult(check=NOT_EMPTY, passed=passed, detail="" if passed else "the proposal is empty")


def check_original(text: str, earlier: dict[str, str]) -> CheckResult:
    """A copy of a proposal that came earlier in council order is not original."""
    mine = _tokens(text)
    for author, other in earlier.items():
        matcher = difflib.SequenceMatcher(None, mine, _tokens(other), autojunk=False)
        # Both quick ratios bound ratio() from above in linear time: most different proposals stop there,
        # before the comparison whose cost grows with the square of the length.
        if matcher.real_quick_ratio() < COPY_SIMILARITY or matcher.quick_ratio() < COPY_SIMILARITY:
            continue
        similarity = matcher.ratio()
        if similarity >= COPY_SIMILARITY:
            return CheckResult(check=ORIGINAL, passed=False, detail=f"{similarity:.0%} the same as {author}'s")
    return CheckResult(check=ORIGINAL, passed=True)


def check_python_parses(text: str) -> CheckResult | None:
    """Every ```python block must parse; None when the proposal has no such block."""
    blocks = python_blocks(text)
    if not blocks:
        return None
    for number, block in enumerate(blocks, start=1):
        try:
            ast.parse(block)
        except SyntaxError as exc:
            return CheckResult(
                check=PYTHON_PARSES, passed=False, detail=f"block {number}, line {exc.lineno}: {exc.msg}"
            )
    return CheckResult(check=PYTHON_PARSES, passed=True, detail=f"{len(blocks)} block(s) parse")


def checks_for(text: str, earlier: dict[str, str]) -> list[CheckResult]:
    checks = [check_not_empty(text), check_original(text, earlier)]
    if (parses := check_python_parses(text)) is not None:
        checks.append(parses)
    return checks


def score_proposal(
    agent_id: str, text: str, earlier: dict[str, str], verdict: Verdict | None, judge_error: str | None
) -> ProposalScore:
    checks = checks_for(text, earlier)
    qualified = all(c.passed for c in checks if c.check in GATES)
    score = None
    if verdict is not None and verdict.criteria:
        score = statistics.fmean(verdict.criteria.values())
        if any(not c.passed for c in checks if c.check not in GATES):
            score *= SCORED_CHECK_FACTOR
        score = round(score, 2)
    return ProposalScore(
        agent_id=agent_id,
        criteria=dict(verdict.criteria) if verdict else {},
        justification=verdict.justification if verdict else "",
        checks=checks,
        score=score,
        qualified=qualified,
        scoring_error=None if verdict is not None else (judge_error or "no verdict"),
    )


def score_all(finals: dict[str, str], verdicts: dict[str, Verdict], errors: dict[str, str]) -> list[ProposalScore]:
    """Score each final proposal, in the order given (council order decides who copied whom)."""
    scores, earlier = [], {}
    for agent_id, text in finals.items():
        scores.append(score_proposal(agent_id, text, earlier, verdicts.get(agent_id), errors.get(agent_id)))
        earlier[agent_id] = text
    return scores


def rank(scores: list[ProposalScore], revisions: dict[str, int] | None = None) -> list[RankedProposal]:
    """Qualified and scored first, best score first; then unscored; then disqualified.

    Among the unscored, those that pass every check and answered more critiques with a revision come first.
    Other ties keep council order.
    """
    revisions = revisions or {}

    def standing(indexed: tuple[int, ProposalScore]) -> tuple:
        index, s = indexed
        tier = 0 if s.qualified and s.score is not None else 1 if s.qualified else 2
        if tier == 1:
            failed_checks = sum(not c.passed for c in s.checks)
            return tier, failed_checks, -revisions.get(s.agent_id, 0), index
        return tier, -(s.score or 0.0), index

    ordered = [s for _, s in sorted(enumerate(scores), key=standing)]
    return [
        RankedProposal(rank=position, agent_id=s.agent_id, score=s.score, qualified=s.qualified)
        for position, s in enumerate(ordered, start=1)
    ]


def eligible(ranking: list[RankedProposal], top_k: int) -> tuple[list[RankedProposal], ScoredBy]:
    """Who the architect may choose from, and what ranked them.

    The best `top_k` that are qualified and scored; when the judge scored none of the qualified, the best
    `top_k` qualified by the checks.
    """
    scored = [r for r in ranking if r.qualified and r.score is not None][:top_k]
    if scored:
        return scored, ScoredBy.JUDGE
    return [r for r in ranking if r.qualified][:top_k], ScoredBy.CHECKS
