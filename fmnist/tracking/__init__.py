"""The one package that talks to MLflow. Everything else calls these functions (``tracking.run(...)``).

``store``: the URI and a sqlite store made safe for concurrent processes (``prepare_store``);
``lifecycle``: opening and ending runs; ``records``: what a run logs; ``lookup``: the cache lookup;
``queries``: reading runs back; ``accounts``: users and permissions on a server with MLflow's basic-auth;
``server_auth``: the team server's own password check (imported by ``mlflow server``, not here).
"""

from .lifecycle import (active_experiment_name, active_run_id, check_store, end_if_running, end_unfinished_children, fail_run,
                        one_line, reap_dead_runs, refusal, reopen_run, run)
from .accounts import as_env as credentials_env
from .lookup import _tagged_runs, find_cached_run, find_unfinished_runs
from .queries import (artifact_local_path, child_runs, get_run_info, metric_history, run_exists, runs_fingerprint,
                      runs_table_url, search_runs, set_run_tags)
from .records import (log_artifact, log_dict, log_figure, log_metrics, log_numpy_input, log_params,
                      log_pytorch_model, log_sklearn_model, log_table, log_text, pinned_requirements, set_tags)
from .store import (ARTIFACT_SHA_TAG, CACHE_KEY_TAG, DEFAULT_EXPERIMENT, ERROR_TAG, PARENT_TAG, SQLITE_BUSY_TIMEOUT,
                    STEP_TAG, TAG_PREFIX, _client, create_experiment_once, prepare_store, retry_on_conflict,
                    tracking_uri)

__all__ = [
    "ARTIFACT_SHA_TAG", "CACHE_KEY_TAG", "DEFAULT_EXPERIMENT", "ERROR_TAG", "PARENT_TAG", "SQLITE_BUSY_TIMEOUT",
    "STEP_TAG", "TAG_PREFIX", "active_experiment_name", "active_run_id", "artifact_local_path", "check_store",
    "child_runs", "create_experiment_once", "credentials_env", "end_if_running", "end_unfinished_children", "fail_run", "find_cached_run",
    "find_unfinished_runs", "get_run_info", "log_artifact", "log_dict", "log_figure", "log_metrics",
    "log_numpy_input", "log_params", "log_pytorch_model", "log_sklearn_model", "log_table", "log_text",
    "metric_history", "one_line", "pinned_requirements", "prepare_store", "reap_dead_runs", "refusal", "reopen_run",
    "retry_on_conflict", "run", "run_exists", "runs_fingerprint", "runs_table_url", "search_runs", "set_run_tags", "set_tags", "tracking_uri",
]
