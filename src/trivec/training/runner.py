"""The sequence every training recipe shares, written once: find the checkpoint to resume from, build the
recipe's trainer, train with a CSV log, write the final model, the trainer state and the recipe into the
output folder (moved into place only once complete), and close the processes of a distributed run.

A recipe (`train_contrastive`, `train_reranker`, `train_retromae`) brings only what is its own: how to build
its `Trainer` (model, data, collator) and, where the trainer's own saving is not the final layout, how to
save its model.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from transformers import Trainer
from transformers.trainer_utils import get_last_checkpoint

from trivec.errors import InputError
from trivec.training.csv_log import CSV_LOG_FILE, CSVLogCallback
from trivec.training.finish import close_processes, staged_output

RECIPE_FILE = "trivec_training.json"  # the run's settings, next to the model
TRAINER_STATE_FILE = "trainer_state.json"  # the Trainer's log history and step count
LAST = "last"

SaveModel = Callable[[Trainer, Path], None]


def resolve_resume(
    resume: str | os.PathLike[str] | bool | None, output_dir: str | os.PathLike[str]
) -> str | None:
    """The checkpoint folder a run resumes from: `"last"` (or True) is the newest `checkpoint-*` folder of
    `output_dir`, anything else a folder that must exist; None or False starts afresh. Checked before
    anything loads, so a wrong `--resume` fails at once."""
    if resume is None or resume is False:
        return None
    if resume is True or resume == LAST:
        output = Path(output_dir)
        newest = get_last_checkpoint(str(output)) if output.is_dir() else None
        if newest is None:
            raise InputError(
                f"resume_from_checkpoint {LAST!r}: no checkpoint-* folder in {output}",
                cli=f"--resume {LAST}: no checkpoint-* folder in {output}",
            )
        return newest
    if not Path(resume).is_dir():
        raise InputError(
            f"resume_from_checkpoint {resume}: no such checkpoint directory",
            cli=f"--resume {resume}: no such checkpoint directory",
        )
    return str(resume)


def save_with_trainer(trainer: Trainer, folder: Path) -> None:
    """The trainer's own saving (its `_save`: the layout its checkpoints have too) into `folder`."""
    trainer.save_model(str(folder))


def run_training(
    build_trainer: Callable[[], Trainer],
    *,
    output_dir: str | os.PathLike[str],
    resume: str | os.PathLike[str] | bool | None,
    recipe: Callable[[], Mapping[str, Any]],
    save_model: SaveModel = save_with_trainer,
) -> Path:
    """Train and save into `output_dir`; returns it.

    `build_trainer`: the recipe's trainer, built after `resume` is checked. `recipe`: the run's settings,
    read once training is over (building may fill defaults in) and written as `RECIPE_FILE`. `save_model`:
    writes the final model into the folder it is given. The model, `TRAINER_STATE_FILE` and the recipe are
    moved into `output_dir` only once all are written; only the process that saves writes them.
    """
    output = Path(output_dir)
    checkpoint = resolve_resume(resume, output)
    trainer = build_trainer()
    trainer.add_callback(CSVLogCallback(output / CSV_LOG_FILE))
    trainer.train(resume_from_checkpoint=checkpoint)
    if trainer.args.should_save:
        with staged_output(output) as staging:
            save_model(trainer, staging)
            trainer.state.save_to_json(str(staging / TRAINER_STATE_FILE))
            settings = json.dumps(dict(recipe()), indent=2, default=str)
            (staging / RECIPE_FILE).write_text(settings, encoding="utf-8")
    close_processes()
    return output
