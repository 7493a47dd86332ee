"""The Ansible role's contract: every default is documented in meta/argument_specs.yml with the same
value, and ansible-lint passes its production profile (the latter needs tests/deploy/ci-deps.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import vps as vpsmod  # noqa: E402

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
ROLE = ANSIBLE_DIR / "roles" / "hean"


def _yaml(path: Path):
    """Parse YAML with the controller's PyYAML (the ansible venv has it; HEAN itself does not)."""
    python = vpsmod.TOOLS / "bin" / "python"
    if not python.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("no controller venv under CI (run tests/deploy/ci-deps.sh)")
        pytest.skip("no controller venv (run tests/deploy/ci-deps.sh)")
    out = subprocess.run([str(python), "-c", "import json,sys,yaml; print(json.dumps(yaml.safe_load(open(sys.argv[1]))))",
                          str(path)], check=True, capture_output=True, text=True)
    return json.loads(out.stdout)


def test_argument_specs_document_exactly_the_defaults():
    defaults = _yaml(ROLE / "defaults" / "main.yml")
    options = _yaml(ROLE / "meta" / "argument_specs.yml")["argument_specs"]["main"]["options"]
    assert sorted(defaults) == sorted(options), "defaults/main.yml and meta/argument_specs.yml list different variables"
    for name, value in defaults.items():
        assert options[name].get("default") == value, f"{name}: default {value!r} vs spec {options[name].get('default')!r}"
        assert options[name].get("description"), f"{name} has no description"
    assert all(name.startswith("hean_") for name in defaults)


def test_ansible_lint_production_profile():
    lint = vpsmod.TOOLS / "bin" / "ansible-lint"
    if not lint.exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail("no ansible-lint under CI (run tests/deploy/ci-deps.sh)")
        pytest.skip("no ansible-lint (run tests/deploy/ci-deps.sh)")
    env = {**os.environ, "PATH": f"{lint.parent}:{os.environ['PATH']}", "NO_COLOR": "1", "ANSIBLE_NOCOLOR": "1"}
    out = subprocess.run([str(lint), "--profile", "production", "--strict"], cwd=ANSIBLE_DIR, env=env,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-4000:]
