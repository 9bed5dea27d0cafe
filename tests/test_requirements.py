"""requirements.txt and requirements.yml pin the same packages."""
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_conda_file_matches_requirements():
    pins = [line.strip() for line in (ROOT / "requirements.txt").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    env = yaml.safe_load((ROOT / "requirements.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert pip_section == pins
