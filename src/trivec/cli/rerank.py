"""`trivec rerank`: cross-encoder scores of query/passage pairs (FlagReranker's `compute_score`);
`trivec data scores`: a teacher's scores added to training rows (knowledge distillation)."""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from trivec.cli.common import (
    ResumeOption,
    check_positive,
    clean_errors,
    command_group,
    fail,
    field_help,
    given_fields,
)
from trivec.training.reranker.arguments import RerankerConfig

RerankModelOption = Annotated[
    str,
    typer.Option(
        "--model", "-m", help="Cross-encoder reranker: a directory or a hub id (BAAI/bge-reranker-*)."
    ),
]
MaxLengthOption = Annotated[
    int | None, typer.Option("--max-length", help="Tokens per pair, special tokens included (default 512).")
]
QueryMaxLengthOption = Annotated[
    int | None,
    typer.Option("--query-max-length", help="Tokens of the query (default: --max-length × 3 / 4)."),
]
NormalizeOption = Annotated[
    bool, typer.Option("--normalize", help="Sigmoid of the logits: scores in (0, 1) instead of raw logits.")
]
InstructionOption = Annotated[
    str | None,
    typer.Option(
        "--instruction", help="Text put before every query (FlagReranker's query_instruction_for_rerank)."
    ),
]
BatchTokensOption = Annotated[int | None, typer.Option("--batch-tokens", help="Padded tokens per batch.")]
DeviceOption = Annotated[
    str | None, typer.Option("--device", help="cpu, cuda, cuda:1 … (default: cuda if any).")
]


@clean_errors
def rerank(
    pairs: Annotated[
        Path, typer.Option("--pairs", "-p", help="JSONL of {'query': ..., 'passage': ...}, or - for stdin.")
    ],
    model: RerankModelOption,
    max_length: MaxLengthOption = None,
    query_max_length: QueryMaxLengthOption = None,
    normalize: NormalizeOption = False,
    instruction: InstructionOption = None,
    batch_tokens: BatchTokensOption = None,
    device: DeviceOption = None,
) -> None:
    """Score query/passage pairs with a cross-encoder: one JSON line {"score": …} per pair, in input order."""
    from trivec.inference.reranker import Reranker
    from trivec.io import read_pairs

    check_positive(batch_tokens, "--batch-tokens")
    check_positive(max_length, "--max-length", minimum=4)
    check_positive(query_max_length, "--query-max-length")
    items = read_pairs(pairs)  # a malformed file fails before the model loads
    reranker = Reranker.from_pretrained(
        model,
        device=device,
        max_length=max_length,
        query_max_length=query_max_length,
        query_instruction=instruction,
        normalize=normalize,
        batch_tokens=batch_tokens,
    )
    scores = reranker.score(items)
    typer.echo("".join(json.dumps({"score": round(float(s), 6)}) + "\n" for s in scores), nl=False)


@clean_errors
def scores(
    teacher: Annotated[
        str, typer.Option("--teacher", "-t", help="Teacher: a reranker (BAAI/bge-reranker-*) or an M3 model.")
    ],
    data: Annotated[Path, typer.Option("--data", "-d", help="FlagEmbedding JSONL (query, pos[, neg]).")],
    output: Annotated[
        Path, typer.Option("--output", "-o", help="The same rows with pos_scores / neg_scores.")
    ],
    teacher_mode: Annotated[
        str | None,
        typer.Option(
            "--teacher-mode",
            help="reranker, all (colbert+sparse+dense), colbert or dense (default: reranker for a cross-encoder, "
            "else all).",
        ),
    ] = None,
    max_length: Annotated[
        int | None, typer.Option("--max-length", help="Tokens per pair (reranker) or text.")
    ] = None,
    temperature: Annotated[
        float,
        typer.Option(
            "--temperature",
            help="Divide the scores by this before writing them (training softmaxes them as written): an "
            "embedder's cosine-scale scores need a training temperature (e.g. the student's); 1 (default) "
            "for a reranker's logits.",
        ),
    ] = 1.0,
    batch_tokens: BatchTokensOption = None,
    device: DeviceOption = None,
    no_resume: Annotated[
        bool, typer.Option("--no-resume", help="Start afresh instead of continuing an unfinished run.")
    ] = False,
) -> None:
    """Add a teacher's pos_scores / neg_scores to training rows (resumable; the output appears when done)."""
    from trivec.progress import LOG
    from trivec.training.teacher import load_teacher, score_rows

    check_positive(batch_tokens, "--batch-tokens")
    check_positive(max_length, "--max-length", minimum=4)
    if not data.is_file():
        raise fail(f"--data {data}: no such file")
    loaded = load_teacher(
        teacher,
        teacher_mode,
        device=device,
        max_length=max_length,
        batch_tokens=batch_tokens,
        temperature=temperature,
    )
    stats = score_rows(loaded, data, output, resume=not no_resume)
    LOG.info("teacher scores (%s, %s): %s → %s", loaded.name, loaded.mode, stats.summary(), output)


