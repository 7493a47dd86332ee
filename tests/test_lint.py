"""Static checks that catch real bugs (undefined names, unused imports, syntax), not style."""

from __future__ import annotations

import subprocess
import sys

from tests.utils import ROOT


def test_pyflakes_clean():
    proc = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--select", "F,E9",
                           "--output-format", "concise", "hean", "tests"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
