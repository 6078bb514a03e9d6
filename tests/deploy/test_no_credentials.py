"""No credential is committed: Yelp's detect-secrets scans every tracked file, and each hit is an audited false alarm.

`.secrets.baseline` lists what the scanner flags today with `is_secret: false`, after a person read each
line: Kubernetes Secret *names*, redaction examples in tests and docs (`sk-stand-in`, `AKIA…` fakes),
settings that name a password variable. A new hit fails here until someone audits it:

    uv tool run --from detect-secrets==1.5.0 detect-secrets scan --baseline .secrets.baseline
    uv tool run --from detect-secrets==1.5.0 detect-secrets audit .secrets.baseline
"""

import json
import shutil
import subprocess
import sys

import pytest

from tests.deploy.manifests import ROOT

DETECT_SECRETS = "detect-secrets==1.5.0"  # pragma: allowlist secret
BASELINE = ROOT / ".secrets.baseline"


def findings(report: dict) -> set[tuple[str, str, str]]:
    """What was found, without line numbers, which move with every edit above a hit."""
    return {(path, hit["type"], hit["hashed_secret"]) for path, hits in report["results"].items() for hit in hits}


@pytest.fixture(scope="module")
def scan():
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("detect-secrets runs through `uv tool run`, and uv is not on PATH (./dev puts it there)")
    # Without --all-files it reads only what git tracks: what a clone would hand out.
    command = [uv, "tool", "run", "--python", sys.executable, "--from", DETECT_SECRETS, "detect-secrets", "scan",
               "--exclude-files", r"^\.secrets\.baseline$"]
    completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


def test_every_hit_in_the_tracked_files_was_audited_as_no_credential(scan):
    baseline = json.loads(BASELINE.read_text())
    new = findings(scan) - findings(baseline)
    lines = {(path, hit["type"], hit["hashed_secret"]): hit["line_number"]
             for path, hits in scan["results"].items() for hit in hits}
    assert not new, "unaudited possible credentials:\n" + "\n".join(
        f"  {path}:{lines[(path, kind, digest)]}: {kind}" for path, kind, digest in sorted(new))


def test_the_baseline_holds_only_false_alarms():
    baseline = json.loads(BASELINE.read_text())
    secrets = [f"{path}:{hit['line_number']}" for path, hits in baseline["results"].items()
               for hit in hits if hit.get("is_secret") is not False]
    assert not secrets, f"the baseline accepts these as real or unaudited: {secrets}"


def test_the_scanner_finds_a_committed_key(tmp_path):
    """The scan is not blind: the same tool, on a file holding a key of a known shape, reports it."""
    uv = shutil.which("uv")
    if uv is None:
        pytest.skip("uv is not on PATH")
    leaked = tmp_path / "settings.py"
    fake_token = "ghp_" + "x7Kq2N9vR4mT8wY1bC5dF3gH6jL0pS2uV9zA"  # pragma: allowlist secret
    leaked.write_text(f'GITHUB_TOKEN = "{fake_token}"\n')
    command = [uv, "tool", "run", "--python", sys.executable, "--from", DETECT_SECRETS,
               "detect-secrets", "scan", str(leaked)]
    completed = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr
    assert {hit["type"] for hits in json.loads(completed.stdout)["results"].values() for hit in hits} >= {
        "GitHub Token"}
