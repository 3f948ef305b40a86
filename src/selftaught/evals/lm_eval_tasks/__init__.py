"""Task configs for EleutherAI's lm-evaluation-harness that measure what `selftaught eval` measures.

`lm_eval run --model hf --model_args pretrained=<dir> --include_path <this directory> --tasks
selftaught_gsm8k --metadata data_files=<gsm8k.jsonl>` (or `selftaught_world`, the tiny world's
arithmetic split, with `--apply_chat_template`); `tasks.py` holds the functions the YAML files name.
"""

from pathlib import Path

TASKS_DIR = Path(__file__).resolve().parent
"""The directory to pass to lm-eval's `--include_path`."""
