"""The real worker whose model never returns from a forward pass: ``python -m tests.hung_model_worker worker``.

What a wedged GPU kernel or a deadlocked native library looks like from the worker. Everything is the
real ``receipt-enricher worker`` (settings, model, generator, pipeline, agent, probes); only the loaded
model gets a forward hook that blocks forever. Started by tests/test_hung_model.py.
"""

from __future__ import annotations

import sys
import threading

import app.worker
from app import cli
from model.loader import LoadedModel, ModelSpec


def _load_model_that_hangs(spec: ModelSpec) -> LoadedModel:
    loaded = _load_model(spec)
    never = threading.Event()
    # On the input embeddings: every forward pass goes through them, whatever wraps the model (PEFT's
    # generate calls the base model's forward, never the wrapper's).
    loaded.model.get_input_embeddings().register_forward_pre_hook(lambda _module, _args: never.wait())
    return loaded


_load_model = app.worker.load_model

if __name__ == "__main__":
    app.worker.load_model = _load_model_that_hangs
    sys.exit(cli.main(sys.argv[1:]))
