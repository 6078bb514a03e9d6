"""`fleet council`: create, list, delete and seed the councils (events on the CONFIG stream)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from contracts import catalog
from contracts.events import DEFAULT_DELIBERATION_DEADLINE_S
from services.cli.runner import CommandError, console, run

app = typer.Typer(help="Councils: the agents that deliberate for each role (events on the CONFIG stream).")

RoleOption = Annotated[str, typer.Option("--role", help="DEV, QA, ARCHITECT, DEVOPS or DATA.", case_sensitive=False)]
MAX_AGENTS = 16  # contracts.events.Council holds at most this many


def _role(raw: str):
    from contracts.events import Role

    try:
        return Role(raw.upper())
    except ValueError:
        raise CommandError(f"unknown role {raw!r}; choose one of {', '.join(r.value for r in Role)}") from None


@app.command("create")
def council_create(
    role: RoleOption,
    agents: Annotated[int, typer.Option(min=1, max=MAX_AGENTS, help="How many agents.")] = 3,
    model: Annotated[str | None, typer.Option(help="LLM model; default: the agents service's model.")] = None,
    rounds: Annotated[int, typer.Option(min=0, max=5, help="Critique and revision rounds.")] = 1,
    quorum: Annotated[int | None, typer.Option(
        min=1, max=MAX_AGENTS, help="Proposals needed to go on; default: a majority.")] = None,
    top_k: Annotated[int, typer.Option(
        min=1, max=MAX_AGENTS, help="How many best-scored proposals the architect chooses from.")] = 3,
    deadline: Annotated[float, typer.Option(min=1, max=86_400, help="Seconds each phase may take.")] = 300.0,
    deliberation_deadline: Annotated[float, typer.Option(
        min=1, max=7 * 86_400, help="Seconds a whole deliberation may take, whatever its phases.")
    ] = DEFAULT_DELIBERATION_DEADLINE_S,
    by: Annotated[str, typer.Option(help="Who is creating it, for the record.")] = catalog.OPERATOR,
) -> None:
    """Give a role a council. Each agent gets its own persona, temperature and seed."""
    from services.cli.councils import create_council
    from services.councils.domain import new_council

    council = new_council(
        _role(role), agents, model=model, critique_rounds=rounds, quorum=quorum, top_k=top_k,
        phase_deadline_s=deadline, deliberation_deadline_s=deliberation_deadline,
    )
    run(create_council(council, by))
    members = ", ".join(a.agent_id for a in council.agents)
    console.print(f"[green]created[/] the {council.role.value} council: {members}")


@app.command("list")
def council_list() -> None:
    """Show every council in force, its agents and its protocol."""
    from services.cli.councils import list_councils

    found = run(list_councils())
    if not found:
        console.print("no councils; the planning service seeds the defaults on its first start")
        return
    table = Table("role", "agent", "persona", "temperature", "seed", "model", "protocol")
    for council in found.values():
        p = council.protocol
        protocol = (f"rounds {p.critique_rounds}, quorum {p.quorum}, top {p.top_k}, {p.phase_deadline_s:g}s/phase, "
                    f"{p.deliberation_deadline_s:g}s in all")
        for index, agent in enumerate(council.agents):
            table.add_row(
                council.role.value if index == 0 else "", agent.agent_id, agent.persona.split(":")[0],
                f"{agent.temperature:g}", str(agent.seed), agent.model or "(default)", protocol if index == 0 else "",
            )
    console.print(table)


@app.command("delete")
def council_delete(
    role: RoleOption, by: Annotated[str, typer.Option(help="Who is deleting it, for the record.")] = catalog.OPERATOR
) -> None:
    """Remove a role's council; approvals naming the role are dead-lettered until a new one exists."""
    from services.cli.councils import delete_council

    chosen = _role(role)
    run(delete_council(chosen, by))
    console.print(f"[yellow]deleted[/] the {chosen.value} council")


@app.command("seed")
def council_seed(
    by: Annotated[str, typer.Option(help="Who is seeding, for the record.")] = "provisioner",
) -> None:
    """Publish the default councils (5 roles x 3 agents) unless a council was ever configured. Safe to re-run."""
    from services.cli.councils import seed_councils

    if run(seed_councils(by)):
        console.print("[green]seeded[/] the default councils: DEV, QA, ARCHITECT, DEVOPS, DATA, 3 agents each")
    else:
        console.print("councils were configured before: nothing seeded")
