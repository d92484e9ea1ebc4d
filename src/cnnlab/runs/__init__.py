"""Run folders: where a model and its training live on disk.

- :mod:`~cnnlab.runs.files`: atomic writes, JSON, ``.npz`` arrays and bundles, state dicts (no pickle);
- :mod:`~cnnlab.runs.lock`: one process per run folder (``.cnnlab-lock``);
- :mod:`~cnnlab.runs.model`: a model folder (``model.npz`` + ``model.json``): save, load, new images for it;
- :mod:`~cnnlab.runs.history`: a run's ``history.csv``.

This layer knows run folders only; :func:`cnnlab.io.load_model`, above it, picks the loader for
every kind of model file (a run folder, an ``.onnx`` file).
"""
from .files import (atomic_write_bytes, load_bundle, load_npz, load_state_dict, read_json, save_bundle,
                    save_npz, save_state_dict, write_json)
from .history import read_history
from .lock import RunLocked, run_lock
from .model import FORMAT, MODEL_JSON, MODEL_WEIGHTS, SavedModel, image_file, load_model, model_input, save_model

__all__ = ["atomic_write_bytes", "load_bundle", "load_npz", "load_state_dict", "read_json", "save_bundle",
           "save_npz", "save_state_dict", "write_json", "read_history", "RunLocked", "run_lock", "FORMAT",
           "MODEL_JSON", "MODEL_WEIGHTS", "SavedModel", "image_file", "load_model", "model_input", "save_model"]
