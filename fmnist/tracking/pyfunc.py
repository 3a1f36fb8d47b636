"""What the image model's pyfunc and ``fmnist serve`` share (imported from the model's code copy too)."""

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE


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


def predict_images(predictor, data):
    """``predictor.predict(data)``; images it refuses become ``BadImages`` (HTTP 400, the one-line reason)."""
    from fmnist.predictor import InputError

    try:
        return predictor.predict(data)
    except InputError as e:
        raise BadImages(str(e)) from None
