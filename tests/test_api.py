"""The public surface: exports, the backend registry, configs and error classes."""

from __future__ import annotations

import builtins
import importlib
import io
import pkgutil
import sys
import types
from typing import Any

import pydantic
import pytest

import artifactio
from _extras import installed
from artifactio import _registry
from artifactio.backends.memory import MemoryStore

_OUTSIDE_THE_TEST_EXTRA = {"zenml": "artifactio.integrations.zenml"}
"""Frameworks the test extra leaves out (each has its own environment), and the
integration modules that need them: their modules are checked where they are installed."""


def _needs_missing_framework(name: str) -> bool:
    return any(
        (name == module or name.startswith(module.rpartition(".")[0] + "._" + framework))
        and not installed(framework)
        for framework, module in _OUTSIDE_THE_TEST_EXTRA.items()
    )


def _modules() -> list[types.ModuleType]:
    """Every module of the package that imports with the test extra installed."""
    names = [artifactio.__name__]
    names += [
        info.name
        for info in pkgutil.walk_packages(artifactio.__path__, prefix="artifactio.")
        if info.name != "artifactio.__main__" and not _needs_missing_framework(info.name)
    ]
    return [importlib.import_module(name) for name in names]


def _defined_here(module: types.ModuleType) -> set[str]:
    """Public classes and functions defined in ``module`` itself (not imported)."""
    return {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and isinstance(value, (type, types.FunctionType))
        and getattr(value, "__module__", None) == module.__name__
    }


@pytest.mark.parametrize("module", _modules(), ids=lambda m: m.__name__)
def test_all_lists_exactly_what_exists(module: types.ModuleType) -> None:
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{module.__name__} has no __all__"
    assert len(exported) == len(set(exported)), "a name is listed twice"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module.__name__}.__all__ names what does not exist: {missing}"
    unlisted = _defined_here(module) - set(exported)
    assert not unlisted, f"{module.__name__} defines public names not in __all__: {unlisted}"


