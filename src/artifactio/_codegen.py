"""Generate the blocking twins of the async API: ``ArtifactStore`` and ``artifactio.blocking``.

Usage::

    python -m artifactio._codegen           # (re)write every generated module
    python -m artifactio._codegen --check   # exit 1 and print a diff when one is stale

Two modules are generated, one per entry of :data:`FACADES`, by one translation:

* ``_sync/_store.py`` from the class ``AsyncArtifactStore`` of ``_store.py``;
* ``blocking.py`` from the module-level ``async def`` functions of
  ``transfer/_api.py`` (``copy``, ``sync``): one plain ``def`` each, whose body
  is ``return run(_api.copy, src, dst, ...)`` with the hand-written
  :func:`artifactio._sync._functions.run`.

The generator reads ``_store.py`` with :mod:`ast` (it never imports or wraps the
class at run time) and writes one method of ``ArtifactStore`` per public method
of ``AsyncArtifactStore``: the same name, parameters and defaults, type hints
and docstring, minus the ``await``. Each generated method forwards to the async
store through the hand-written :class:`~artifactio._sync._base.FacadeBase`:

=================================  ===============================================
async method                       generated body
=================================  ===============================================
``async def f(...) -> T``          ``return self._run(self._async.f(...))``
async generator (``AsyncIterator``) ``return self._iterate(self._async.f(...))``
``def open(...) -> OpenContext``   ``return self._open(...)`` (an ``io`` file)
``aclose`` / ``__aenter__`` ...    ``close`` / ``__enter__`` / ``__exit__``
``@property``                      ``return self._async.name``
=================================  ===============================================

Async-only words are translated in types (``AsyncIterator`` -> ``Iterator``,
``OpenContext``/``AsyncFile`` -> ``IO``) and in docstrings (``async with`` ->
``with``, ``aclose`` -> ``close``...). The generator decides what the module
says, not how it is laid out: it writes the class with :func:`ast.unparse` and
one import statement per name, then runs ``ruff check --select I --fix``
(imports merged and sorted) and ``ruff format`` on the text through stdin, with
the target's path so the project's ruff settings apply. ruff runs as
``python -m ruff`` in this interpreter's environment (the ``test`` and ``lint``
extras install it). ``tests/test_codegen.py`` regenerates in memory and
compares whole files.

It lives in the package, as trio's ``gen_exports`` does (``trio/_tools``): the
repository's top level has no place for tools, and here ``python -m
artifactio._codegen`` runs from the editable install that tox and CI use,
tests import it like any module, and it finds sources and targets beside
itself. Nothing in ``artifactio`` imports it, so users never load it or need ruff.

Each generated module is one :class:`Facade` in :data:`FACADES`; :func:`main`
writes or checks them all. Methods (:func:`_method`) and module-level functions
(:func:`_function`) share the signature, type hint, docstring and import
handling (:func:`_twin`, :class:`_Imports`); a facade may add names to
:data:`SYNC_NAMES` and rules to :data:`DOC_RULES` for its own module.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import difflib
import re
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping, Sequence

__all__ = [
    "BANNER",
    "BLOCKING",
    "FACADES",
    "SOURCE",
    "STORE",
    "TARGET",
    "Facade",
    "generate",
    "leftover_async_words",
    "main",
    "translate_docstring",
]

PACKAGE_DIR = Path(__file__).resolve().parent

RENAMED_METHODS = {"aclose": "close", "__aenter__": "__enter__", "__aexit__": "__exit__"}

SYNC_NAMES = {
    "AsyncIterator": "collections.abc.Iterator",
    "AsyncIterable": "collections.abc.Iterable",
    "AsyncGenerator": "collections.abc.Generator",
    "AsyncFile": "typing.IO",
    "OpenContext": "typing.IO",
    "AsyncArtifactStore": "ArtifactStore",
}
"""Async-only names (in type hints and docstrings) and the qualified sync name for each.

