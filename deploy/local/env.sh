# Sourced by the local scripts: never ask a model hub for anything (a missing path would retry for ~48 s).
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
export TOKENIZERS_PARALLELISM=false
