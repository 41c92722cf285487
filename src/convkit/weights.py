"""Saving and loading a model's parameters: ``.safetensors`` and ``.npz``.

Keys are torch's state-dict names, so a ``.safetensors`` file written by
``safetensors.torch.save_file(torch_model.state_dict(), path)`` loads into the
equivalent convkit model.  Loading checks every key, shape and dtype before it
assigns anything: a bad file leaves the model as it was.
"""
from __future__ import annotations

import os
from typing import Dict

import numpy as np


def _format(path) -> str:
    suffix = os.path.splitext(os.fspath(path))[1].lower()
    if suffix not in (".safetensors", ".npz"):
        raise ValueError(f"path must end in .safetensors or .npz, got {os.fspath(path)!r}")
    return suffix


def save(model, path) -> None:
    """Write ``model.state_dict()`` to ``path`` (``.safetensors`` or ``.npz``)."""
    state = {k: np.ascontiguousarray(v) for k, v in model.state_dict().items()}
    if _format(path) == ".npz":
        np.savez(path, **state)
        return
    save_file = _safetensors().save_file
    save_file(state, os.fspath(path))


def read(path) -> Dict[str, np.ndarray]:
    """The arrays stored in ``path``, by key."""
    if _format(path) == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            return {k: archive[k] for k in archive.files}
    load_file = _safetensors().load_file
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no weights file at {os.fspath(path)!r}")
    try:
        return load_file(os.fspath(path))
    except Exception as err:  # safetensors raises its own SafetensorError for a bad header
        raise ValueError(f"{os.fspath(path)!r} is not a readable .safetensors file: {err}") \
            from None


def load(model, path, strict: bool = True) -> None:
    """Load the parameters in ``path`` into ``model``; all or nothing."""
    model.load_state_dict(read(path), strict=strict)


def _safetensors():
    try:
        import safetensors.numpy
    except ImportError:
        raise ImportError("saving and loading .safetensors needs the safetensors package: "
                          "pip install 'convkit[io]' (or save as .npz)") from None
    return safetensors.numpy
