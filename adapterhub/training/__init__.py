"""Training as a readable recipe (torchtune's shape) on accelerate.

- ``recipe.py``: the :class:`Recipe` dataclass and its YAML files;
- ``selection.py``: which languages a run trains and tests on (pure functions of counts);
- ``data.py``: a recipe's rows through :mod:`adapterhub.data`;
- ``model.py``: the adapted backbone and task head a recipe trains, and how it is saved;
- ``probe.py``: the linear probe on pooled states (the baseline, and LP-FT's head init);
- ``loop.py``: :class:`Trainer` (``setup()`` in steps, ``train()`` the loop, ``train_step``)
  and the :func:`train` entry point;
- ``checkpoint.py``: resumable checkpoints (``accelerator.save_state``/``load_state``);
- ``tracking.py``: ``report_to`` through accelerate's trackers;
- ``publish.py``: a trained folder into the registry.

Training uses :mod:`adapterhub.evaluation` (validation, the test report, the loss curve), never
the other way round.
"""

from adapterhub.training.data import PreparedData, prepare_data
from adapterhub.training.loop import Trainer, train
from adapterhub.training.model import build_model
from adapterhub.training.publish import publish_adapter
from adapterhub.training.result import TrainResult
from adapterhub.training.selection import LanguagePlan, check_lang, choose_languages

__all__ = [
    "LanguagePlan",
    "PreparedData",
    "TrainResult",
    "Trainer",
    "build_model",
    "check_lang",
    "choose_languages",
    "prepare_data",
    "publish_adapter",
    "train",
]
