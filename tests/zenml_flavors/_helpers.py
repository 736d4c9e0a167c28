"""Helpers of the ZenML flavor tests: the ZenML command line in this process, stacks."""

from __future__ import annotations

from typing import Any

from click.testing import CliRunner
from zenml.cli.cli import cli
from zenml.client import Client
from zenml.enums import StackComponentType
from zenml.stack import StackComponent


def run_zenml(*args: str, expect_failure: bool = False) -> str:
    """Run ``zenml ARGS`` in this process (click's runner); return its output.

    Fails the test when the command fails. With ``expect_failure``, fails it when
    the command succeeds, and returns the output followed by the exception's message.
    """
    result = CliRunner().invoke(cli, list(args), catch_exceptions=expect_failure)
    if expect_failure:
        assert result.exit_code != 0, f"zenml {' '.join(args)} succeeded:\n{result.output}"
        return f"{result.output}\n{result.exception or ''}"
    assert result.exit_code == 0, f"zenml {' '.join(args)} failed:\n{result.output}"
    return result.output


def register_stack(name: str, flavor: str, path: str, *options: str) -> None:
    """``zenml artifact-store register`` and ``zenml stack register --set`` (local orchestrator)."""
    run_zenml("artifact-store", "register", name, f"--flavor={flavor}", f"--path={path}", *options)
    run_zenml("stack", "register", name, "-o", "default", "-a", name, "--set")


def artifact_store(name: str) -> Any:
    """The registered artifact store ``name``, made as ZenML makes it for a step."""
    model = Client().get_stack_component(StackComponentType.ARTIFACT_STORE, name)
    return StackComponent.from_model(model)
