"""Tests of the ZenML flavors (artifactio.integrations.zenml), run in the ``zenml`` tox env.

A package, so its ``conftest`` and modules get names of their own (``zenml_flavors.*``)
beside ``tests/conftest.py``; it is not named ``zenml``, which would shadow ZenML
itself, ``tests/`` being on ``sys.path``.
"""
