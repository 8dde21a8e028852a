"""Training: contrastive fine-tuning (BGE stages 2/3, M3 unified losses), hard-negative mining, pair building.

RetroMAE pre-training lives in `trivec.training.retromae`. Heavy modules are imported lazily by the CLI.
"""
