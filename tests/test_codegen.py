"""The generated modules are up to date and mirror their async sources.

The facade ``ArtifactStore`` mirrors ``AsyncArtifactStore``; ``artifactio.blocking``
mirrors the bulk transfer functions of ``artifactio.transfer._api``.
"""

from __future__ import annotations

import inspect
import subprocess
import sys
from typing import TYPE_CHECKING

import pytest

import artifactio.blocking
from artifactio import ArtifactStore, AsyncArtifactStore
from artifactio._codegen import (
    BANNER,
    BLOCKING,
    FACADES,
    SOURCE,
    TARGET,
    generate,
    leftover_async_words,
    main,
    translate_docstring,
)

if TYPE_CHECKING:
    from pathlib import Path

RENAMED = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}


def _public(cls: type) -> list[str]:
    return [
        name
        for name, _ in inspect.getmembers(cls)
        if not name.startswith("_") or name in RENAMED or name in RENAMED.values()
    ]


def test_committed_facade_is_what_the_generator_writes() -> None:
    generated = generate(SOURCE.read_text(encoding="utf-8"))
    committed = TARGET.read_text(encoding="utf-8")
    assert committed == generated, "stale: run `python -m artifactio._codegen`"
    assert committed.startswith(BANNER + "\n")


def test_check_command_passes_on_the_committed_file() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "artifactio._codegen", "--check"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("up to date") == len(FACADES), proc.stdout


def test_check_fails_with_a_diff_and_write_repairs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "_store.py"
    target.write_text(TARGET.read_text().replace("def exists(", "def exists_edited_by_hand("))
    assert main(["--check", "--target", str(target)]) == 1
    out = capsys.readouterr().out
    assert "-    def exists_edited_by_hand(" in out
    assert "+    def exists(" in out
    assert main(["--target", str(target)]) == 0
    assert main(["--check", "--target", str(target)]) == 0
    missing = tmp_path / "missing.py"
    assert main(["--check", "--target", str(missing)]) == 1


def test_same_methods_parameters_and_docstrings() -> None:
    async_names = {RENAMED.get(name, name) for name in _public(AsyncArtifactStore)}
    sync_names = set(_public(ArtifactStore)) - {"async_store"}
    assert sync_names == async_names - {"checks_ancestors", "inline_capable", "scheme"}
    for name in _public(AsyncArtifactStore):
        source = getattr(AsyncArtifactStore, name)
        if not callable(source):
            continue
        target = getattr(ArtifactStore, RENAMED.get(name, name))
        a_params = list(inspect.signature(source).parameters.values())
        s_params = list(inspect.signature(target).parameters.values())
        assert [(p.name, p.kind, p.default) for p in a_params] == [
            (p.name, p.kind, p.default) for p in s_params
        ], name
        if source.__doc__:
            assert target.__doc__ == translate_docstring(source.__doc__), name
            assert leftover_async_words(inspect.cleandoc(target.__doc__)) == [], name


def test_type_hints_are_translated() -> None:
    hints = inspect.get_annotations(ArtifactStore.walk)
    assert hints["return"] == "Iterator[WalkEntry]"
    assert inspect.get_annotations(ArtifactStore.open)["return"] == "IO[Any]"
    assert inspect.get_annotations(ArtifactStore.exists) == {"path": "PathType", "return": "bool"}
    text = TARGET.read_text()
    assert "Async" not in text.replace("AsyncArtifactStore`", "")
    assert "await" not in text


def test_docstring_translation_rules() -> None:
    text = (
        "Use ``async with store:`` or :meth:`aclose`; ``async for x in store.walk()``; "
        "``await f.read()`` gives an AsyncIterator of AsyncArtifactStore OpenContext AsyncFile."
    )
    assert translate_docstring(text) == (
        "Use ``with store:`` or :meth:`close`; ``for x in store.walk()``; "
        "``f.read()`` gives an Iterator of ArtifactStore IO IO."
    )


