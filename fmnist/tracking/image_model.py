"""The served model, as MLflow "models from code": ``fmnist.predictor`` behind MLflow's pyfunc interface.

MLflow runs this file when it loads the model (the package travels with it as ``code_paths``).
"""

import numpy as np
from mlflow.models import set_model
from mlflow.pyfunc import PythonModel


# predict's input is annotated np.ndarray, a hint MLflow infers no schema from (it would ask for type hints on
# every load otherwise). The signature declares uint8 (N, 28, 28) and is marked as validated by the model (see
# fmnist.tracking.records.log_image_model): predict receives what the request decodes to, an array, a DataFrame
# or lists, and fmnist.predictor.as_images takes each or refuses it in one line.


class ImageModel(PythonModel):
    """Raw images in (see ``fmnist.predictor``), a DataFrame of classes (and probabilities) out."""

    def load_context(self, context):
        from fmnist.predictor import load_predictor

        self.predictor = load_predictor(context.artifacts)

    def predict(self, context, model_input: np.ndarray, params=None):
        from fmnist.tracking.pyfunc import predict_images

        return predict_images(self.predictor, model_input)


set_model(ImageModel())
