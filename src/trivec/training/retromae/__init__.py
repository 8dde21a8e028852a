"""RetroMAE pre-training (BGE's first stage): a masked encoder whose CLS vector must carry the text, and a
one-layer enhanced decoder that rebuilds every token from that vector (FlagEmbedding's RetroMAE; docs/retromae.md)."""

from typing import TYPE_CHECKING

from trivec._lazy import lazy_exports

if TYPE_CHECKING:  # imported on first use (trivec._lazy): `import trivec` stays light
    from trivec.training.csv_log import CSVLogCallback
    from trivec.training.retromae.arguments import RetroMAEArguments, build_arguments
    from trivec.training.retromae.collator import RetroMAECollator
    from trivec.training.retromae.data import TextCorpus, read_corpus_texts
    from trivec.training.retromae.masking import corrupt_for_mlm, whole_word_mask, word_ids_from_tokens
    from trivec.training.retromae.modeling import EnhancedDecoderLayer, RetroMAEModel, RetroMAEOutput
    from trivec.training.retromae.train import build_trainer, load_masked_lm, train_retromae
    from trivec.training.retromae.trainer import RetroMAETrainer

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "CSVLogCallback": "trivec.training.csv_log",
        "RetroMAEArguments": "trivec.training.retromae.arguments",
        "build_arguments": "trivec.training.retromae.arguments",
        "RetroMAECollator": "trivec.training.retromae.collator",
        "TextCorpus": "trivec.training.retromae.data",
        "read_corpus_texts": "trivec.training.retromae.data",
        "corrupt_for_mlm": "trivec.training.retromae.masking",
        "whole_word_mask": "trivec.training.retromae.masking",
        "word_ids_from_tokens": "trivec.training.retromae.masking",
        "EnhancedDecoderLayer": "trivec.training.retromae.modeling",
        "RetroMAEModel": "trivec.training.retromae.modeling",
        "RetroMAEOutput": "trivec.training.retromae.modeling",
        "build_trainer": "trivec.training.retromae.train",
        "load_masked_lm": "trivec.training.retromae.train",
        "train_retromae": "trivec.training.retromae.train",
        "RetroMAETrainer": "trivec.training.retromae.trainer",
    },
)

__all__ = [
    "CSVLogCallback",
    "EnhancedDecoderLayer",
    "RetroMAEArguments",
    "RetroMAECollator",
    "RetroMAEModel",
    "RetroMAEOutput",
    "RetroMAETrainer",
    "TextCorpus",
    "build_arguments",
    "build_trainer",
    "corrupt_for_mlm",
    "load_masked_lm",
    "read_corpus_texts",
    "train_retromae",
    "whole_word_mask",
    "word_ids_from_tokens",
]
