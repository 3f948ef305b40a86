"""Accuracy of an engine on verifiable prompts (layer L3): the tiny world and GSM8K-format files."""

from selftaught.evals.accuracy import EvalResult, evaluate_accuracy

__all__ = ["EvalResult", "evaluate_accuracy"]
