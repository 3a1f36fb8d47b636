"""One source of truth: MLproject repeats the CLI's defaults and conda.yaml the package's deps."""

import re
import tomllib
from pathlib import Path

import click
import pytest
import yaml

from fmnist.cli import cli

ROOT = Path(__file__).resolve().parent.parent
MLPROJECT = yaml.safe_load((ROOT / "MLproject").read_text())
ENTRY_POINTS = MLPROJECT["entry_points"]
NOT_IN_MLPROJECT = {"progress", "help", "version"}


def _command_for(entry: dict) -> click.Command:
    script = re.search(r"entrypoints/(\w+)\.py", entry["command"]).group(1)
    return cli.commands.get(script) or cli.commands[script.replace("_", "-")]


@pytest.mark.parametrize("name", list(ENTRY_POINTS))
def test_defaults_match_cli(name):
    entry = ENTRY_POINTS[name]
    cmd = _command_for(entry)
    options = {p.name: p for p in cmd.params if isinstance(p, click.Option)}
    for pname, spec in entry["parameters"].items():
        assert pname in options, f"{name}: MLproject param {pname} is not a CLI option"
        assert str(spec["default"]) == str(options[pname].default), f"{name}.{pname}"
        flag = options[pname].opts[0]
        assert f"{flag} {{{pname}}}" in entry["command"], f"{name}: {pname} not passed on the command line"
    missing = set(options) - set(entry["parameters"]) - NOT_IN_MLPROJECT
    assert not missing, f"{name}: CLI options missing from MLproject: {missing}"


def test_every_entrypoint_script_exists():
    for entry in ENTRY_POINTS.values():
        script = re.search(r"entrypoints/\w+\.py", entry["command"]).group(0)
        assert (ROOT / script).is_file()


def test_conda_env_mirrors_pyproject():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    conda = yaml.safe_load((ROOT / "conda.yaml").read_text())
    pip = next(d["pip"] for d in conda["dependencies"] if isinstance(d, dict))
    assert pip == deps


def _params_class(command: str):
    from fmnist.steps.classify import ClassifyParams
    from fmnist.steps.extract import ExtractParams
    from fmnist.steps.finetune import FinetuneParams
    from fmnist.steps.report import ReportParams
    from fmnist.commands.rerun import RerunParams
    from fmnist.commands.shift import ShiftCommandParams
    from fmnist.steps.search import SearchParams
    from fmnist.commands.study import StudyParams
    from fmnist.steps.visualize import VisualizeParams

    from fmnist.steps.params import ExecOpts

    return {"extract": (ExtractParams, ExecOpts), "classify": (ClassifyParams, ExecOpts),
            "visualize": (VisualizeParams, ExecOpts), "finetune": (FinetuneParams, ExecOpts), "report": (ReportParams,),
            "study": (StudyParams,), "scatnet-search": (SearchParams, ExecOpts), "rerun": (RerunParams,),
            "shift": (ShiftCommandParams, ExecOpts)}[command]


@pytest.mark.parametrize("command", ["extract", "classify", "visualize", "finetune", "report", "study",
                                     "scatnet-search", "rerun", "shift"])
def test_cli_options_are_the_params_class(command):
    """The library's params class is the one source: every CLI option is a field with the same default."""
    from dataclasses import fields

    from fmnist.steps.params import cli_default

    options = {p.name: p for p in cli.commands[command].params if isinstance(p, click.Option)}
    cli_fields = {f.name: f for cls in _params_class(command) for f in fields(cls) if f.metadata.get("cli", True)}
    assert set(options) == set(cli_fields)
    for name, f in cli_fields.items():
        assert options[name].default == cli_default(f), f"{command}.{name}"


def test_finetune_defaults_are_fitconfigs():
    from dataclasses import fields

    from fmnist.finetune import FitConfig
    from fmnist.steps.finetune import FinetuneParams

    p = FinetuneParams()
    for f in fields(FitConfig):
        assert getattr(p, f.name) == f.default, f.name
    assert p.fit_config() == FitConfig()


def test_feature_and_method_defaults_are_the_registries():
    from fmnist.embeddings import EMBEDDINGS
    from fmnist.features import FEATURES
    from fmnist.steps.visualize import VisualizeParams

    p = VisualizeParams()
    for registry in (FEATURES, EMBEDDINGS):
        for entry in registry:
            for k, v in entry.params.items():
                assert getattr(p, k) == v, (entry.name, k)
