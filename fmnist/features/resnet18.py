"""ResNet-18 penultimate layer (512-d), ImageNet-pretrained or otherwise (see ``fmnist.weights``)."""

from __future__ import annotations

import numpy as np

from ..device import resolve_device
from ..errors import ParamError
from functools import lru_cache

from ..weights import Weights, build_resnet18, imagenet_cache_path, imagenet_preprocess, resolve_weights
from .base import FEATURES
from ._torch import batched_apply


def _validate(weights: str, image_size: int, weights_sha256: str = "") -> dict:
    image_size = int(image_size)
    if not 16 <= image_size <= 512:
        raise ParamError(f"resnet18 image_size must be in 16..512, got {image_size}")
    w = resolve_weights(weights)
    # The cache key holds what is really used: 'auto' resolved, and a file by its content hash.
    return {"weights": w.kind if w.kind != "file" else w.path, "weights_sha256": w.sha256,
            "image_size": image_size}


@FEATURES.register("resnet18", weights="auto", image_size=64)
def resnet18(images: np.ndarray, *, weights: str, image_size: int, weights_sha256: str = "",
             batch_size: int = 256, device: str = "auto", progress: bool = True) -> np.ndarray:
    """ResNet-18 512-d penultimate-layer activations."""
    import torch

    w = resolve_weights(weights)
    if weights_sha256 and w.sha256 != weights_sha256:
        raise ParamError(f"weights file changed since it was resolved ({w.path})")
    dev = resolve_device(device)
    model = _backbone(w, str(dev))
    cuda = dev.type == "cuda"

    def forward(x):
        x = imagenet_preprocess(x, image_size)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return model(x)
        return model(x)

    return batched_apply(images, forward, batch_size=batch_size, device=dev,
                         desc=f"resnet18 {w.label} {image_size}px", progress=progress)


@lru_cache(maxsize=2)
def _backbone(w: Weights, device: str):
    """The network for these weights, built once per process (a served model predicts batch after batch)."""
    import torch

    model = build_resnet18(w).to(device).eval()
    return model.to(memory_format=torch.channels_last) if device.startswith("cuda") else model


def _carry(params: dict) -> dict[str, str]:
    """The weights file a served model holds (random init: rebuilt from its fixed seed instead)."""
    kind = params.get("weights", "none")
    if kind == "none":
        return {}
    return {"weights": str(imagenet_cache_path()) if kind == "imagenet" else kind}


resnet18.validate = _validate
resnet18.carry = _carry


def weights_label(params: dict) -> str:
    """Human label of the weights a resolved param dict stands for."""
    kind = params.get("weights", "none")
    if kind in ("imagenet", "none"):
        return Weights(kind).label
    return Weights("file", kind, params.get("weights_sha256", "")).label


resnet18.label = lambda params: "resnet18 (random init)" if params.get("weights") == "none" else "resnet18"
resnet18.run_params = lambda params: {"weights_used": weights_label(params)}
resnet18.resources = {"num_cpus": 2, "gpu": 1}  # torch: every core it is given, and the GPU when present
resnet18.dims = lambda p: 512  # the penultimate layer
resnet18.cost = 130  # s for 70k images at 64 px on 2 cores (full study, 2026-12-02)
