"""The loss variants a config names (`selftaught.losses.dpo` and `selftaught.losses.grpo` implement them)."""

from __future__ import annotations

from selftaught.types import StrEnum


class DPOLossType(StrEnum):
    """Which preference loss `dpo_loss` computes. `z_c`, `z_r` are the chosen / rejected log-ratios
    `log pi(y|x) - log pi_ref(y|x)`, summed over tokens; `n_c`, `n_r` the response lengths."""

    SIGMOID = "sigmoid"
    """`-log sigmoid(beta * (z_c - z_r))`: DPO (Rafailov et al. 2023, Eq. 7), the papers' default."""
    LENGTH_NORMALIZED = "length_normalized"
    """`-log sigmoid(beta * (z_c / n_c - z_r / n_r))`: per-token log-ratios, still against the
    reference (LN-DPO; SimPO's length normalisation without dropping the reference). TRL
    `loss_type="sigmoid_norm"`."""
    IPO = "ipo"
    """`(z_c / n_c - z_r / n_r - 1 / (2 beta))^2`: IPO (Azar et al. 2023, Eq. 17, beta = tau). The
    paper writes sequence log-ratios; like TRL (confirmed with the IPO authors) we average them per
    token, otherwise the squared target `1 / (2 beta)` would have to scale with response length."""

    @property
    def needs_lengths(self) -> bool:
        """Whether `chosen_lengths` and `rejected_lengths` are required."""
        return self is not DPOLossType.SIGMOID


class NLLNormalization(StrEnum):
    """How the optional NLL term on the chosen response is normalised per pair."""

    SUM = "sum"
    """`-log pi(y_c|x)` summed over tokens (fairseq2 2024 `DpoFinetuneUnit`)."""
    TOKEN_MEAN = "token_mean"
    """`-log pi(y_c|x) / |y_c|` (later fairseq2 versions; RPO, Pang et al. 2024)."""


class AdvantageType(StrEnum):
    """How rewards of a group (the N completions of one prompt) become advantages."""

    GROUP_MEAN = "group_mean"
    """`A_i = r_i - mean_j r_j`: the online-RL paper's default (Dr. GRPO argues against the std)."""
    GROUP_MEAN_STD = "group_mean_std"
    """`A_i = (r_i - mean_j r_j) / (std_j r_j + eps)`: DeepSeekMath GRPO (§4.1.2)."""


class LossNormalization(StrEnum):
    """What the summed per-token loss is divided by. `l_it` is the loss of token t of sequence i,
    `m_it` the loss mask, `|y_i| = sum_t m_it`."""

    TOKEN = "token"
    """`sum_it m_it l_it / num_tokens` (default: the batch's trained tokens). DAPO; TRL "dapo"
    (and "bnpo" within one micro-batch); with `num_tokens = B * max_len` it is TRL "dr_grpo"."""
    SEQUENCE = "sequence"
    """`sum_i (sum_t m_it l_it / |y_i|) / num_sequences` (default B). Original GRPO; TRL "grpo"."""
    NONE = "none"
    """`sum_it m_it l_it / num_sequences` (default B): no length normalisation, the online-RL paper.
    fairseq2 averages over each group and sums over prompts, i.e. `num_sequences` = group size."""