def test_generator_translates_a_changed_source() -> None:
    source = SOURCE.read_text().replace(
        "    async def exists(self, path: PathType) -> bool:",
        "    async def exists(self, path: PathType, *, follow: bool = True) -> bool:",
    )
    generated = generate(source)
    assert "def exists(self, path: PathType, *, follow: bool = True) -> bool:" in generated
    assert "return self._run(self._async.exists(path, follow=follow))" in generated
    with pytest.raises(ValueError, match="no class"):
        generate("class Other: pass\n")


def test_layout_follows_the_project_ruff_settings() -> None:
    """Long signatures and calls are split as ruff format splits them, at 100 columns."""
    long_signature = (
        "    async def exists(self, path: PathType, *, follow_symlinks: bool = True, "
        "timeout: float | None = None, retries: int = 3) -> bool:"
    )
    source = SOURCE.read_text().replace(
        "    async def exists(self, path: PathType) -> bool:", long_signature
    )
    generated = generate(source)
    assert max(len(line) for line in generated.splitlines()) <= 100
    assert "    def exists(\n        self,\n        path: PathType,\n        *,\n" in generated
    assert "\n        follow_symlinks: bool = True,\n" in generated
    compile(generated, str(TARGET), "exec")


# ------------------------------------------------------------ artifactio.blocking


def test_committed_blocking_module_is_what_the_generator_writes() -> None:
    generated = generate(BLOCKING.source.read_text(encoding="utf-8"), BLOCKING)
    assert BLOCKING.target.read_text(encoding="utf-8") == generated, "stale: run the generator"
    assert generated.startswith(BLOCKING.banner + "\n")
    assert "await" not in generated


@pytest.mark.parametrize("name", ["copy", "sync"])
def test_blocking_twins_mirror_the_async_functions(name: str) -> None:
    source = getattr(artifactio, name)
    twin = getattr(artifactio.blocking, name)
    assert inspect.iscoroutinefunction(source)
    assert not inspect.iscoroutinefunction(twin)
    assert twin.__name__ == name
    assert twin.__module__ == "artifactio.blocking"
    a_params = list(inspect.signature(source).parameters.values())
    s_params = list(inspect.signature(twin).parameters.values())
    assert [(p.name, p.kind, p.default, p.annotation) for p in a_params] == [
        (p.name, p.kind, p.default, p.annotation) for p in s_params
    ]
    assert inspect.get_annotations(twin) == inspect.get_annotations(source)
    assert twin.__doc__ == translate_docstring(source.__doc__, BLOCKING)
    assert leftover_async_words(inspect.cleandoc(twin.__doc__)) == []
    assert artifactio.blocking.__all__ == ["copy", "sync"]


def test_blocking_docstring_rules() -> None:
    text = "Like ``await artifactio.copy(a, b)``; see artifactio.sync and AsyncArtifactStore."
    assert translate_docstring(text, BLOCKING) == (
        "Like ``artifactio.blocking.copy(a, b)``; see artifactio.blocking.sync and ArtifactStore."
    )
    assert translate_docstring("artifactio.blocking.copy", BLOCKING) == "artifactio.blocking.copy"


def test_generator_translates_changed_functions() -> None:
    source = BLOCKING.source.read_text().replace(
        "    recursive: bool = False,\n",
        "    recursive: bool = False,\n    follow: bool = True,\n",
    )
    source += (
        "\n\nasync def remove_all(target: Location) -> None:\n"
        '    """Remove ``target``: ``await artifactio.remove_all(x)``."""\n'
        "\n\nasync def _private() -> None:\n    pass\n"
    )
    generated = generate(source, BLOCKING)
    assert "    follow: bool = True,\n" in generated
    assert "        follow=follow,\n" in generated
    assert "def remove_all(target: Location) -> None:" in generated
    assert "    run(_api.remove_all, target)\n" in generated
    assert "_private" not in generated
    assert '__all__ = ["copy", "sync", "remove_all"]' in generated
    with pytest.raises(ValueError, match="no public async function"):
        generate("def plain() -> None: pass\n", BLOCKING)
    with pytest.raises(ValueError, match="async generator"):
        generate("async def gen() -> None:\n    yield\n", BLOCKING)
