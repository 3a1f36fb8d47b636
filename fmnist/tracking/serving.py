"""``fmnist serve``'s app: MLflow's scoring server (``/invocations``, ``/ping``, ``/version``) around an image
model built from its data files (``predictor_from_folder``), so that serving runs no code from the store.

uvicorn imports this module in each worker; ``MODEL_PATH_VAR`` names the downloaded model folder.
"""

import os

from mlflow.models import Model
from mlflow.pyfunc import PyFuncModel, scoring_server

MODEL_PATH_VAR = "FMNIST_SERVE_MODEL_PATH"


class _Served:
    """What PyFuncModel calls: the image model's own predict, bad images answered with HTTP 400 in one line."""

    def __init__(self, predictor):
        self.predictor = predictor

    def predict(self, data, params=None):
        from .pyfunc import predict_images

        return predict_images(self.predictor, data)


def served_model(folder: str) -> PyFuncModel:
    from .models import predictor_from_folder

    meta = Model.load(os.path.join(folder, "MLmodel"))  # its signature (the model validates input itself)
    return PyFuncModel(model_meta=meta, model_impl=_Served(predictor_from_folder(folder)))


if MODEL_PATH_VAR in os.environ:
    app = scoring_server.init(served_model(os.environ[MODEL_PATH_VAR]))
