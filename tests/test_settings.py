"""Settings: the README names every one, and an invalid one is named as the user set it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.settings import ServerSettings

README = Path(__file__).resolve().parents[1] / "README.md"


def test_every_setting_is_in_the_readme():
    text = README.read_text()
    section = text[text.index("### Settings"):text.index("## Building a real season")]
    missing = [name for name in ServerSettings.model_fields if f"`S2SEASONS_{name.upper()}`" not in section]
    assert not missing, f"add these to the README's Settings section: {missing}"


def test_an_invalid_setting_is_named_as_the_user_set_it(tmp_path):
    for command, name, value in ((["build", "--season", "2022-summer", "--bbox", "11,47,11.1,47.1",
                                   "--out", str(tmp_path / "out")], "S2SEASONS_RESOLUTION_M", "-1"),
                                 (["serve"], "S2SEASONS_ONTHEFLY_WORKERS", "many")):
        done = subprocess.run([sys.executable, "-m", "app.cli", *command], env={**os.environ, name: value},
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 2, done.stderr
        assert f"{name}={value}" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()
