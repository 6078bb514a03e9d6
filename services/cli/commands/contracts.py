"""`fleet contracts`: the JSON Schemas, the catalog and the AsyncAPI document, derived from contracts/."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from services.cli.runner import console

app = typer.Typer(help="Event contracts declared in contracts/.")
ASYNCAPI_FILE = "asyncapi.json"


@app.command("export")
def contracts_export(
    out: Annotated[Path, typer.Option(help="Folder for the schemas and the catalog.")] = Path("docs/contracts"),
) -> None:
    """Write a JSON Schema per event and the Markdown catalog."""
    from contracts.export import catalog_markdown, json_schemas

    out.mkdir(parents=True, exist_ok=True)
    schemas = json_schemas()
    for stale in {p.name for p in out.glob("*.schema.json")} - set(schemas):
        (out / stale).unlink()
        console.print(f"removed {stale}: no such event any more")
    for name, schema in schemas.items():
        (out / name).write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
    (out / "catalog.md").write_text(catalog_markdown())
    (out / ASYNCAPI_FILE).write_text(_asyncapi_text())
    console.print(f"wrote {len(json_schemas())} schemas, catalog.md and {ASYNCAPI_FILE} to {out}")


def _asyncapi_text() -> str:
    from contracts.asyncapi import asyncapi_document

    return json.dumps(asyncapi_document(), indent=2, sort_keys=True) + "\n"


@app.command("asyncapi")
def contracts_asyncapi() -> None:
    """Print the AsyncAPI 3.0 document of every subject, built from contracts/ (also written by `export`)."""
    print(_asyncapi_text(), end="")
