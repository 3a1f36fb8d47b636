"""Raw pixels: 784 values scaled to [0, 1]."""

import numpy as np

from . import FEATURES


@FEATURES.register("raw")
def raw(images: np.ndarray, **_runtime) -> np.ndarray:
    """Raw pixels scaled to [0, 1] (784-d)."""
    return images.reshape(len(images), -1).astype(np.float32) / np.float32(255.0)
