"""Scattering network: kymatio ``Scattering2D`` coefficients, flattened.

Uses ``frontend="torch"`` from the top-level package: ``import kymatio.torch`` also loads the 3-D
module, which breaks with scipy >= 1.17 (``sph_harm`` was removed).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..device import resolve_device
from ..errors import ParamError
from .base import FEATURES, InputTransform
from ._torch import batched_apply


@lru_cache(maxsize=8)
def _scattering(J: int, L: int, max_order: int, shape: tuple[int, int], device: str):
    from kymatio import Scattering2D

    return Scattering2D(J=J, shape=shape, L=L, max_order=max_order, frontend="torch").to(device)


def n_coefficients(J: int, L: int, max_order: int) -> int:
    """Scattering channels per pixel: 1 + J*L (+ L^2 * J(J-1)/2 at order 2)."""
    return 1 + J * L + (L * L * J * (J - 1) // 2 if max_order == 2 else 0)


def _validate(J: int, L: int, max_order: int) -> dict:
    J, L, max_order = int(J), int(L), int(max_order)
    if not 1 <= J <= 4:  # 28 px images: 2^J must stay below the image size
        raise ParamError(f"scatnet J must be in 1..4 for 28x28 images, got {J}")
    if L < 1:
        raise ParamError(f"scatnet L (angles) must be >= 1, got {L}")
    if max_order not in (1, 2):
        raise ParamError(f"scatnet max_order must be 1 or 2, got {max_order}")
    return {"J": J, "L": L, "max_order": max_order}


@FEATURES.register("scatnet", J=2, L=8, max_order=2)
def scatnet(images: np.ndarray, *, J: int, L: int, max_order: int, batch_size: int = 256,
            device: str = "auto", progress: bool = True) -> np.ndarray:
    """Scattering coefficients (kymatio Scattering2D), flattened."""
    _validate(J, L, max_order)
    dev = resolve_device(device)
    S = _scattering(J, L, max_order, tuple(images.shape[1:]), str(dev))
    return batched_apply(images, S, batch_size=batch_size, device=dev,
                         desc=f"scatnet J={J} L={L} M={max_order}", progress=progress)


scatnet.validate = _validate

LOG_EPS = 1e-3


def log_scattering(x: np.ndarray) -> np.ndarray:
    """log(x + 1e-3): scattering moduli span decades (order 0 ~ 0.3, order 2 ~ 1e-4); the log evens them out."""
    return np.log(np.maximum(x, 0) + np.float32(LOG_EPS), dtype=x.dtype if x.dtype.kind == "f" else np.float64)


def _log_standardised_steps() -> list:
    from sklearn.preprocessing import FunctionTransformer, StandardScaler

    return [("log", FunctionTransformer(log_scattering, feature_names_out="one-to-one")),
            ("log_scale", StandardScaler())]


scatnet.input_transform = InputTransform(f"log(x+{LOG_EPS:g}) then standardise", _log_standardised_steps,
                                         [f"{__name__}.log_scattering"])
# torch features use every core they are given, and the GPU when present (an executor's resource hint)
scatnet.resources = {"num_cpus": 2, "gpu": 1}
scatnet.cost = 60  # s for 70k images on 2 cores (full study, 2026-12-02)
# coefficients per image (28 x 28): 1 + JL + L^2 J(J-1)/2 channels at order 2, on a floor(28 / 2^J)^2 grid
# (kymatio's output: 14, 7, 3, 1 pixels a side for J = 1..4)
scatnet.dims = lambda p: n_coefficients(p["J"], p["L"], p["max_order"]) * (28 // 2 ** p["J"]) ** 2
# `fmnist scatnet-search` on the whole 54k training split against the 6k validation split (never the test set;
# docs/benchmarks.md "Records"): J=2, L=8, log, 200 components 92.77%; the standardised sqrt pixels beside the
# coefficients, 300 components, 93.22%, the first candidate within one standard error of the best (93.48%, with
# virtual examples of the support vectors at ten times the minutes). Test, read once: 93.01% (92.60% before).
scatnet.svm_pca_dims = 300
scatnet.svm_pixels = True
