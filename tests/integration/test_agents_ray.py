"""The agents' Ray driver, on a real local Ray."""

import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.integration

JOIN_AND_REPORT = textwrap.dedent("""
    import signal
    import ray
    from services.agents.app import connect_ray

    def graceful_stop(signum, frame):
        pass

    signal.signal(signal.SIGTERM, graceful_stop)
    connect_ray(None)
    try:
        print("kept" if signal.getsignal(signal.SIGTERM) is graceful_stop else "replaced")
    finally:
        ray.shutdown()
""")


def test_joining_ray_keeps_the_services_graceful_stop_on_sigterm(tmp_path):
    # ray.init makes SIGTERM a bare sys.exit: a rollout would cut the turns in hand instead of draining them
    # and handing back the rest (services/mesh/consuming.py), and they would wait out the ack wait.
    env = {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0",
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", JOIN_AND_REPORT], env=env, capture_output=True, text=True,
                          timeout=180, cwd=".")
    assert done.stdout.strip().splitlines()[-1:] == ["kept"], done.stderr[-2000:]
