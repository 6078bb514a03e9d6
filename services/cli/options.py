"""Options several `fleet` commands share, spelled once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DataDir = Annotated[
    Path, typer.Option("--data-dir", envvar="FLEET_DATA_DIR", help="Where the embedded servers keep their data.")
]
AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