def test_package_exports_everything_public() -> None:
    public = {
        name
        for name, value in vars(artifactio).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert public - {"annotations"} == set(artifactio.__all__) - {"__version__"}


def test_every_exception_has_a_builtin_base() -> None:
    assert issubclass(artifactio.PathOutsideStoreError, PermissionError)
    assert issubclass(artifactio.InvalidPathError, ValueError)
    assert issubclass(artifactio.MissingDependencyError, ImportError)
    assert issubclass(artifactio.StoreConnectionError, ConnectionError)
    assert issubclass(artifactio.IntegrityError, OSError)
    assert issubclass(artifactio.StoreClosedError, RuntimeError)
    for cls in (
        artifactio.PathOutsideStoreError,
        artifactio.InvalidPathError,
        artifactio.MissingDependencyError,
    ):
        assert issubclass(cls, artifactio.ArtifactioError)


def test_open_store_picks_backend_by_scheme() -> None:
    store = artifactio.open_store("memory://api-test/x")
    assert isinstance(store, MemoryStore)
    assert store.root == "memory://api-test/x"


def test_open_store_strips_quotes_like_zenml() -> None:
    store = artifactio.open_store("'memory://api-test/quoted'")
    assert store.root == "memory://api-test/quoted"


def test_unknown_scheme() -> None:
    with pytest.raises(artifactio.UnsupportedSchemeError, match=r"no backend for ftp://"):
        artifactio.open_store("ftp://host/x")
    with pytest.raises(artifactio.UnsupportedSchemeError, match="absolute path"):
        artifactio.open_store("relative/dir")


def test_unknown_option_fails_clearly() -> None:
    with pytest.raises(pydantic.ValidationError, match="bogus"):
        artifactio.open_store("memory://api-test", bogus=1)
    with pytest.raises(pydantic.ValidationError, match="concurrency"):
        artifactio.open_store("memory://api-test", concurrency=0)


def test_config_validates_scheme_and_hides_secrets() -> None:
    cfg = artifactio.S3Config(path='"s3://bucket/p"', key="AKIA-visible?", secret="hunter2")
    assert cfg.path == "s3://bucket/p"
    assert "hunter2" not in repr(cfg)
    assert "hunter2" not in str(cfg.model_dump())
    with pytest.raises(pydantic.ValidationError, match="unsupported scheme"):
        artifactio.S3Config(path="gs://bucket/p")
    with pytest.raises(pydantic.ValidationError, match="256 KiB"):
        artifactio.GCSConfig(path="gs://b", part_size=300_000)


@pytest.mark.parametrize("cls", [artifactio.S3Config, artifactio.GCSConfig])
def test_config_repr_hides_credentials_in_the_endpoint(
    cls: type[artifactio.S3Config | artifactio.GCSConfig],
) -> None:
    scheme = "s3" if cls is artifactio.S3Config else "gs"
    cfg = cls(path=f"{scheme}://bucket/p", endpoint_url="http://user:pa55word@127.0.0.1:9000")
    for text in (repr(cfg), str(cfg)):
        assert "pa55word" not in text
        assert "127.0.0.1:9000" in text


@pytest.fixture
def no_aiobotocore(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``import aiobotocore`` fail as if the extra were not installed."""
    real_import = builtins.__import__

    def fake_import(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "aiobotocore" or name.startswith("aiobotocore."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m.startswith(("aiobotocore", "artifactio.backends.s3"))]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", fake_import)
    monkeypatch.setattr(_registry, "_loaded", {})


@pytest.mark.usefixtures("no_aiobotocore")
def test_missing_extra_names_it() -> None:
    with pytest.raises(artifactio.MissingDependencyError, match=r"artifactio\[s3\]") as info:
        artifactio.open_store("s3://bucket/x")
    assert isinstance(info.value, ImportError)


def test_register_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_registry, "_registered", {})
    monkeypatch.setattr(_registry, "_loaded", {})

    class CustomStore(MemoryStore):
        pass

    artifactio.register_backend("custom", CustomStore)
    assert "custom" in artifactio.available_schemes()
    # A custom scheme is served by the class; paths keep the root's spelling.
    assert artifactio.get_backend("custom") is CustomStore


def test_entry_point_backends(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeEntryPoint:
        name = "viaplugin"
        value = "artifactio.backends.memory:MemoryStore"

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        assert group == "artifactio.backends"
        return [FakeEntryPoint()]

    monkeypatch.setattr(_registry, "entry_points", fake_entry_points)
    monkeypatch.setattr(_registry, "_registered", {})
    monkeypatch.setattr(_registry, "_loaded", {})
    monkeypatch.setattr(_registry, "_entry_points_read", False)
    assert artifactio.get_backend("viaplugin") is MemoryStore


def test_backends_import_lazily() -> None:
    code = (
        "import sys, artifactio; "
        "assert 'aiobotocore' not in sys.modules and 'gcloud' not in sys.modules, "
        "sorted(m for m in sys.modules if m.startswith(('aiobotocore','gcloud')))"
    )
    importlib.import_module("subprocess").run([sys.executable, "-c", code], check=True)


# ------------------------------------------------ the store's generic algorithms


class FailingCopyStore(MemoryStore):
    """A memory store whose per-file copies fail for one file, as a flaky service would."""

    fail_on = "f3"

    async def _copy_file(self, src: str, dst: str) -> None:
        if src.endswith(self.fail_on):
            raise PermissionError(13, "copyfile: denied", src)
        await super()._copy_file(src, dst)


async def test_failed_directory_move_raises_the_original_error(memory_root: str) -> None:
    store = FailingCopyStore(memory_root, concurrency=4)
    for i in range(8):
        await store.write_bytes(f"d/f{i}", b"x")
    with pytest.raises(PermissionError, match="denied") as info:
        await store.rename("d", "e")
    assert type(info.value) is PermissionError  # not an ExceptionGroup around it


@pytest.mark.parametrize("api", ["async", "sync"])
async def test_failed_directory_move_leaves_no_partial_copy(memory_root: str, api: str) -> None:
    store = FailingCopyStore(memory_root, concurrency=2)
    names = [f"f{i}" for i in range(8)]
    for name in names:
        await store.write_bytes(f"d/sub/{name}", name.encode())
    if api == "async":
        with pytest.raises(PermissionError):
            await store.rename("d", "e")
    else:
        with pytest.raises(PermissionError):
            artifactio.ArtifactStore(store).rename("d", "e")
    assert not await store.exists("e")  # a retry is not refused with FileExistsError
    assert await store.listdir("d/sub") == names
    store.fail_on = "never"
    await store.rename("d", "e")
    assert await store.listdir("e/sub") == names
    assert not await store.exists("d")


TEXT = "ab\r\nc\u00e9\r\n\u20ac\rx\n\r\n" * 3 + "end\r"


@pytest.mark.parametrize("newline", [None, "", "\n", "\r", "\r\n"])
@pytest.mark.parametrize("block_size", [1, 2, 3, 5, 1 << 20])
async def test_text_tell_gives_a_position_seek_returns_to(
    memory_root: str, monkeypatch: pytest.MonkeyPatch, newline: str | None, block_size: int
) -> None:
    """After any readline/read, seek(tell()) continues with exactly the same text.

    Small blocks split "\\r\\n" and multi-byte characters across reads.
    """
    from artifactio._files import BytesReader  # what a memory store's file reads through

    monkeypatch.setattr(BytesReader, "block_size", block_size, raising=False)
    store = MemoryStore(memory_root)
    await store.write_bytes("t.txt", TEXT.encode())
    reference = io.TextIOWrapper(io.BytesIO(TEXT.encode()), encoding="utf-8", newline=newline)
    expected: list[str] = []
    while True:  # read(1) and readline() in turn, as the builtin gives them
        expected.append(reference.readline() if len(expected) % 2 else reference.read(1))
        if not expected[-1]:
            break
    async with store.open("t.txt", "r", newline=newline) as f:
        for i, step in enumerate(expected):
            here = await f.tell()
            assert await f.read() == "".join(expected[i:]), f"after {i} steps"
            await f.seek(here)
            assert await (f.readline() if i % 2 else f.read(1)) == step, f"step {i}"
        assert await f.tell() == len(TEXT.encode())