A name without a module is defined by the generated module itself; a module
starting with ``.`` is relative to the generated module.
"""

DOC_RULES: list[tuple[str, str]] = [
    (
        r"An awaitable async context manager giving the file object",
        "The file object: an ``io`` object, also a context manager",
    ),
    (r"\basync (with|for)\b", r"\1"),
    (r"\bawait (?=\S)", ""),
    (r"\baclose\b", "close"),
]
"""Docstring rewrites, applied in order (then each name of :data:`SYNC_NAMES` is renamed)."""

_LEFTOVER = re.compile(r"\b(?:async|await|awaitable|aclose|Async[A-Z]\w*|OpenContext)\b")


@dataclass(frozen=True, kw_only=True)
class Facade:
    """One generated module: a blocking class made from an async class, or
    blocking functions made from a module's async functions (``async_class`` is ``None``).

    ``base`` is the hand-written name the generated code builds on, as ``(module
    relative to target, name)``: the base class, or the function that runs a
    coroutine. ``module_doc`` and ``class_doc`` are the generated docstrings;
    ``names`` adds to (or overrides) :data:`SYNC_NAMES` and ``doc_rules`` come
    before :data:`DOC_RULES`, for this module only.
    """

    source: Path
    target: Path
    base: tuple[str, str]
    module_doc: str
    async_class: str | None = None
    sync_class: str = ""
    class_doc: str = ""
    names: Mapping[str, str] = field(default_factory=dict)
    doc_rules: Sequence[tuple[str, str]] = ()

    @property
    def banner(self) -> str:
        """The first line of the generated module."""
        return f"# GENERATED by artifactio._codegen from {self.source.name} - do not edit"

    @property
    def sync_names(self) -> dict[str, str]:
        """:data:`SYNC_NAMES` with this module's own names."""
        return {**SYNC_NAMES, **self.names}

    @property
    def rules(self) -> list[tuple[str, str]]:
        """Every docstring rewrite for this module, in order."""
        renames = [
            (rf"\b{name}\b", sync.rpartition(".")[2]) for name, sync in self.sync_names.items()
        ]
        return [*self.doc_rules, *DOC_RULES, *renames]


STORE = Facade(
    source=PACKAGE_DIR / "_store.py",
    target=PACKAGE_DIR / "_sync" / "_store.py",
    async_class="AsyncArtifactStore",
    sync_class="ArtifactStore",
    base=("._base", "FacadeBase"),
    module_doc="""``ArtifactStore``: the blocking facade of :class:`~artifactio.AsyncArtifactStore`.

Generated from the async class: the same methods, parameters, type hints and
docstrings, each run to completion for the caller. How the coroutines run
(inline, or on a loop thread) is in ``_runner.py``; construction, files and
closing are in ``_base.py``.
""",
    class_doc="""An artifact store with a blocking method for every operation.

``ArtifactStore(uri, **options)`` opens a store as :func:`artifactio.open_store`
does; ``ArtifactStore(async_store)`` wraps an existing
:class:`~artifactio.AsyncArtifactStore`. Every method runs the async store's
method to completion and returns its result, or raises its exception. Any
thread may call it, also from inside a running event loop and in a child
process after ``fork``. :meth:`open` returns ordinary ``io`` file objects.
Use ``with store:`` or :meth:`close` to release connections.

Args:
    uri_or_store: A URI or absolute local path, or an
        :class:`~artifactio.AsyncArtifactStore`.
    **options: The backend's options, when opening by URI.
""",
)

BLOCKING = Facade(
    source=PACKAGE_DIR / "transfer" / "_api.py",
    target=PACKAGE_DIR / "blocking.py",
    base=("._sync._functions", "run"),
    names={
        "Location": "._sync._functions.Location",
        "AsyncArtifactStore": "._sync._store.ArtifactStore",
    },
    doc_rules=[(r"\b(?:await\s+)?artifactio\.(copy|sync)\b", r"artifactio.blocking.\1")],
    module_doc="""Blocking twins of the bulk transfers: ``artifactio.blocking.copy`` and ``sync``.

Generated from :func:`artifactio.copy` and :func:`artifactio.sync`: the same
parameters, defaults, type hints and docstrings; each runs its coroutine to
completion and returns the :class:`~artifactio.TransferReport`. They work from
any thread, from inside a running event loop and after ``fork``; a
``KeyboardInterrupt`` cancels the transfer, which cleans up before it reaches
the caller. A ``(store, path)`` pair may hold an :class:`~artifactio.ArtifactStore`
as well as an :class:`~artifactio.AsyncArtifactStore`. The ``progress``
callback runs on the transfers' event loop thread: keep it quick. How the
coroutines run is in ``_sync/_functions.py``.
""",
)

