"""Decoding search of the AR speech-LLM (:class:`~elfs2t.baselines.ar.ArSpeechLM`): a :class:`Stepper` that runs the
LM over a growing sequence (with the KV cache, or recomputing it all for checking), greedy search and beam search.

Both return per row its hypotheses ``(score, ids, ended)`` best first, ``score = log p / len ** length_penalty``
with len counting EOS (greedy search: one per row).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["positions", "Stepper", "greedy_search", "beam_search"]


def positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that count real tokens only: ``cumsum(mask) - 1`` (0 at leading padding)."""
    return (mask.long().cumsum(-1) - 1).clamp(min=0)


class Stepper:
    """Runs the LM over a growing sequence, with the KV cache or recomputing it all each step."""

    def __init__(self, lm: nn.Module, embed: nn.Module, embeds: torch.Tensor, mask: torch.Tensor, use_cache: bool,
                 suppress: list[int]):
        self.lm, self.embed, self.use_cache, self.suppress = lm, embed, use_cache, suppress
        self.embeds, self.mask = embeds, mask  # (R, S, H), (R, S)
        self.pos = positions(mask)  # (R, S)
        self.next_pos = mask.long().sum(-1)  # (R,)
        out = lm(inputs_embeds=embeds, attention_mask=mask.long(), position_ids=self.pos, use_cache=use_cache, logits_to_keep=1)
        self.past = out.past_key_values if use_cache else None
        self.logprobs = self._logprobs(out.logits[:, -1])  # (R, V)

    def _logprobs(self, logits: torch.Tensor) -> torch.Tensor:
        logits = logits.float()
        logits[:, self.suppress] = float("-inf")  # never emit BOS / pad / other specials (EOS allowed)
        return F.log_softmax(logits, dim=-1)

    def select(self, rows: torch.Tensor) -> None:
        """Keep / repeat / reorder rows (beam search)."""
        self.mask, self.next_pos, self.logprobs = self.mask[rows], self.next_pos[rows], self.logprobs[rows]
        if self.use_cache:
            self.past.reorder_cache(rows)
        else:
            self.embeds, self.pos = self.embeds[rows], self.pos[rows]

    def append(self, tokens: torch.Tensor) -> None:
        """Feed one token per row ``(R,)``; updates ``logprobs`` for the next one."""
        new = self.embed(tokens)[:, None, :]  # (R, 1, H)
        self.mask = torch.cat([self.mask, torch.ones_like(self.mask[:, :1])], dim=1)
        new_pos = self.next_pos[:, None]
        self.next_pos = self.next_pos + 1
        if self.use_cache:
            out = self.lm(inputs_embeds=new, attention_mask=self.mask.long(), position_ids=new_pos,
                          past_key_values=self.past, use_cache=True)
            self.past = out.past_key_values
        else:
            self.embeds = torch.cat([self.embeds, new], dim=1)
            self.pos = torch.cat([self.pos, new_pos], dim=1)
            out = self.lm(inputs_embeds=self.embeds, attention_mask=self.mask.long(), position_ids=self.pos,
                          use_cache=False, logits_to_keep=1)
        self.logprobs = self._logprobs(out.logits[:, -1])


def greedy_search(stepper: Stepper, max_new: int, eos: int,
                  length_penalty: float = 1.0) -> list[list[tuple[float, list[int], bool]]]:
    """The most probable token at each step until EOS or ``max_new`` tokens; per row one hypothesis
    ``(log p / len ** length_penalty, ids without EOS, ended)``, len counting EOS."""
    rows = stepper.logprobs.shape[0]
    seqs: list[list[int]] = [[] for _ in range(rows)]
    logp = [0.0] * rows
    done = torch.zeros(rows, dtype=torch.bool, device=stepper.logprobs.device)
    for step in range(max_new):
        tok = stepper.logprobs.argmax(-1)
        tok = torch.where(done, torch.full_like(tok, eos), tok)
        for r in (~done).nonzero().flatten().tolist():
            logp[r] += float(stepper.logprobs[r, tok[r]])
            if int(tok[r]) != eos:
                seqs[r].append(int(tok[r]))
        done |= tok == eos
        if bool(done.all()) or step == max_new - 1:
            break
        stepper.append(tok)
    ended = done.tolist()
    return [[(logp[r] / max(len(seqs[r]) + int(ended[r]), 1) ** length_penalty, seqs[r], bool(ended[r]))]
            for r in range(rows)]


def beam_search(stepper: Stepper, max_new: int, k: int, eos: int,
                length_penalty: float = 1.0) -> list[list[tuple[float, list[int], bool]]]:
    """Beam search of width ``k``: a row stops once ``k`` hypotheses have ended (HF's ``early_stopping=True``);
    per row its hypotheses ``(score, ids, ended)`` best first, the score ``log p / len ** length_penalty`` (len
    counts EOS); a row that runs out of steps ranks its unfinished beams too (``ended`` False)."""
    b, vocab = stepper.logprobs.shape
    dev = stepper.logprobs.device
    stepper.select(torch.arange(b, device=dev).repeat_interleave(k))  # (B K) rows, beam-major per row
    scores = torch.full((b, k), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # the k copies are identical: start from one
    beams: list[list[int]] = [[] for _ in range(b * k)]
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(b)]
    done = [False] * b
    for step in range(max_new):
        cand = (scores[:, :, None] + stepper.logprobs.view(b, k, vocab)).view(b, k * vocab)
        top_s, top_i = cand.topk(2 * k, dim=-1)
        src, toks, new_scores, new_beams = [], [], [], []
        for row in range(b):
            live: list[tuple[float, int, int]] = []
            if not done[row]:
                for rank, (s, i) in enumerate(zip(top_s[row].tolist(), top_i[row].tolist())):
                    beam, tok = divmod(i, vocab)
                    if tok == eos:
                        if rank < k and s > float("-inf"):
                            seq = beams[row * k + beam]
                            finished[row].append((s / (len(seq) + 1) ** length_penalty, seq, True))
                    elif s > float("-inf"):
                        live.append((s, beam, tok))
                    if len(live) == k:
                        break
                done[row] = len(finished[row]) >= k
            if done[row] or not live:
                done[row] = True
                live = [(float("-inf"), 0, eos)] * k  # finished rows: keep feeding EOS
            live += [(float("-inf"), live[0][1], live[0][2])] * (k - len(live))
            for s, beam, tok in live:
                src.append(row * k + beam)
                toks.append(tok)
                new_scores.append(s)
                new_beams.append(beams[row * k + beam] + [tok])
        if all(done):
            break
        scores = torch.tensor(new_scores, device=dev).view(b, k)
        beams = new_beams
        if step == max_new - 1:
            break
        stepper.select(torch.tensor(src, device=dev))
        stepper.append(torch.tensor(toks, device=dev))
    out = []
    for row in range(b):
        hyps = list(finished[row])
        if not done[row] or not hyps:  # ran out of steps: unfinished beams compete too
            for j in range(k):
                s = float(scores[row, j])
                if s > float("-inf"):
                    seq = beams[row * k + j]
                    hyps.append((s / max(len(seq), 1) ** length_penalty, seq, False))
        # best first; a stable sort keeps the first of equals first (what max() picked before)
        out.append(sorted(hyps, key=lambda h: h[0], reverse=True) if hyps else [(float("-inf"), [], False)])
    return out
