"""Fixtures for the CLI tests: `accessiq` run in a subprocess, as an administrator's shell runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ..conftest import TEST_KEY


@pytest.fixture
def cli(tmp_path: Path) -> Any:
    env = {
        **os.environ,
        "ACCESSIQ_DATA_DIR": str(tmp_path / "data"),
        "ACCESSIQ_SECRET_KEY": TEST_KEY,
        "COLUMNS": "200",
    }
    env.pop("ACCESSIQ_DATABASE_URL", None)

    def run(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-c", "from accessiq.cli import main; main()", *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        if ok:
            assert result.returncode == 0, result.stderr + result.stdout
        return result

    return run
