"""`fleet story show`: a story as the graph read model holds it."""

from __future__ import annotations

from typing import Annotated

import msgspec
import typer

from services.cli.options import AsJson
from services.cli.runner import console, run

app = typer.Typer(help="Stories, as the graph read model shows them.")


@app.command("show")
def story_show(story_id: Annotated[str, typer.Argument(help="The story id.")], as_json: AsJson = False) -> None:
    """A story as a tree: plans, tasks, and each task's deliberations and decisions."""
    from contracts.queries import SHOW_STORY, ShowStory
    from services.cli.read_models import query, story_tree

    view = run(query(SHOW_STORY, ShowStory(story_id=story_id)))
    if as_json:
        print(msgspec.json.encode(view).decode())
    else:
        console.print(story_tree(view))
