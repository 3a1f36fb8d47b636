"""Execute the report notebook headlessly (nbclient) and export it to HTML (nbconvert)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from .envvars import environ
from .errors import ParamError

DEFAULT_NOTEBOOK = Path(__file__).resolve().parent.parent / "notebooks" / "report.ipynb"


def render_report(output: str | os.PathLike, *, tracking_uri: str, notebook: str | os.PathLike | None = None,
                  experiment: str | None = None, dataset: str = "fashion-mnist", timeout: int = 600) -> dict:
    """Run ``notebook`` against the tracking store at ``tracking_uri`` (absolute: the kernel has its own
    working directory) for ``experiment`` and ``dataset``; write HTML for readers to ``output`` (no code, no
    stderr) and the executed .ipynb, code and all, beside it for authors."""
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
    # The kernel inherits our environment: that is how it finds the store and the experiment.
    # The notebook writes the full pairwise-test table there (linked from the page); a stale one goes first.
    csv = significance_csv(out)
    csv.unlink(missing_ok=True)
    views = views_dir(out)  # each 2-D view's page, copied there by the notebook and linked from its figure
    for old in views.glob("*.html"):
        old.unlink()
    env = {"MLFLOW_TRACKING_URI": tracking_uri, "FMNIST_REPORT_EXPERIMENT": experiment or "",
           "FMNIST_REPORT_DATASET": dataset, "FMNIST_REPORT_CSV": str(csv), "FMNIST_REPORT_VIEWS": str(views),
           "TQDM_DISABLE": "1"}
    t0 = time.perf_counter()
    with environ(env):
        NotebookClient(nb, timeout=timeout, kernel_name="python3",
                       resources={"metadata": {"path": os.getcwd()}}).execute()
    html, _ = HTMLExporter(template_name="lab", exclude_input=True, exclude_input_prompt=True,
                           exclude_output_prompt=True).from_notebook_node(_for_readers(nb))
    tmp = out.with_suffix(".html.tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    executed = out.with_suffix(".ipynb")
    nbformat.write(nb, executed)
    return {"html": out, "ipynb": executed, "csv": csv if csv.is_file() else None,
            "views": sorted(views.glob("*.html")), "seconds": time.perf_counter() - t0}


def views_dir(html: Path) -> Path:
    """Where the report at ``html`` keeps its 2-D views' pages: ``views/`` beside it (links are relative)."""
    return Path(html).parent / "views"


def significance_csv(html: Path) -> Path:
    """Where the report at ``html`` keeps its full table of paired tests: ``report.significance.csv``."""
    return Path(html).with_suffix(".significance.csv")


def _for_readers(nb):
    """A copy without what a reader need not see: stderr (warnings, log lines) and empty cells."""
    import copy

    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream"
                                                                       and o.get("name") == "stderr")]
    nb.cells = [c for c in nb.cells if c.cell_type != "code" or c.outputs]
    return nb
