"""The one package that talks to MLflow. Everything else calls these functions (``tracking.run(...)``).

``store``: the URI and a sqlite store made safe for concurrent processes (``prepare_store``);
``lifecycle``: opening and ending runs; ``records``: what a run logs; ``lookup``: the cache lookup;
``queries``: reading runs back; ``accounts``: users and permissions on a server with MLflow's basic-auth;
``models``: the Model Registry and loading image models from their data files; ``image_model``: the pyfunc
(loaded by MLflow, not here); ``pyfunc``: what it shares with ``serving``, ``fmnist serve``'s app;
``server_auth``: the team server's own password check (imported by ``mlflow server``, not here).
"""

from .lifecycle import (active_experiment_name, active_run_id, check_store, end_if_running, end_unfinished_children, fail_run,
                        launcher_run_id, one_line, reap_dead_runs, refusal, reopen_run, run)
from .accounts import as_env as credentials_env
from .models import (Version as ModelVersion, by_alias as model_by_alias, ensure_model, register as register_model_version,
                     download_model, load_image_model, load_predictor, predictor_from_folder,
                     registered_models, run_model_uri, resolve as resolve_model,
                     set_alias as set_model_alias, set_version_tags as set_model_version_tags,
                     versions as model_versions)
from .lookup import _tagged_runs, find_cached_run, find_unfinished_runs
from .checkpoints import (CHECKPOINTS_DIR, checkpoint_files, download_checkpoint_file,
                          log_checkpoint_files)
from .queries import (artifact_local_path, child_runs, get_run_info, metric_history, run_exists, runs_info, runs_fingerprint,
                      runs_table_url, search_runs, set_run_tags)
from .records import (log_artifact, log_dataset, log_dict, log_evaluation, log_figure, log_image_model, log_metrics, log_numpy_input,
                      log_params, log_pytorch_model, log_table, log_text, numpy_dataset, pinned_requirements, set_tags)
from .store import (ARTIFACT_SHA_TAG, CACHE_KEY_TAG, DEFAULT_EXPERIMENT, ERROR_TAG, PARENT_TAG, SQLITE_BUSY_TIMEOUT,
                    STEP_TAG, TAG_PREFIX, _client, create_experiment_once, prepare_store, retry_on_conflict,
                    tracking_uri)

__all__ = [
    "ARTIFACT_SHA_TAG", "CACHE_KEY_TAG", "CHECKPOINTS_DIR", "checkpoint_files", "download_checkpoint_file",
    "log_checkpoint_files", "DEFAULT_EXPERIMENT", "ERROR_TAG", "PARENT_TAG", "SQLITE_BUSY_TIMEOUT",
    "STEP_TAG", "TAG_PREFIX", "ModelVersion", "active_experiment_name", "active_run_id", "artifact_local_path", "check_store",
    "child_runs", "create_experiment_once", "credentials_env", "end_if_running", "end_unfinished_children", "ensure_model", "fail_run", "find_cached_run", "launcher_run_id",
    "find_unfinished_runs", "get_run_info", "log_artifact", "log_dict", "log_figure", "log_image_model", "log_metrics",
    "download_model", "load_image_model", "load_predictor", "predictor_from_folder", "run_model_uri", "log_numpy_input", "log_params", "log_pytorch_model", "log_dataset", "log_evaluation", "numpy_dataset", "log_table", "log_text",
    "metric_history", "model_by_alias", "model_versions", "one_line", "pinned_requirements", "prepare_store", "reap_dead_runs", "refusal", "register_model_version",
    "registered_models", "reopen_run", "resolve_model",
    "retry_on_conflict", "run", "run_exists", "runs_info", "runs_fingerprint", "runs_table_url", "search_runs", "set_model_alias", "set_model_version_tags",
    "set_run_tags", "set_tags", "tracking_uri",
]
