"""llama.cpp's native `llama-server`, built once from the source that uv.lock pins, and found in a cache.

The embedded LLM is llama.cpp's own server rather than llama-cpp-python's: it turns every JSON Schema
into a grammar that enforces it (integer ranges, string lengths, no raw control characters inside
strings), takes the OpenAI `json_schema` form that vLLM takes, and serves several requests at once.
It is built from the llama.cpp that llama-cpp-python's source package vendors, the release uv.lock
pins, verified by its sha256, with the same portable CPU flags as the Python package.

    python -m services.embedded.llama_server    # build it now (about 4 minutes on 2 cores), or say where it is
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import tomllib
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.embedded.binaries import MissingBinary, scripts_dir

PACKAGE = "llama-cpp-python"
LOCK_FILE = Path(__file__).resolve().parents[2] / "uv.lock"
# The same portable x86-64 build as the Python package's (pyproject.toml): -march=native crashed on VMs
# that advertise AVX-512/AMX. Static, so the binary needs nothing beside it.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release", "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
    "-DLLAMA_BUILD_SERVER=ON", "-DLLAMA_BUILD_TOOLS=ON", "-DLLAMA_BUILD_TESTS=OFF", "-DLLAMA_BUILD_EXAMPLES=OFF",
    # Nothing may be fetched while building: no curl, no TLS, no prebuilt web UI from a model hub.
    "-DLLAMA_CURL=OFF", "-DLLAMA_OPENSSL=OFF", "-DLLAMA_BUILD_UI=OFF", "-DLLAMA_USE_PREBUILT_UI=OFF",
)
PROGRESS_EVERY_S = 30.0


@dataclass(frozen=True)
class Source:
    """The source package uv.lock pins: where it is and what it must hash to."""

    version: str
    url: str
    sha256: str

    @property
    def build_key(self) -> str:
        flags = hashlib.sha256(" ".join(CMAKE_FLAGS).encode()).hexdigest()[:12]
        return f"{self.version}-{self.sha256[:12]}-{flags}"


def locked_source(lock_file: Path = LOCK_FILE) -> Source:
    packages = tomllib.loads(lock_file.read_text())["package"]
    entry = next((p for p in packages if p["name"] == PACKAGE), None)
    if entry is None or "sdist" not in entry:
        raise MissingBinary(f"{lock_file} pins no source package of {PACKAGE}")
    sha = entry["sdist"]["hash"].removeprefix("sha256:")
    return Source(version=entry["version"], url=entry["sdist"]["url"], sha256=sha)


def cache_dir() -> Path:
    if explicit := os.environ.get("FLEET_CACHE_DIR"):
        return Path(explicit)
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "swe-ai-fleet"


def binary_path(source: Source | None = None) -> Path:
    return cache_dir() / "llama-server" / (source or locked_source()).build_key / "llama-server"


def llama_server() -> Path:
    """The built binary; FLEET_LLAMA_SERVER points at another one."""
    if explicit := os.environ.get("FLEET_LLAMA_SERVER"):
        return Path(explicit)
    path = binary_path()
    if not path.exists():
        raise MissingBinary(
            f"{path} not built yet: run `python -m services.embedded.llama_server` (./dev does, about 4 minutes "
            "on 2 cores), or point FLEET_LLAMA_SERVER at a llama-server binary"
        )
    return path


def _cmake() -> str:
    for candidate in (scripts_dir() / "cmake", shutil.which("cmake")):
        if candidate and Path(candidate).exists():
            return str(candidate)
    raise MissingBinary("cmake not found: it comes with the project's environment (`uv sync`)")


def _download(source: Source, into: Path, report: Callable[[str], None]) -> Path:
    archive = into / Path(source.url).name
    report(f"downloading {source.url}")
    digest = hashlib.sha256()
    with urllib.request.urlopen(source.url, timeout=120) as reply, archive.open("wb") as out:  # noqa: S310 - https from uv.lock
        while chunk := reply.read(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != source.sha256:
        raise RuntimeError(f"{archive.name}: sha256 {digest.hexdigest()} is not the {source.sha256} uv.lock pins")
    return archive


def _vendored_llama_cpp(archive: Path, into: Path) -> Path:
    with tarfile.open(archive) as tar:
        members = [m for m in tar.getmembers() if "/vendor/llama.cpp/" in m.name]
        tar.extractall(into, members=members, filter="data")
    return next(into.glob("*/vendor/llama.cpp"))


def _run(argv: list[str], log: Path, what: str, report: Callable[[str], None]) -> None:
    began = time.monotonic()
    with log.open("a") as out, subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT) as process:
        while process.poll() is None:
            try:
                process.wait(timeout=PROGRESS_EVERY_S)
            except subprocess.TimeoutExpired:
                report(f"    ... {what}, {time.monotonic() - began:.0f}s so far")
    if process.returncode != 0:
        tail = "\n".join(log.read_text().splitlines()[-30:])
        raise RuntimeError(f"{what} failed (exit {process.returncode}); the end of {log}:\n{tail}")


def build(report: Callable[[str], None] = print) -> Path:
    """Build llama-server unless the cache has it for this source and these flags; return its path."""
    source = locked_source()
    target = binary_path(source)
    if target.exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    jobs = str(os.cpu_count() or 2)
    report(f"building llama-server {source.version} into {target.parent} (about 4 minutes on 2 cores)")
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="llama-server-") as work:
        work_dir = Path(work)
        log = target.parent / "build.log"
        log.unlink(missing_ok=True)
        tree = _vendored_llama_cpp(_download(source, work_dir, report), work_dir)
        build_dir = work_dir / "build"
        _run([_cmake(), "-S", str(tree), "-B", str(build_dir), *CMAKE_FLAGS], log, "configuring", report)
        _run([_cmake(), "--build", str(build_dir), "--target", "llama-server", "-j", jobs], log, "compiling", report)
        staged = target.with_suffix(".tmp")
        shutil.copy2(build_dir / "bin" / "llama-server", staged)
        staged.replace(target)
    report(f"llama-server built in {time.monotonic() - began:.0f}s: {target}")
    return target


if __name__ == "__main__":
    if binary_path().exists():
        sys.exit(0)
    try:
        build(lambda line: print(f"==> {line}" if not line.startswith(" ") else line, flush=True))
    except (MissingBinary, RuntimeError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
