"""C-MTEB-style evaluation: seven task types, every M3 retrieval mode, a BM25 baseline, reports.

from trivec.evaluation import evaluate
evaluate("default", tasks="cranfield,stsb-multi-mt-en", output_dir="runs/minilm")
"""

from trivec.evaluation.evaluators import EVALUATORS, RETRIEVAL_MODES, EvalSettings, parse_modes
from trivec.evaluation.mteb_adapter import MtebEncoder
from trivec.evaluation.report import load_run, write_report
from trivec.evaluation.runner import evaluate, resolve_tasks
from trivec.evaluation.tasks import (
    Task,
    TaskType,
    builtin_tasks,
    default_data_dir,
    infer_task_type,
    select_tasks,
    task_from_dir,
)

__all__ = [
    "EVALUATORS",
    "RETRIEVAL_MODES",
    "EvalSettings",
    "MtebEncoder",
    "Task",
    "TaskType",
    "builtin_tasks",
    "default_data_dir",
    "evaluate",
    "infer_task_type",
    "load_run",
    "parse_modes",
    "resolve_tasks",
    "select_tasks",
    "task_from_dir",
    "write_report",
]
