"""Shared batching loop for torch feature extractors: batched, on the device, with progress."""

from __future__ import annotations

from typing import Callable

import numpy as np


def batched_apply(
    images: np.ndarray, fn: Callable, *, batch_size: int, device, desc: str, progress: bool
) -> np.ndarray:
    """Feed uint8 images to ``fn`` (float tensors in [0, 1], (B, H, W) on ``device``) batch by batch."""
    import torch
    from tqdm.auto import tqdm

    out: np.ndarray | None = None
    # disable=None: tqdm's own "off unless a terminal" (a log file gets the step's one finished line)
    with torch.inference_mode(), tqdm(total=len(images), desc=desc, unit="img", disable=None if progress else True,
                                      mininterval=1.0) as bar:
        for start in range(0, len(images), batch_size):
            # IDX arrays are read-only views (torch warns on non-writable memory): copy only those.
            chunk = torch.from_numpy(np.require(images[start:start + batch_size], requirements=["C", "W"]))
            x = chunk.to(device, non_blocking=True).float().div_(255.0)
            y = fn(x).reshape(len(chunk), -1).float().cpu().numpy()
            if out is None:  # allocate once we know the width: no list of batches to concatenate
                out = np.empty((len(images), y.shape[1]), dtype=np.float32)
            out[start:start + len(chunk)] = y
            bar.update(len(chunk))
    return out if out is not None else np.zeros((0, 0), np.float32)
