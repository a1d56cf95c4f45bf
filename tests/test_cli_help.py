"""Every command's ``--help``, as a pipe or log gets it: booleans are plain flags, every option says what it does."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
import typer

from app.cli import cli  # the s2seasons entry point: the library's commands and serve, demo

ROOT = typer.main.get_command(cli)
COMMANDS = sorted(ROOT.commands)  # every command, also ones added later


def test_the_commands_are_all_there():
    assert {"build", "scenes", "export", "serve", "demo", "sample-data"} <= set(COMMANDS)


@pytest.mark.parametrize("command", [[], *([name] for name in COMMANDS)], ids=lambda c: " ".join(c) or "s2seasons")
def test_help_shows_booleans_as_flags_without_a_value(command):
    done = subprocess.run([sys.executable, "-m", "app.cli", *command, "--help"], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    shown = done.stdout
    for value in ("<bool>", "BOOLEAN", "<boolean>", "/ --no-", "/--no-"):
        assert value not in shown, f"{value!r} in the help of {command}:\n{shown}"
    assert "--help  " in shown
    for param in ([] if not command else ROOT.commands[command[0]].params):
        if isinstance(param, click.Option) and param.is_flag:
            assert any(f"{opt}  " in shown or f"{opt}\n" in shown for opt in param.opts), (param.opts, shown)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help_and_every_boolean_is_a_single_flag(name):
    command = ROOT.commands[name]
    assert command.help, name
    for param in command.params:
        assert getattr(param, "help", None), f"{name} {param.name}: no help text"
        if isinstance(param, click.Option) and isinstance(param.type, click.types.BoolParamType):
            assert param.is_flag and not param.secondary_opts, f"{name} {param.opts}: not a plain flag"


def test_demo_command_prepares_the_demo(monkeypatch, tmp_path):
    """The wiring of ``s2seasons demo`` (its data preparation is `compositor.testing.demo`, run by the viewer tests
    and scripts/demo): it finds the preparation and reports it."""
    from typer.testing import CliRunner

    import compositor.testing.demo as demo

    prepared = []
    monkeypatch.setattr(demo, "prepare_demo", lambda folder, echo: prepared.append(folder) or {})
    result = CliRunner().invoke(cli, ["demo", "--dir", str(tmp_path / "demo"), "--no-serve"])
    assert result.exit_code == 0, result.output
    assert prepared == [tmp_path / "demo"] and "demo ready" in result.output
