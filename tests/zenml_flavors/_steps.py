"""The pipeline the flavor tests run: one step makes six kinds of values, another reads them.

ZenML stores each with its built-in materializers (JSON for the dict, str and list,
a text file for bytes, ``.npy`` for the array, JSON for the pydantic model) through
the stack's artifact store, and the second step loads them back from it.
"""

from typing import Annotated, Any

import numpy as np
from pydantic import BaseModel
from zenml import pipeline, step

LOG_MARKER = "artifactio-zenml-step-log-line"
"""Printed by a step: ZenML's log store writes it to the artifact store."""


class TrainingConfig(BaseModel):
    """A pydantic model passed between steps."""

    learning_rate: float
    layers: list[int]


def expected_values() -> dict[str, Any]:
    """What :func:`produce` returns, by output name."""
    return {
        "a_dict": {"epochs": 3, "tags": ["a", "b"]},
        "a_str": "hello artifactio",
        "some_bytes": b"\x00\x01binary\xff",
        "a_list": [1, 2.5, "three"],
        "an_array": np.arange(12, dtype=np.float32).reshape(3, 4),
        "a_model": TrainingConfig(learning_rate=0.01, layers=[64, 32]),
    }


@step  # type: ignore[untyped-decorator]  # zenml is untyped for mypy
def produce() -> tuple[
    Annotated[dict[str, Any], "a_dict"],
    Annotated[str, "a_str"],
    Annotated[bytes, "some_bytes"],
    Annotated[list[Any], "a_list"],
    Annotated[np.ndarray, "an_array"],
    Annotated[TrainingConfig, "a_model"],
]:
    """Return one value of each kind."""
    print(LOG_MARKER)
    v = expected_values()
    return v["a_dict"], v["a_str"], v["some_bytes"], v["a_list"], v["an_array"], v["a_model"]


@step  # type: ignore[untyped-decorator]  # zenml is untyped for mypy
def consume(
    a_dict: dict[str, Any],
    a_str: str,
    some_bytes: bytes,
    a_list: list[Any],
    an_array: np.ndarray,
    a_model: TrainingConfig,
) -> Annotated[str, "summary"]:
    """Check what arrived and summarise it."""
    expected = expected_values()
    assert (a_dict, a_str, some_bytes, a_list) == (
        expected["a_dict"],
        expected["a_str"],
        expected["some_bytes"],
        expected["a_list"],
    )
    assert np.array_equal(an_array, expected["an_array"])
    assert a_model == expected["a_model"]
    return f"{a_str}: {an_array.sum():.0f} over {len(a_model.layers)} layers"


@pipeline(enable_cache=False)  # type: ignore[untyped-decorator]
def six_kinds() -> None:
    """Pass six kinds of values from one step to the next."""
    consume(*produce())
