"""Commands: what the CLI, the MLflow entry points and a Python user call. Each builds a graph of step cells
(``fmnist.steps``) and hands it to the graph runner (``fmnist.steps.graph``). Imports flow one way: steps ->
graph runner -> commands -> cli."""

from .grids import classify, extract, finetune_modes, scatnet_search, visualize
from .rerun import rerun_run, rerun_study
from .study import run_study

__all__ = ["classify", "extract", "finetune_modes", "rerun_run", "rerun_study", "run_study", "scatnet_search",
           "visualize"]
