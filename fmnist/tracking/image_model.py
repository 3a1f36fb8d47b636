"""The served model, as MLflow "models from code": ``fmnist.predictor`` behind MLflow's pyfunc interface.

MLflow runs this file when it loads the model (the package travels with it as ``code_paths``).
"""

import numpy as np
from mlflow.exceptions import MlflowException
from mlflow.models import set_model
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel


class BadImages(MlflowException):
    """HTTP 400 with the one-line reason. MLflow's scoring server rewrites a failed predict's ``message`` to
    prefix it with the whole request batch (hundreds of lines); this message keeps the reason only."""

    def __init__(self, reason: str):
        self._reason = reason
        super().__init__(reason, error_code=INVALID_PARAMETER_VALUE)

    @property
    def message(self) -> str:
        return self._reason

    @message.setter
    def message(self, _value: str) -> None:
        pass


# predict's input is annotated np.ndarray, a hint MLflow infers no schema from, so that it neither validates
# the input before our one-line checks (see fmnist.tracking.records.log_image_model) nor asks for type hints
# on every load (a warning no filter silences: MLflow resets the filters around it). It receives what the
# request decodes to: an array, a DataFrame or lists; fmnist.predictor.as_images takes each.


class ImageModel(PythonModel):
    """Raw images in (see ``fmnist.predictor``), a DataFrame of classes (and probabilities) out."""

    def load_context(self, context):
        from fmnist.predictor import load_predictor

        self.predictor = load_predictor(context.artifacts)

    def predict(self, context, model_input: np.ndarray, params=None):
        from fmnist.predictor import InputError

        try:
            return self.predictor.predict(model_input)
        except InputError as e:
            raise BadImages(str(e)) from None


set_model(ImageModel())
