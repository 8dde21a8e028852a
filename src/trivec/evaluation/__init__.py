"""C-MTEB-style evaluation: seven task types, every M3 retrieval mode, a BM25 baseline, reports.

from trivec.evaluation import evaluate
evaluate("default", tasks="cranfield,stsb-multi-mt-en", output_dir="runs/minilm")
"""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.evaluation.evaluators import EVALUATORS, RETRIEVAL_MODES, EvalSettings, parse_modes
    from trivec.evaluation.mteb_adapter import MtebEncoder
    from trivec.evaluation.registry import builtin_tasks, default_data_dir, infer_task_type, task_from_dir
    from trivec.evaluation.report import load_run, write_report
    from trivec.evaluation.runner import evaluate, resolve_tasks
    from trivec.evaluation.tasks import Task, TaskType, select_tasks

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "EVALUATORS": "trivec.evaluation.evaluators",
        "RETRIEVAL_MODES": "trivec.evaluation.evaluators",
        "EvalSettings": "trivec.evaluation.evaluators",
        "parse_modes": "trivec.evaluation.evaluators",
        "MtebEncoder": "trivec.evaluation.mteb_adapter",
        "load_run": "trivec.evaluation.report",
        "write_report": "trivec.evaluation.report",
        "evaluate": "trivec.evaluation.runner",
        "resolve_tasks": "trivec.evaluation.runner",
        "Task": "trivec.evaluation.tasks",
        "TaskType": "trivec.evaluation.tasks",
        "builtin_tasks": "trivec.evaluation.registry",
        "default_data_dir": "trivec.evaluation.registry",
        "infer_task_type": "trivec.evaluation.registry",
        "select_tasks": "trivec.evaluation.tasks",
        "task_from_dir": "trivec.evaluation.registry",
    },
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
