"""The cache lookup: runs found by a tag (the cache key, a resume key) and their status, in any experiment."""

from __future__ import annotations

from typing import Any

import mlflow

from .queries import _as_dict
from .store import CACHE_KEY_TAG, prepare_store


def find_cached_run(key: str) -> dict[str, Any] | None:
    """The newest FINISHED run carrying this cache key, in any experiment, as ``get_run_info`` reads it (params,
    metrics, tags, artifact URI: the one read a cache decision makes); None if there is none."""
    runs = _search(CACHE_KEY_TAG, key, "= 'FINISHED'", max_results=1)
    return _as_dict(runs[0]) if runs else None


def find_unfinished_runs(tag: str, value: str) -> list[str]:
    """Ids of runs (any experiment) with ``tags.<tag> = value`` that did not finish, newest first."""
    return _tagged_runs(tag, value, "!= 'FINISHED'", max_results=20)


def _tagged_runs(tag: str, value: str, status: str, max_results: int) -> list[str]:
    """Ids of runs in any experiment with ``tags.<tag> = value`` and a status clause, newest first."""
    return [r.info.run_id for r in _search(tag, value, status, max_results)]


def _search(tag: str, value: str, status: str, max_results: int) -> list:
    prepare_store()
    return mlflow.search_runs(
        search_all_experiments=True,
        filter_string=f"tags.`{tag}` = '{value}' and attributes.status {status}",
        order_by=["attributes.start_time DESC"],
        max_results=max_results,
        output_format="list",
    )
