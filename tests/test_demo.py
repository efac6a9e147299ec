"""``remediator demo`` as the README advertises it: a real incident on the simulated
cluster, ending recovered at the rollback step (wall-clock: about 15 s)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_recovers_the_bad_rollout() -> None:
    done = subprocess.run([sys.executable, "-m", "remediator.cli", "demo"],
                          capture_output=True, text=True, timeout=180, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "recovered at step 'roll back'" in done.stdout
    assert "roll back Deployment prod/api from revision" in done.stdout
