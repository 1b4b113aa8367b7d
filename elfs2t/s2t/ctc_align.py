"""CTC forced alignment (Viterbi) of known targets, and the text-slot positions it gives.

ELF-S2T's text slots find their words in the audio through attention; by default slot ``i`` sits at RoPE
position ``round(i * text_pos_scale)`` on the audio's axis, a prior that is off by the utterance's own
timing. With ``elf.text_positions: ctc`` each content slot sits instead at the audio slot where the CTC
places its token: the forced alignment of the true text in training (:func:`ctc_align`), the greedy
draft's first frame of each token in decoding. The slot and its word's audio then share a position, so
RoPE attention finds the word at relative distance 0.

Alignment: the best CTC path over the extended label sequence ``blank y1 blank y2 ... yn blank``
(the standard transitions: stay, advance one, or skip a blank between two different labels), computed for
a batch at once; each token's frame is the first frame its label state is on the path.
"""
from __future__ import annotations

import torch

__all__ = ["ctc_align", "ctc_align_spans", "ctc_align_confident", "slot_positions"]


@torch.no_grad()
def ctc_align(log_probs: torch.Tensor, in_lens: torch.Tensor, targets: list[list[int]], blank: int) -> list[list[int]]:
    """First frame of each target token on the Viterbi CTC path.

    ``log_probs (B, T, V)`` frame log-posteriors, ``in_lens (B,)`` valid frames, ``targets`` per row (indices
    into V, no blank). Returns per row the frame of each token; a row whose targets do not fit its frames
    (``T < n + repeats``) or that has no target gets ``[]``.
    """
    return [[first for first, _ in row] for row in ctc_align_spans(log_probs, in_lens, targets, blank)]


@torch.no_grad()
def ctc_align_spans(log_probs: torch.Tensor, in_lens: torch.Tensor, targets: list[list[int]],
                    blank: int) -> list[list[tuple[int, int]]]:
    """First and last frame of each target token on the Viterbi CTC path (as :func:`ctc_align`; word
    timestamps read the spans)."""
    B, T, V = log_probs.shape
    lp = log_probs.float().cpu()
    S = max((len(t) for t in targets), default=0)
    if S == 0 or T == 0:
        return [[] for _ in range(B)]
    N = 2 * S + 1
    ext = torch.full((B, N), blank, dtype=torch.long)
    tl = torch.tensor([len(t) for t in targets], dtype=torch.long)
    for b, t in enumerate(targets):
        if t:
            ext[b, 1:2 * len(t):2] = torch.tensor(t, dtype=torch.long)
    em = lp.gather(2, ext[:, None, :].expand(B, T, N))  # (B, T, N)
    n = torch.arange(N)
    valid = n[None, :] < (2 * tl + 1)[:, None]  # (B, N)
    skip = torch.zeros(B, N, dtype=torch.bool)
    skip[:, 2:] = (n[2:] % 2 == 1)[None, :] & (ext[:, 2:] != ext[:, :-2])
    neg = torch.tensor(float("-inf"))
    dp = torch.full((B, N), float("-inf"))
    dp[:, 0] = em[:, 0, 0]
    dp[:, 1] = em[:, 0, 1]
    dp = torch.where(valid, dp, neg)
    back = torch.zeros(T, B, N, dtype=torch.long)
    lens = in_lens.cpu().long()
    for t in range(1, T):
        prev1 = torch.cat([dp.new_full((B, 1), float("-inf")), dp[:, :-1]], dim=1)
        prev2 = torch.cat([dp.new_full((B, 2), float("-inf")), dp[:, :-2]], dim=1)
        prev2 = torch.where(skip, prev2, neg)
        best, arg = torch.stack([dp, prev1, prev2], dim=-1).max(dim=-1)
        new = torch.where(valid, best + em[:, t], neg)
        active = (t < lens)[:, None]
        dp = torch.where(active, new, dp)
        back[t] = torch.where(active, arg, torch.zeros_like(arg))
    out: list[list[int]] = []
    for b in range(B):
        k, T_b = int(tl[b]), int(lens[b])
        if k == 0 or T_b == 0:
            out.append([])
            continue
        ends = [2 * k, 2 * k - 1]
        state = max(ends, key=lambda s: float(dp[b, s]))
        if not torch.isfinite(dp[b, state]):
            out.append([])  # the targets do not fit the frames
            continue
        first, last = [0] * k, [-1] * k
        for t in range(T_b - 1, -1, -1):
            if state % 2 == 1:
                first[state // 2] = t  # walking back: the last write is the first frame
                if last[state // 2] < 0:
                    last[state // 2] = t  # ... and the first write the last frame
            state -= int(back[t, b, state])
        out.append(list(zip(first, last)))
    return out


def ctc_align_confident(log_probs: torch.Tensor, in_lens: torch.Tensor, targets: list[list[int]],
                        blank: int) -> list[list[tuple[int, int, float]]]:
    """Per row, per target token, ``(first frame, last frame, highest posterior over them)`` on the Viterbi CTC
    path (:func:`ctc_align_spans`; ``[]`` for a row whose targets do not fit or that has none)."""
    spans = ctc_align_spans(log_probs, in_lens, targets, blank)
    post = log_probs.detach().float().exp().cpu()  # (B, T, V)
    return [[(f, last, float(post[b, f:last + 1, k].max())) for k, (f, last) in zip(row, sp)]
            for b, (row, sp) in enumerate(zip(targets, spans))]


def slot_positions(frames: list[list[int]], length: int, scale: float, offset: int, shift: int) -> torch.Tensor:
    """RoPE positions ``(B, length)`` of the text slots from per-row token frames.

    Content slot ``offset + j`` (after a BOS when ``offset`` is 1) sits at ``frames[b][j] + shift`` (``shift``:
    condition slots before the audio, e.g. a task token); a BOS at 0; the slots after the content continue
    from the last token every ``scale`` positions. A row without frames keeps ``round(i * scale)``.
    """
    B = len(frames)
    base = (torch.arange(length, dtype=torch.float32) * scale).round().long()
    pos = base[None, :].repeat(B, 1)
    for b, f in enumerate(frames):
        f = f[: length - offset - 1]
        if not f:
            continue
        n = len(f)
        pos[b, offset:offset + n] = torch.tensor(f, dtype=torch.long) + shift
        tail = torch.arange(1, length - offset - n + 1, dtype=torch.float32)
        pos[b, offset + n:] = pos[b, offset + n - 1] + (tail * scale).round().long()
        if offset:
            pos[b, :offset] = 0
    return pos
