"""fmnist: an MLflow-tracked study of features and transfer learning on Fashion-MNIST."""

__version__ = "0.1.0"
