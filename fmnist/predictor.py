"""What a served model does: raw images in, classes out. Library code: ``fmnist.tracking.image_model`` wraps it
as an MLflow pyfunc.

Input: a batch of 28x28 images, integers 0-255 (uint8) or floats 0-1, shaped (N, 28, 28) or flattened (N, 784);
one (28, 28) image is a batch of one. Output: a DataFrame with ``class_index``, ``class_name`` and, where the
model has probabilities, one ``proba_<class>`` column per class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .errors import FmnistError

SIDE = 28
# What an image model's artifacts hold: nothing a load unpickles. The description as JSON, a classifier's pipeline
# through skops (only the types the code lists as trusted), a network as a state dict (torch weights_only).
PREDICTOR_FILE = "predictor.json"
PIPELINE_FILE = "pipeline.skops"
NETWORK_FILE = "network.pt"
FORMAT = 2  # 1 was one pickle of the whole predictor


class InputError(FmnistError, ValueError):
    """Images a model cannot take; the message is one line saying why (a server answers it with HTTP 400)."""


def as_images(x: Any) -> np.ndarray:
    """A batch of images as uint8 (N, 28, 28), or InputError naming what is wrong with it."""
    if hasattr(x, "to_numpy"):  # a DataFrame: one row per image (MLflow's dataframe_split)
        x = x.to_numpy()
    try:
        a = np.asarray(x)
        if a.dtype == object:  # JSON nested lists: numpy decides int (all integers) or float (any float)
            a = np.array(a.tolist())
    except (ValueError, TypeError):
        raise InputError("images of different sizes in one batch: each must be 28x28 (or 784 values)") from None
    if a.ndim >= 1 and len(a) == 0:
        raise InputError("an empty batch: send at least one image")
    if a.shape == (SIDE, SIDE):
        a = a[None]
    elif a.ndim == 2 and a.shape[1] == SIDE * SIDE:
        a = a.reshape(len(a), SIDE, SIDE)
    if a.ndim != 3 or a.shape[1:] != (SIDE, SIDE):
        raise InputError(f"expected a batch of 28x28 images, shape (N, 28, 28) or (N, 784); got shape {a.shape}")
    if a.dtype.kind not in "uif":
        raise InputError(f"pixels must be numbers, integers 0-255 or floats 0-1; got {_kind(a)}")
    if a.dtype.kind in "ui":
        lo, hi = int(a.min()), int(a.max())
        if lo < 0 or hi > 255:
            raise InputError(f"integer pixels must lie in 0..255; got {lo}..{hi}")
        return a.astype(np.uint8, copy=False)
    if not np.isfinite(a).all():
        raise InputError("pixels must be finite: the batch holds NaN or infinity")
    lo, hi = float(a.min()), float(a.max())
    if lo < 0 or hi > 1:
        raise InputError(f"float pixels must lie in [0, 1]; got {lo:g}..{hi:g} (send integers for 0-255 images)")
    # Floats are k/255 for the 8-bit images the models were trained on: rounding gives back exactly those.
    return np.rint(a * 255.0).astype(np.uint8)


def _kind(a: np.ndarray) -> str:
    return {"b": "true/false values", "U": "text", "S": "bytes", "O": "objects"}.get(a.dtype.kind, str(a.dtype))


@dataclass
class ImagePredictor:
    """A feature extractor and a fitted classifier (``feature`` set), or a fine-tuned ResNet-18 (``network``)."""

    classes: tuple[str, ...]
    feature: str = ""
    model: str = ""  # the registered classifier's name (what the pipeline's trusted types come from)
    feature_params: dict[str, Any] = field(default_factory=dict)
    classifier: Any = None  # scikit-learn pipeline on the features (its input steps included)
    pixels: bool = False  # the pipeline reads the pixels beside the features (fmnist.classifiers.model_input)
    network: dict[str, Any] | None = None  # fine-tune: the ResNet-18's state dict
    image_size: int = 0  # fine-tune: the size its images are resized to
    tta: bool = False  # fine-tune: logits averaged with the mirrored image's (as the run evaluated it)
    device: str = "auto"
    _net: Any = field(default=None, repr=False, compare=False)

    @property
    def has_probabilities(self) -> bool:
        return self.network is not None or hasattr(self.classifier, "predict_proba")

    def columns(self) -> list[str]:
        from .evaluation import slug

        probs = [f"proba_{slug(c)}" for c in self.classes] if self.has_probabilities else []
        return ["class_index", "class_name", *probs]

    def predict_arrays(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(class indices int64, probabilities float32 or None) for uint8 images (N, 28, 28)."""
        if self.network is not None:
            from .finetune.train import predict_proba

            proba = predict_proba(self._network(), images, image_size=self.image_size, device=self._device(),
                                  tta=self.tta)
            return proba.argmax(1).astype(np.int64), proba
        from .evaluation import class_probabilities

        feats = self.classifier_input(images)
        return np.asarray(self.classifier.predict(feats), np.int64), class_probabilities(self.classifier, feats)

    def classifier_input(self, images: np.ndarray, features: np.ndarray | None = None) -> np.ndarray:
        """What the pipeline reads for uint8 images (N, 28, 28): their features (``features``, when already
        extracted), after their pixels when it reads those too."""
        from .classifiers import model_input
        from .features import extract_features

        if features is None:
            features = extract_features(self.feature, images, self.feature_params, device=self.device, progress=False)
        return model_input(features, images, self.pixels)

    def predict(self, x: Any):
        """The output DataFrame for any accepted input (see the module docstring)."""
        import pandas as pd

        pred, proba = self.predict_arrays(as_images(x))
        out = pd.DataFrame({"class_index": pred, "class_name": np.asarray(self.classes, dtype=object)[pred]})
        if proba is not None:
            out = pd.concat([out, pd.DataFrame(proba, columns=self.columns()[2:])], axis=1)
        return out

    def carried_files(self) -> dict[str, str]:
        """Files the model must carry (e.g. pretrained weights), by the feature param that names them."""
        from .features import FEATURES

        carry = FEATURES.get(self.feature).hook("carry") if self.feature else None
        return carry(self.feature_params) if carry else {}

    def save(self, folder: Path) -> dict[str, str]:
        """Write the predictor's files into ``folder`` (carried files stay where they are); MLflow artifacts
        {name: path}."""
        folder = Path(folder)
        files = {"predictor": folder / PREDICTOR_FILE}
        if self.network is not None:
            import torch

            files["network"] = folder / NETWORK_FILE
            torch.save(self.network, files["network"])
        else:
            import skops.io

            files["pipeline"] = folder / PIPELINE_FILE
            skops.io.dump(self.classifier, files["pipeline"])
        files["predictor"].write_text(json.dumps({
            "format": FORMAT, "classes": list(self.classes), "feature": self.feature, "model": self.model,
            "feature_params": self.feature_params, "image_size": self.image_size, "device": self.device,
            "tta": self.tta, "pixels": self.pixels}, indent=1))
        return {**{k: str(v) for k, v in files.items()}, **self.carried_files()}

    def _device(self):
        from .device import resolve_device

        return resolve_device(self.device)

    def _network(self):
        if self._net is None:
            from .weights import Weights, build_resnet18

            net = build_resnet18(Weights("none"), num_classes=len(self.classes))
            net.load_state_dict(self.network)
            self._net = net.to(self._device()).eval()
        return self._net