DASK_BLOCKING = Facade(
    source=PACKAGE_DIR / "integrations" / "dask.py",
    target=PACKAGE_DIR / "integrations" / "dask_blocking.py",
    base=(".._sync._functions", "run"),
    doc_rules=[
        (
            r"\b(?:await\s+)?artifactio\.integrations\.dask\.(copy|sync)\b",
            r"artifactio.integrations.dask_blocking.\1",
        )
    ],
    module_doc="""Blocking twins of the transfers on a Dask cluster: ``copy`` and ``sync``.

Generated from :func:`artifactio.integrations.dask.copy` and
:func:`artifactio.integrations.dask.sync`: the same parameters, defaults, type
hints and docstrings; each runs its coroutine to completion (on the event loop
thread the blocking transfers of :mod:`artifactio.blocking` share) and returns
the merged :class:`~artifactio.TransferReport`. Pass a synchronous
``distributed.Client``: an asynchronous one runs on its own event loop, which
a blocking call there would hold up (it is refused with ``RuntimeError``). A
``KeyboardInterrupt`` cancels the transfer: the shards not finished are
cancelled on the cluster before it reaches the caller. How the coroutines run
is in ``_sync/_functions.py``; how the transfer is cut and run is in
:mod:`artifactio.integrations.dask`.
""",
)

FACADES = (STORE, BLOCKING, DASK_BLOCKING)
"""Every generated module."""

SOURCE, TARGET, BANNER = STORE.source, STORE.target, STORE.banner


def translate_docstring(doc: str, facade: Facade = STORE) -> str:
    """Rewrite async-only words of a docstring for ``facade`` (the store facade by default)."""
    for pattern, replacement in facade.rules:
        doc = re.sub(pattern, replacement, doc)
    return doc


def leftover_async_words(text: str) -> list[str]:
    """Async-only words still in ``text`` (a docstring rule is missing for them)."""
    return sorted(set(_LEFTOVER.findall(text)))


# ---------------------------------------------------------------------- imports


class _Imports:
    """The import statement for each name the generated code uses.

    Args:
        tree: The source module.
        facade: What is generated from it.
    """

    def __init__(self, tree: ast.Module, facade: Facade) -> None:
        self.names = facade.sync_names
        source = _relative(_module_of(facade.source), facade.target)
        self.statements: dict[str, str] = {}
        for node in _module_level(tree.body):
            if isinstance(node, ast.ImportFrom) and node.module != "__future__":
                module = node.module or ""
                if node.level:  # relative to the source: made relative to the target
                    package = _module_of(facade.source)[: -node.level]
                    module = _relative((*package, *module.split(".")), facade.target)
                for alias in node.names:
                    statement = f"from {module} import {alias.name}"
                    if alias.asname:
                        statement += f" as {alias.asname}"
                    self.statements[alias.asname or alias.name] = statement
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    bound = alias.asname or alias.name.partition(".")[0]
                    self.statements[bound] = ast.unparse(ast.Import(names=[alias]))
            else:  # names the source defines itself
                for name in _defined(node):
                    self.statements[name] = f"from {source} import {name}"
        for sync in self.names.values():
            module, _, name = sync.rpartition(".")
            if module:
                self.statements[name] = f"from {module} import {name}"
        self.local = {facade.sync_class} if facade.sync_class else set()
        self.runtime: set[str] = set()
        self.typing: set[str] = set()

    def use(self, names: Iterable[str], *, runtime: bool) -> None:
        """Record names used at run time (defaults) or only in type hints.

        Raises:
            ValueError: A name that is neither imported nor defined by the source.
        """
        for name in names:
            if name in self.local or (name in vars(builtins) and name not in self.statements):
                continue
            if name not in self.statements:
                raise ValueError(f"codegen: cannot tell where {name!r} is imported from")
            (self.runtime if runtime else self.typing).add(name)


def _module_of(path: Path) -> tuple[str, ...]:
    """The dotted name of the module at ``path`` (in this package), as parts."""
    return (PACKAGE_DIR.name, *path.relative_to(PACKAGE_DIR).with_suffix("").parts)


def _relative(module: Sequence[str], target: Path) -> str:
    """The relative import, from the module at ``target``, of the module named ``module``."""
    package = _module_of(target)[:-1]
    common = 0
    while common < min(len(package), len(module)) and package[common] == module[common]:
        common += 1
    return "." * (len(package) - common + 1) + ".".join(module[common:])


