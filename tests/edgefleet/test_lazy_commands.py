"""Lazily loaded commands: listed without importing them, a missing extra says what to install (exit 3), a broken
module of ours is raised as it is, and `edgefleet model` is composed without changing models.cli's app."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest
import typer
import typer.main
from click.testing import CliRunner
from typer.testing import CliRunner as TyperRunner

from edgefleet.cli import COMMANDS, cli
from edgefleet.lazy_commands import LazyCommand, LazyGroup, LazyTyperGroup

ABSENT = LazyCommand("absent", "no_such_dependency_for_edgefleet_tests.cli:app", "extra-x", "Needs extra-x.")
BROKEN = LazyCommand("broken", "edgefleet.no_such_module_for_tests:app", "agent", "One of ours, broken.")
EXITS = LazyCommand("exits", "tests.edgefleet.test_lazy_commands:exit_four", "agent", "Exits 4.")


def exit_four(count: int = typer.Option(1, "--count")) -> None:
    """Leave with typer's own Exit, which a plain click group does not know."""
    typer.echo(f"count {count}")
    raise typer.Exit(4)


class _ClickGroup(LazyGroup):
    lazy_commands = (ABSENT, BROKEN, EXITS)


class _TyperGroup(LazyTyperGroup):
    lazy_commands = (ABSENT, BROKEN)


def _click_group() -> click.Group:
    return _ClickGroup(name="edgefleet", help="a test group")


def _typer_app() -> typer.Typer:
    app = typer.Typer(cls=_TyperGroup, add_completion=False, no_args_is_help=True)

    @app.callback()
    def group() -> None:
        """A test group (a callback keeps typer from collapsing a one-command app into that command)."""

    @app.command("present")
    def present() -> None:
        """Always there."""
        typer.echo("present ran")

    return app


def _modules_after(code: str) -> list[str]:
    """The edgefleet programs' modules a fresh interpreter holds after ``code`` (none imported before it)."""
    probe = (f"import sys\n{code}\n"
             "print(__import__('json').dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
             "('fleet_server', 'edge_agent', 'training') or m == 'edgefleet.demo')))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_top_level_help_lists_every_program_without_importing_any() -> None:
    loaded = _modules_after("from click.testing import CliRunner\nfrom edgefleet.cli import cli\n"
                            "r = CliRunner().invoke(cli, ['--help'])\nassert r.exit_code == 0, r.output\n"
                            + "".join(f"assert {c.summary!r} in r.output\n" for c in COMMANDS))
    assert loaded == []


def test_agent_and_model_help_do_not_import_their_lazy_commands() -> None:
    agent = _modules_after("from click.testing import CliRunner\nfrom edgefleet.cli import cli\n"
                           "r = CliRunner().invoke(cli, ['agent', '--help'])\nassert r.exit_code == 0, r.output\n"
                           "assert 'Enroll this device' in r.output and 'until Ctrl-C' in r.output")
    assert "edge_agent.cli" in agent and not {"edge_agent.cli.enroll", "edge_agent.cli.run"} & set(agent)
    model = _modules_after("from click.testing import CliRunner\nfrom edgefleet.cli import cli\n"
                           "r = CliRunner().invoke(cli, ['model', '--help'])\nassert r.exit_code == 0, r.output\n"
                           "assert 'quantize' in r.output and 'bench' in r.output")
    assert not [m for m in model if m.startswith("training")]


@pytest.mark.parametrize("flavour", ["click", "typer"])
def test_a_missing_third_party_dependency_names_the_extra_and_exits_3(flavour: str) -> None:
    if flavour == "click":
        result = CliRunner().invoke(_click_group(), ["absent", "--any", "thing"], prog_name="edgefleet")
    else:
        result = TyperRunner().invoke(_typer_app(), ["absent", "--any", "thing"], prog_name="edgefleet")
    assert result.exit_code == 3, result.output
    assert result.stderr == ("`edgefleet absent` needs packages that are not installed "
                             "(no_such_dependency_for_edgefleet_tests).\n"
                             "Install them with: pip install 'edgefleet[extra-x]'\n")


@pytest.mark.parametrize("flavour", ["click", "typer"])
def test_a_broken_module_of_our_own_is_raised_not_blamed_on_the_install(flavour: str) -> None:
    if flavour == "click":
        result = CliRunner().invoke(_click_group(), ["broken"])
    else:
        result = TyperRunner().invoke(_typer_app(), ["broken"])
    assert isinstance(result.exception, ModuleNotFoundError)
    assert result.exception.name == "edgefleet.no_such_module_for_tests"


def test_listing_shows_declared_summaries_after_registered_commands() -> None:
    result = TyperRunner().invoke(_typer_app(), ["--help"], env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    rows = [line.strip("│ ").split()[0] for line in result.output.splitlines() if "Always there" in line
            or "Needs extra-x" in line or "One of ours" in line]
    assert rows == ["present", "absent", "broken"]
    assert TyperRunner().invoke(_typer_app(), ["present"]).stdout == "present ran\n"


def test_a_click_group_turns_typer_exits_into_exit_codes() -> None:
    result = CliRunner().invoke(_click_group(), ["exits", "--count", "2"])
    assert (result.exit_code, result.stdout) == (4, "count 2\n")
    usage = CliRunner().invoke(_click_group(), ["exits", "--count", "many"])
    assert usage.exit_code == 2 and "Invalid value for '--count'" in usage.stderr


def test_a_command_cannot_be_declared_lazily_and_registered_too() -> None:
    class Twice(LazyTyperGroup):
        lazy_commands = (LazyCommand("present", "x:y", "agent", "again"),)

    app = typer.Typer(cls=Twice, add_completion=False)
    app.command("present")(exit_four)
    app.command("other")(exit_four)
    with pytest.raises(ValueError, match="'present' is declared lazily and also registered"):
        typer.main.get_command(app)


def test_edgefleet_model_is_composed_without_changing_models_cli() -> None:
    from models.cli import model_app

    result = CliRunner().invoke(cli, ["model", "--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0, result.output
    own = ["verify", "inspect", "package", "import", "keygen", "list", "add"]
    listed = [line.strip("│ ").split()[0] for line in result.output.splitlines()
              if line.startswith("│ ") and line.strip("│ ").split()[0] in [*own, "quantize", "bench"]]
    assert listed == [*own, "quantize", "bench"]
    assert list(typer.main.get_command(model_app).commands) == own
    quantize = CliRunner().invoke(cli, ["model", "quantize", "--help"], env={"COLUMNS": "120"})
    assert quantize.exit_code == 0 and "Quantize an ONNX model to INT8 (onnxruntime QDQ and OpenVINO NNCF)." in (
        quantize.output)