reranker_help = partial(field_help, RerankerConfig)  # an option's help: its setting's, with the default


@clean_errors
def train_reranker(
    model: Annotated[str, typer.Option("--model", "-m", help=reranker_help("model"))],
    data: Annotated[list[Path], typer.Option("--data", "-d", help=reranker_help("data"))],
    output_dir: Annotated[
        Path, typer.Option("--output-dir", "--output", "-o", help=reranker_help("output_dir"))
    ],
    group_size: Annotated[int | None, typer.Option("--group-size", help=reranker_help("group_size"))] = None,
    max_length: Annotated[int | None, typer.Option("--max-length", help=reranker_help("max_length"))] = None,
    query_max_length: QueryMaxLengthOption = None,
    query_instruction: Annotated[
        str | None,
        typer.Option("--query-instruction", "--instruction", help=reranker_help("query_instruction")),
    ] = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help=reranker_help("batch_size"))] = None,
    epochs: Annotated[float | None, typer.Option("--epochs", help=reranker_help("epochs"))] = None,
    max_steps: Annotated[int | None, typer.Option("--max-steps", help=reranker_help("max_steps"))] = None,
    learning_rate: Annotated[
        float | None, typer.Option("--learning-rate", "--lr", help=reranker_help("learning_rate"))
    ] = None,
    warmup_ratio: Annotated[
        float | None, typer.Option("--warmup-ratio", help=reranker_help("warmup_ratio"))
    ] = None,
    seed: Annotated[int | None, typer.Option("--seed", help=reranker_help("seed"))] = None,
    save_steps: Annotated[int | None, typer.Option("--save-steps", help=reranker_help("save_steps"))] = None,
    logging_steps: Annotated[
        int | None, typer.Option("--logging-steps", help=reranker_help("logging_steps"))
    ] = None,
    dropout: Annotated[float | None, typer.Option("--dropout", help=reranker_help("dropout"))] = None,
    use_cpu: Annotated[bool | None, typer.Option("--use-cpu", "--cpu", help=reranker_help("use_cpu"))] = None,
    bf16: Annotated[bool | None, typer.Option("--bf16", help=reranker_help("bf16"))] = None,
    max_examples_per_file: Annotated[
        int | None, typer.Option("--max-examples-per-file", help=reranker_help("max_examples_per_file"))
    ] = None,
    lora_rank: Annotated[int | None, typer.Option("--lora-rank", help=reranker_help("lora_rank"))] = None,
    lora_alpha: Annotated[
        float | None, typer.Option("--lora-alpha", help=reranker_help("lora_alpha"))
    ] = None,
    head_learning_rate: Annotated[
        float | None,
        typer.Option("--head-learning-rate", "--head-lr", help=reranker_help("head_learning_rate")),
    ] = None,
    token_cache: Annotated[
        bool | None, typer.Option("--token-cache/--no-token-cache", help=reranker_help("token_cache"))
    ] = None,
    resume_from_checkpoint: ResumeOption = None,
) -> None:
    """Fine-tune a cross-encoder reranker (FlagEmbedding's recipe: groups of one positive and negatives,
    cross-entropy per group). Launch with torchrun for several GPUs."""
    given = dict(locals())  # the parameters (nothing else is defined yet), named after the fields they set
    from trivec.training.reranker.train import train_reranker as run

    out = run(RerankerConfig(**given_fields(given, RerankerConfig)))  # options not given: the defaults
    typer.echo(f"reranker saved to {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add `rerank`, `data scores` and `train reranker` to the `trivec` app."""
    app.command()(rerank)
    command_group(app, "data").command("scores")(scores)
    command_group(app, "train").command("reranker")(train_reranker)