def load_predictor(artifacts: dict[str, str]) -> ImagePredictor:
    """The predictor ``save`` wrote, its carried files' params pointing at their local copies. Nothing is
    unpickled: a file that would run code (an untrusted type, a pickled object) is refused in one line."""
    path = Path(artifacts["predictor"])
    if path.suffix == ".pkl":
        raise FmnistError(f"{path.name}: a model logged by an older fmnist as a pickle; refusing to unpickle it "
                          f"(re-run its cell with --force to log it again)")
    try:
        meta = json.loads(path.read_text())
        classes, fmt = tuple(meta["classes"]), meta["format"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise FmnistError(f"{path.name}: not a model description fmnist wrote ({type(e).__name__}); refusing it") from None
    if fmt != FORMAT:
        raise FmnistError(f"{path.name}: model format {fmt!r}, this fmnist reads {FORMAT}; refusing it")
    p = ImagePredictor(classes, feature=meta["feature"], model=meta["model"], feature_params=meta["feature_params"],
                       image_size=int(meta["image_size"]), device=meta["device"], tta=bool(meta.get("tta", False)),
                       pixels=bool(meta.get("pixels", False)))
    if "network" in artifacts:
        p = replace(p, network=_load_network(Path(artifacts["network"])))
    else:
        p = replace(p, classifier=_load_pipeline(Path(artifacts["pipeline"]), p.model, p.feature))
    carried = {k: artifacts[k] for k in p.carried_files() if k in artifacts}
    return replace(p, feature_params={**p.feature_params, **carried}) if carried else p


def _load_network(path: Path) -> dict[str, Any]:
    import pickle

    import torch

    try:  # weights_only: tensors and plain containers; anything else is refused before it is built
        return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
        why = " ".join(str(e).split())[:160]
        raise FmnistError(f"{path.name}: not a plain state dict, refusing to load it ({why})") from None


def _load_pipeline(path: Path, model: str, feature: str):
    import skops.io

    from .classifiers import build_classifier

    # The trusted types come from the code (the registered model and feature), never from the file itself.
    trusted = build_classifier(model, feature=feature or None).trusted_types
    try:
        untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in trusted]
    except Exception as e:  # not a skops file at all
        raise FmnistError(f"{path.name}: not a scikit-learn pipeline skops can read ({type(e).__name__}); "
                          f"refusing it") from None
    if untrusted:
        raise FmnistError(f"{path.name}: refusing to load types no fmnist model uses: {', '.join(untrusted[:5])}")
    return skops.io.load(path, trusted=trusted)


def for_classifier(feature: str, feature_params: dict[str, Any], model: str, classifier, classes,
                   pixels: bool = False) -> ImagePredictor:
    return ImagePredictor(tuple(classes), feature=feature, model=model, feature_params=dict(feature_params),
                          classifier=classifier, pixels=pixels)


def for_network(model, image_size: int, classes, tta: bool = False) -> ImagePredictor:
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return ImagePredictor(tuple(classes), network=state, image_size=int(image_size), tta=tta)
