"""Every guide runs end to end, as a reader would run it."""

import glob
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GUIDES = sorted(glob.glob(os.path.join(REPO, "guides", "*.py")))


@pytest.mark.slow
@pytest.mark.parametrize("guide", GUIDES, ids=os.path.basename)
def test_guide_runs(guide, tmp_path):
    env = dict(os.environ, PYTHONPATH=REPO, KERAS_BACKEND="tensorflow")
    result = subprocess.run(
        [sys.executable, guide], cwd=tmp_path, env=env, capture_output=True,
        text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
