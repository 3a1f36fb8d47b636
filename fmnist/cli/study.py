"""``fmnist study``: the whole study (the ``main`` entry point)."""

from __future__ import annotations

import click

from ..data import dataset_names
from ..steps.study import run_study
from ..study import PROFILES
from .options import SubsetType


class ProfileSubset(SubsetType):
    """``profile`` (the profile's own subset), ``all`` or a positive number of images."""

    name = "subset"

    def convert(self, value, param, ctx):
        if isinstance(value, str) and value.strip().lower() == "profile":
            return "profile"
        return super().convert(value, param, ctx)


@click.command()
@click.option("--profile", type=click.Choice(list(PROFILES)), default="quick", show_default=True,
              help="; ".join(f"{p.name}: {p.doc}" for p in PROFILES.values()))
@click.option("--features", default="all", show_default=True, help="all, or a comma list of features.")
@click.option("--models", default="all", show_default=True, help="all, or a comma list of classifiers.")
@click.option("--methods", default="all", show_default=True, help="all, or a comma list of 2-D methods.")
@click.option("--finetune", type=click.BOOL, default=True, show_default=True, help="Fine-tune ResNet-18 (both modes).")
@click.option("--subset", type=ProfileSubset(), default="profile", show_default=True,
              help="profile, all, or N images per split (overrides the profile).")
@click.option("--epochs", type=click.IntRange(min=0), default=0, show_default=True,
              help="Fine-tune epochs; 0 = the profile's.")
@click.option("--dataset", type=click.Choice(dataset_names()), default="fashion-mnist", show_default=True)
@click.option("--data-dir", default="", help="Folder with the IDX files [default: $FMNIST_DATA_DIR or ./data].")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--weights", default="auto", show_default=True,
              help="ResNet-18 weights for features and fine-tuning: imagenet, none, auto or a .pth path.")
@click.option("--device", default="auto", show_default=True, help="auto (CUDA when present), cpu, cuda, cuda:N, mps.")
@click.option("--report-output", default="outputs/report.html", show_default=True, help="Where to write the HTML report.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Progress bars.")
def study(profile, features, models, methods, finetune, subset, epochs, dataset, data_dir, seed, weights, device,
          report_output, progress) -> None:
    """Run the whole study: extract, classify, visualize, fine-tune, report; every step cached."""
    run_study(profile=profile, features=features, models=models, methods=methods, finetune=finetune,
              subset=None if subset == "profile" else subset, full_data=subset is None, epochs=epochs or None,
              dataset=dataset, data_dir=data_dir or None, seed=seed, weights=weights, device=device,
              report_output=report_output, progress=progress)