def _module_level(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Module-level statements, looking inside ``if TYPE_CHECKING:`` too."""
    for node in body:
        if isinstance(node, ast.If):
            yield from _module_level(node.body)
        else:
            yield node


def _defined(node: ast.stmt) -> list[str]:
    """The names a module-level statement defines."""
    if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    return []


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


# ---------------------------------------------------------------------- methods


class _Translate(ast.NodeTransformer):
    """Rename async-only names in a type hint and record every name it uses."""

    def __init__(self, sync_names: Mapping[str, str]) -> None:
        self.sync_names = sync_names
        self.names: set[str] = set()

    def visit_Name(self, node: ast.Name) -> ast.Name:
        if node.id in self.sync_names:
            node.id = self.sync_names[node.id].rpartition(".")[2]
        self.names.add(node.id)
        return node

    def visit_Constant(self, node: ast.Constant) -> ast.AST:
        if isinstance(node.value, str):  # a quoted annotation
            inner = ast.parse(node.value, mode="eval").body
            return self.visit(inner)  # type: ignore[no-any-return]
        return node


def _hint(node: ast.expr | None, imports: _Imports) -> ast.expr | None:
    """``node`` (a type hint) translated in place."""
    if node is None:
        return None
    translator = _Translate(imports.names)
    hint: ast.expr = translator.visit(node)
    imports.use(translator.names, runtime=False)
    return hint


def _forwarded(args: ast.arguments, imports: _Imports, *, method: bool) -> str:
    """Translate the hints of ``args`` in place; the arguments that pass them on.

    The first parameter of a method (``self``) is not passed on.
    """
    positional = [*args.posonlyargs, *args.args]
    for arg in [*positional, *args.kwonlyargs, args.vararg, args.kwarg]:
        if arg is not None:
            arg.annotation = _hint(arg.annotation, imports)
    for default in [*args.defaults, *args.kw_defaults]:
        if default is not None:
            imports.use(_names(default), runtime=True)
    call = [arg.arg for arg in positional[1 if method else 0 :]]
    if args.vararg is not None:
        call.append(f"*{args.vararg.arg}")
    call += [f"{arg.arg}={arg.arg}" for arg in args.kwonlyargs]
    if args.kwarg is not None:
        call.append(f"**{args.kwarg.arg}")
    return ", ".join(call)


def _is_async_generator(node: ast.AsyncFunctionDef | ast.FunctionDef) -> bool:
    if not isinstance(node, ast.AsyncFunctionDef):
        return False
    todo: list[ast.AST] = list(node.body)
    while todo:
        child = todo.pop()
        if isinstance(child, (ast.Yield, ast.YieldFrom)):
            return True
        if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)):
            todo.extend(ast.iter_child_nodes(child))
    return False


def _is_property(decorator: ast.expr) -> bool:
    return isinstance(decorator, ast.Name) and decorator.id == "property"


def _body(node: ast.AsyncFunctionDef | ast.FunctionDef, call: str) -> str:
    """The statement that forwards the method ``node`` to the async store."""
    name = node.name
    target = f"self._async.{name}({call})"
    if any(_is_property(d) for d in node.decorator_list):
        return f"return self._async.{name}"
    if name == "aclose":
        return "self._close()"
    if name == "__aenter__":
        return "return self"
    if name == "__aexit__":
        return "self.close()"
    if node.returns is not None and "OpenContext" in _names(node.returns):
        return f"return self._open({call})"
    if _is_async_generator(node):
        return f"return self._iterate({target})"
    if isinstance(node, ast.AsyncFunctionDef):
        returns_none = isinstance(node.returns, ast.Constant) and node.returns.value is None
        return f"{'' if returns_none else 'return '}self._run({target})"
    return f"return {target}"


def _method(
    node: ast.AsyncFunctionDef | ast.FunctionDef, imports: _Imports, facade: Facade
) -> ast.FunctionDef:
    """The blocking twin of one public method (``node`` is changed in place)."""
    body = _body(node, _forwarded(node.args, imports, method=True))
    decorators = [d for d in node.decorator_list if _is_property(d)]
    name = RENAMED_METHODS.get(node.name, node.name)
    return _twin(node, name, body, decorators, imports, facade)


def _function(node: ast.AsyncFunctionDef, imports: _Imports, facade: Facade) -> ast.FunctionDef:
    """The blocking twin of one module-level ``async def`` (``node`` is changed in place).

    Raises:
        ValueError: ``node`` is an async generator (no blocking twin for those yet).
    """
    if _is_async_generator(node):
        raise ValueError(f"codegen: {node.name} is an async generator; only coroutines are run")
    call = ", ".join(
        [f"{facade.source.stem}.{node.name}", _forwarded(node.args, imports, method=False)]
    ).rstrip(", ")
    returns_none = isinstance(node.returns, ast.Constant) and node.returns.value is None
    body = f"{'' if returns_none else 'return '}{facade.base[1]}({call})"
    return _twin(node, node.name, body, [], imports, facade)


def _twin(
    node: ast.AsyncFunctionDef | ast.FunctionDef,
    name: str,
    body: str,
    decorators: list[ast.expr],
    imports: _Imports,
    facade: Facade,
) -> ast.FunctionDef:
    """A ``def`` with ``node``'s parameters (hints translated already), ``body`` and docstring."""
    twin = ast.copy_location(ast.FunctionDef(**dict(ast.iter_fields(node))), node)
    twin.name = name
    twin.returns = _hint(node.returns, imports)
    twin.decorator_list = decorators
    twin.body = ast.parse(body).body
    doc = ast.get_docstring(node, clean=False)
    if doc:
        twin.body.insert(0, _docstring(translate_docstring(doc, facade)))
    return twin


def _docstring(text: str) -> ast.Expr:
    """A docstring statement (ruff indents its lines)."""
    return ast.Expr(ast.Constant(text))


# --------------------------------------------------------------------- generate


def generate(source: str, facade: Facade = STORE) -> str:
    """The text of ``facade.target`` for the source text of ``facade.source``.

    Raises:
        ValueError: The async class (or any public async function) is missing,
            or a name in a signature cannot be resolved to an import.
        RuntimeError: ruff is missing or fails.
    """
    tree = ast.parse(source)
    imports = _Imports(tree, facade)
    extra: list[str] = []
    if facade.async_class is None:
        functions = [
            node
            for node in tree.body
            if isinstance(node, ast.AsyncFunctionDef) and not node.name.startswith("_")
        ]
        if not functions:
            raise ValueError("codegen: no public async function in the source")
        body: list[ast.stmt] = [_function(node, imports, facade) for node in functions]
        exported = [node.name for node in functions]
        # The async functions, reached through their module (the twins take their names).
        package, _, module = _relative(_module_of(facade.source), facade.target).rpartition(".")
        extra.append(f"from {package or '.'} import {module}")
    else:
        classes = [
            n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == facade.async_class
        ]
        if not classes:
            raise ValueError(f"codegen: no class {facade.async_class} in the source")
        cls = ast.parse(f"class {facade.sync_class}({facade.base[1]}): pass").body[0]
        assert isinstance(cls, ast.ClassDef)
        cls.body = [_docstring(facade.class_doc)]
        for node in classes[0].body:
            if isinstance(node, (ast.AsyncFunctionDef, ast.FunctionDef)) and (
                not node.name.startswith("_") or node.name in RENAMED_METHODS
            ):
                cls.body.append(_method(node, imports, facade))
        body = [cls]
        exported = [facade.sync_class]
    typing_only = imports.typing - imports.runtime
    lines = [
        facade.banner,
        "# Regenerate with `python -m artifactio._codegen` (tox -e codegen); `--check` compares.",
        ast.unparse(ast.Module(body=[_docstring(facade.module_doc)], type_ignores=[])),
        "from __future__ import annotations",
        *(imports.statements[name] for name in imports.runtime),
        "from {} import {}".format(*facade.base),
        *extra,
    ]
    if typing_only:
        lines += ["from typing import TYPE_CHECKING", "if TYPE_CHECKING:"]
        lines += [f"    {imports.statements[name]}" for name in typing_only]
    lines += ["", f"__all__ = {exported!r}", *(ast.unparse(node) for node in body)]
    text = _ruff(["check", "--select", "I", "--fix"], "\n".join(lines), facade.target)
    return _ruff(["format"], text, facade.target)


def _ruff(command: list[str], text: str, path: Path) -> str:
    """``text`` through ``ruff COMMAND``, with the settings ruff applies to ``path``."""
    proc = subprocess.run(
        [sys.executable, "-m", "ruff", *command, "--quiet", "--stdin-filename", str(path), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"codegen: `ruff {' '.join(command)}` failed (is ruff installed? it is in the "
            f"test and lint extras):\n{proc.stderr}"
        )
    return proc.stdout


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write the generated modules, or with ``--check`` compare them.

    Returns:
        0 when written or up to date; 1 when ``--check`` found a difference.
    """
    parser = argparse.ArgumentParser(
        prog="python -m artifactio._codegen",
        description="Generate the blocking facade from the async API.",
    )
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 and print a diff if stale"
    )
    # For tests: the store facade, written to (or compared with) another file.
    parser.add_argument("--target", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    jobs = [(STORE, args.target)] if args.target else [(f, f.target) for f in FACADES]
    stale = False
    for facade, target in jobs:
        generated = generate(facade.source.read_text(encoding="utf-8"), facade)
        current = target.read_text(encoding="utf-8") if target.exists() else ""
        if current == generated:
            print(f"{target} is up to date")
        elif args.check:
            stale = True
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    fromfile=f"{target} (committed)",
                    tofile=f"{target} (generated)",
                )
            )
            print(f"\n{target} is stale: run `python -m artifactio._codegen`", file=sys.stderr)
        else:
            target.write_text(generated, encoding="utf-8", newline="\n")
            print(f"wrote {target}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
