"""Every step, by name: what a rerun looks a logged run's step up in (``fmnist.step``), and what tests go over.
The graph runner never looks a step up by name: a cell carries its Step."""

from .classify import CLASSIFY
from .extract import EXTRACT
from .finetune import FINETUNE
from .report import REPORT
from .search import CANDIDATE
from .shift import SHIFT, SHIFT_FEATURES
from .visualize import VISUALIZE

STEPS = {s.name: s for s in (EXTRACT, CLASSIFY, VISUALIZE, FINETUNE, REPORT, CANDIDATE, SHIFT_FEATURES, SHIFT)}
