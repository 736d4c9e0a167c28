"""A ZenML pipeline whose artifacts are stored through artifactio (the ``artifactio_local`` flavor).

Run: python examples/zenml_pipeline.py [ARTIFACT_DIR]   (default: a temporary directory)

Needs ZenML: ``pip install 'artifactio[zenml]' 'zenml[local]'``. The example
registers the flavor, an artifact store of it and a stack with ZenML's local
orchestrator, runs a two-step pipeline, and loads the outputs back through ZenML's
client. Unless ``ZENML_CONFIG_PATH`` is set, ZenML's configuration (and its
database) lives in a temporary directory, removed at the end, so your own ZenML
setup is left alone.

On S3 or GCS only the registration differs; the command-line form is in the
README ("ZenML")::

    Client().create_stack_component(
        "s3-store", "artifactio_s3", StackComponentType.ARTIFACT_STORE,
        {"path": "s3://bucket/zenml", "authentication_secret": "aws-creds",
         "client_kwargs": {"endpoint_url": "http://127.0.0.1:8333"}},
    )
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile

if "ZENML_CONFIG_PATH" not in os.environ:  # before ZenML is imported; removed at exit
    os.environ["ZENML_CONFIG_PATH"] = tempfile.mkdtemp(prefix="artifactio-example-zenml-config-")
    atexit.register(shutil.rmtree, os.environ["ZENML_CONFIG_PATH"], True)
os.environ.setdefault("ZENML_ANALYTICS_OPT_IN", "false")

from typing import Annotated, Any

from pydantic import BaseModel
from zenml import pipeline, step
from zenml.client import Client
from zenml.enums import StackComponentType

import artifactio

ARTIFACT_STORE = StackComponentType.ARTIFACT_STORE
NAME = "artifactio-example"


class ModelCard(BaseModel):
    """A pydantic model passed between steps (stored as JSON)."""

    name: str
    layers: list[int]


@step  # type: ignore[untyped-decorator]  # zenml has no type hints for mypy
def train(
    epochs: int,
) -> tuple[
    Annotated[dict[str, float], "metrics"],
    Annotated[list[float], "weights"],
    Annotated[ModelCard, "card"],
]:
    """Pretend to train: metrics (a dict), weights (a list) and a model card."""
    weights = [0.1 * i for i in range(8)]
    return {"loss": 1.0 / epochs, "accuracy": 0.9}, weights, ModelCard(name="tiny", layers=[8])


@step  # type: ignore[untyped-decorator]
def evaluate(metrics: dict[str, float], weights: list[float], card: ModelCard) -> str:
    """Read the three outputs back (ZenML loads them through the artifact store)."""
    return f"{card.name}: {len(weights)} weights, accuracy {metrics['accuracy']:.2f}"


@pipeline(enable_cache=False)  # type: ignore[untyped-decorator]
def training(epochs: int = 3) -> None:
    metrics, weights, card = train(epochs)
    evaluate(metrics, weights, card)


def use_artifactio_stack(artifact_dir: str) -> None:
    """Register the flavor, an artifact store of it and a stack, once; make the stack active.

    The command line does the same::

        zenml artifact-store flavor register artifactio.integrations.zenml.LocalArtifactStoreFlavor
        zenml artifact-store register artifactio-example --flavor=artifactio_local --path=DIR
        zenml stack register artifactio-example -o default -a artifactio-example --set
    """
    client = Client()
    try:
        client.get_flavor_by_name_and_type("artifactio_local", ARTIFACT_STORE)
    except KeyError:
        client.create_flavor(
            "artifactio.integrations.zenml.LocalArtifactStoreFlavor", ARTIFACT_STORE
        )
    try:
        client.get_stack(NAME)
        client.update_stack_component(NAME, ARTIFACT_STORE, configuration={"path": artifact_dir})
    except KeyError:
        client.create_stack_component(
            NAME, "artifactio_local", ARTIFACT_STORE, {"path": artifact_dir}
        )
        client.create_stack(
            NAME,
            {StackComponentType.ORCHESTRATOR: "default", ARTIFACT_STORE: NAME},
        )
    client.activate_stack(NAME)


def main(artifact_dir: str) -> None:
    use_artifactio_stack(artifact_dir)
    run = training(epochs=4)

    run = Client().get_pipeline_run(run.id)
    print("run:", run.name, run.status.value)
    outputs: dict[str, Any] = {
        name: artifacts[0] for name, artifacts in run.steps["train"].outputs.items()
    }
    for name in sorted(outputs):
        print(f"{name}: {outputs[name].load()!r}")
    print("evaluate:", run.steps["evaluate"].outputs["output"][0].load())

    # ZenML's files, read back with artifactio itself.
    with artifactio.ArtifactStore(artifact_dir) as store:
        for name in sorted(outputs):
            uri = outputs[name].uri
            files = store.listdir(uri)
            print(f"stored {name}: {os.path.relpath(uri, artifact_dir)}/{files[0]}")


if __name__ == "__main__":
    target = (
        sys.argv[1]
        if len(sys.argv) > 1
        else tempfile.mkdtemp(prefix="artifactio-example-artifacts-")
    )
    if not os.path.isabs(target):
        sys.exit(f"ARTIFACT_DIR must be an absolute local directory, not {target!r}")
    main(target)
