"""Execute the report notebook headlessly (nbclient) and export it to HTML (nbconvert)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .errors import ParamError

DEFAULT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "report.ipynb"


def render_report(output: str | os.PathLike, *, notebook: str | os.PathLike | None = None,
                  experiment: str | None = None, timeout: int = 600) -> dict:
    """Run ``notebook`` against the current tracking store; write HTML to ``output`` (and the executed
    .ipynb beside it). Returns paths and seconds."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb_path = Path(notebook or DEFAULT_NOTEBOOK)
    if not nb_path.is_file():
        raise ParamError(f"report notebook not found: {nb_path}")
    out = Path(output)
    if out.suffix.lower() != ".html":
        raise ParamError(f"report output must be an .html path, got {out}")
    out.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(nb_path, as_version=4)
    env_before = os.environ.get("FMNIST_REPORT_EXPERIMENT")
    if experiment:
        os.environ["FMNIST_REPORT_EXPERIMENT"] = experiment  # the kernel inherits our environment
    t0 = time.perf_counter()
    try:
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": str(nb_path.parent)}}).execute()
    finally:
        if experiment:
            if env_before is None:
                os.environ.pop("FMNIST_REPORT_EXPERIMENT", None)
            else:
                os.environ["FMNIST_REPORT_EXPERIMENT"] = env_before
    html, _ = HTMLExporter(template_name="lab").from_notebook_node(nb)
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    executed = out.with_suffix(".ipynb")
    nbformat.write(nb, executed)
    return {"html": out, "ipynb": executed, "seconds": time.perf_counter() - t0}
