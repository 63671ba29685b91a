"""The Inception FID, when a local torchvision Inception v3 weights file is given (nothing is downloaded)."""
from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

import numpy as np
import torch

from torch import nn

from synthgen.errors import InvalidArgumentError, ModelFileError
from synthgen.evaluation.images.inputs import resize
from synthgen.evaluation.images.metrics import frechet_distance
from synthgen.evaluation.scores import Score

_INCEPTION_SIDE = 299
_INCEPTION_BATCH = 32


def check_inception(path: Path) -> None:
    """Fail before any work when the Inception FID cannot be computed."""
    if importlib.util.find_spec("torchvision") is None:
        raise InvalidArgumentError(
            f"the Inception FID with {path} needs torchvision, which is not installed: install the torchvision release "
            f"matching torch {torch.__version__} (pip install torchvision), or leave out the Inception weights"
        )
    if not path.is_file():
        raise InvalidArgumentError(f"Inception weights file {path} does not exist")


def inception_fid(path: Path, train: np.ndarray, syn: np.ndarray, hold: np.ndarray | None, device: torch.device) -> Score:
    """FID on the 2048 pool features of torchvision's Inception v3 with the weights in ``path``.

    The Google weights torchvision ships expect RGB values scaled to [-1, 1] (what its
    ``transform_input`` produces from ImageNet-normalised input), which is what the images are.
    """
    import torchvision  # optional dependency, checked by check_inception
    from torchvision.models import inception_v3

    network = inception_v3(weights=None, aux_logits=True, transform_input=False, init_weights=False)
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (OSError, RuntimeError, pickle.UnpicklingError, TypeError, AttributeError, KeyError) as error:
        raise ModelFileError(f"{path} is not a torchvision Inception v3 state dict: {error}") from None
    network.fc = nn.Identity()
    network.eval().to(device)

    def pool_features(images: np.ndarray) -> np.ndarray:
        outputs = []
        with torch.inference_mode():
            for start in range(0, len(images), _INCEPTION_BATCH):
                x = resize(torch.from_numpy(images[start : start + _INCEPTION_BATCH]).to(device), _INCEPTION_SIDE)
                outputs.append(network(x.expand(-1, 3, -1, -1)).cpu().double().numpy())  # grey images on all three channels
        return np.concatenate(outputs)

    train_features = pool_features(train)
    value = frechet_distance(train_features, pool_features(syn))
    reference = frechet_distance(train_features, pool_features(hold)) if hold is not None else None
    return Score(
        "fidelity", "Inception FID", value, reference=reference, ideal="0",
        method=f"torchvision {torchvision.__version__} Inception v3 pool features at {_INCEPTION_SIDE} px, weights {path.name}",
        note="comparable only with FIDs computed with the same weights file and image sizes",
    )
