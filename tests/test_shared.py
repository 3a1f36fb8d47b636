import numpy as np

from fmnist.data import train_val_split
from fmnist.evaluation import classification_report, slug
from fmnist.plots import PALETTE, close, confusion_matrix_figure


def test_train_val_split_is_stratified_and_disjoint():
    y = np.repeat(np.arange(10), 50)
    tr, va = train_val_split(y, 0.2, seed=1)
    assert len(va) == 100 and len(tr) == 400 and not set(tr) & set(va)
    assert np.bincount(y[va]).tolist() == [10] * 10


def test_classification_report():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 2, 0])
    r = classification_report(y, p, ["a", "b", "c"])
    assert r["accuracy"] == 4 / 6
    assert r["per_class_accuracy"] == {"a": 0.5, "b": 1.0, "c": 0.5}
    assert r["confusion"].sum() == 6 and r["confusion"][0, 1] == 1
    from sklearn.metrics import f1_score

    assert np.isclose(r["macro_f1"], f1_score(y, p, average="macro"))


def test_slug_and_palette(tmp_path):
    assert slug("T-shirt/top") == "t_shirt_top" and slug("Ankle boot") == "ankle_boot"
    assert PALETTE[0] == "magenta" and PALETTE[9] == "gray" and len(PALETTE) == 10
    fig = confusion_matrix_figure(np.eye(3, dtype=int) * 5, ["a", "b", "c"], "t")
    fig.savefig(tmp_path / "cm.png")
    close(fig)
    assert (tmp_path / "cm.png").stat().st_size > 1000
