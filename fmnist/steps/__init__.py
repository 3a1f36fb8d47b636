"""Steps: library computations wrapped in MLflow runs (through ``fmnist.tracking``) and the cache."""
