"""Flow probe: what a trained ELF-S2T's flow head predicts against the true text latents, at fixed flow times.

For every utterance of a set, the true text ``ids`` are encoded to their latents ``x`` (the flow's target), the
audio is encoded once and the greedy CTC draft read; only the rows whose draft equals the truth are kept (their
text slots then sit at the true tokens' aligned positions, as in training). For each flow time ``t`` (fixed, and
drawn per row from the training distribution ``sigmoid(N(t_mean, t_std^2))``) the denoiser sees
``z_t = t x + (1 - t) sigma_n eps`` in denoising mode (no self-conditioning: the sampler's first step; guidance 1)
and is measured by

* the x_hat MSE per channel against ``x``, on content positions and on all positions (EOS tail and padding too);
* at the training times, the velocity MSE ``|x_hat - x|^2 / max(1 - t, t_clamp)^2`` (the training log's
  ``flow_mse``, up to its self-conditioned and condition-dropped rows);
* the token head's accuracy on the denoising-mode hidden states (content positions).

Reference lines, on the same positions: the variance of ``x`` per channel (a constant prediction), the
*token-mean oracle* (each position predicted by the mean latent of its token over the probed set: the best a
context-free look-up of the right token can do), and a ridge-regression linear read-out of
``final_layer.norm_final(hidden)`` at the training times (fit on 80% of the positions, MSE on the other 20%, next
to the trained head's MSE there): whether the flow head is at the linear optimum of what the trunk gives it.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Optional

import torch
from lhotse import CutSet
from lhotse.dataset import SimpleCutSampler
from tqdm import tqdm

from elfs2t.data.dataset import S2TDataset
from elfs2t.errors import ConfigError
from elfs2t.experiment import ExperimentConfig, model_kind
from elfs2t.flow.objective import noisy_latent
from elfs2t.flow.slots import slot_kwargs
from elfs2t.flow.time import sample_logit_normal

__all__ = ["DEFAULT_TIMES", "ProbeResult", "check_probe_model", "draft_matches", "token_mean_oracle_mse",
           "channel_variance", "linear_probe_mse", "run_probe", "format_table"]

DEFAULT_TIMES = (0.02, 0.1, 0.2, 0.4, 0.6, 0.8)
TRAIN_T = "train"  # the label of the times drawn from the training distribution


@dataclass
class ProbeResult:
    """The probe's numbers (MSEs are per channel); ``times`` maps a time label to its measurements."""

    title: str
    rows_kept: int
    rows_total: int
    positions: dict[str, int]  # content / all
    variance: dict[str, float]
    oracle: dict[str, float]
    linear: dict[str, float]  # probe / head (MSE on the held-out 20%), positions
    times: dict[str, dict[str, float]]  # time label -> MSEs (velocity MSEs at the training times), token accuracy
    notes: list[str]


def check_probe_model(cfg: ExperimentConfig, name: str) -> None:
    """Refuse (ConfigError, a ValueError: one line naming the experiment) a model the probe cannot measure."""
    if not hasattr(model_kind(cfg).section(cfg), "flow"):  # the kind's settings have no flow: not a flow model
        raise ConfigError(f"{name}: the flow probe needs an ELF-S2T experiment, not model {cfg.model!r}")
    if cfg.elf.ctc_weight <= 0:
        raise ConfigError(f"{name}: the flow probe needs a CTC draft (elf.ctc_weight > 0), got {cfg.elf.ctc_weight}")
    if cfg.elf.text_positions != "ctc":
        raise ConfigError(f"{name}: the flow probe needs elf.text_positions: ctc, got {cfg.elf.text_positions!r}")


def draft_matches(draft_ids: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """``(B,)`` bool: the rows whose draft ids ``(B, L)`` equal the true ids ``(B, L)`` everywhere."""
    if draft_ids.shape != ids.shape:
        raise ValueError(f"draft ids {tuple(draft_ids.shape)} and true ids {tuple(ids.shape)} differ in shape")
    return (draft_ids.to(ids.device) == ids).all(dim=1)


def channel_variance(x: torch.Tensor) -> float:
    """Mean over channels of the (population) variance of the rows of ``x (N, d)``: a constant guess's MSE."""
    return float(x.double().var(dim=0, unbiased=False).mean())


def token_mean_oracle_mse(ids: torch.Tensor, x: torch.Tensor, mask: torch.Tensor) -> float:
    """MSE per channel of predicting each masked position of ``x (B, L, d)`` by the mean latent of its id
    (``ids (B, L)``) over the masked positions."""
    flat_ids, flat_x = ids[mask], x[mask].double()
    _, inv = flat_ids.unique(return_inverse=True)
    sums = torch.zeros(int(inv.max()) + 1, flat_x.shape[1], dtype=flat_x.dtype).index_add_(0, inv, flat_x)
    counts = torch.bincount(inv).to(flat_x.dtype)[:, None]
    return float(((sums / counts)[inv] - flat_x).pow(2).mean())


def linear_probe_mse(features: torch.Tensor, target: torch.Tensor, generator: torch.Generator, *,
                     ridge: float = 1e-3, train_frac: float = 0.8) -> tuple[float, torch.Tensor]:
    """Ridge least squares ``[features, 1] W -> target`` (``(N, F)``, ``(N, d)``) fit on a random ``train_frac`` of
    the rows; its MSE per channel on the others, and their indices (to score another predictor there)."""
    n = features.shape[0]
    if n < 2:
        raise ValueError(f"linear probe: needs at least 2 positions, got {n}")
    perm = torch.randperm(n, generator=generator)
    train, test = perm.tensor_split([min(max(int(n * train_frac), 1), n - 1)])
    feats = torch.cat([features.double(), torch.ones(n, 1, dtype=torch.float64)], dim=1)
    a = feats[train]
    w = torch.linalg.solve(a.T @ a + ridge * torch.eye(a.shape[1], dtype=a.dtype), a.T @ target[train].double())
    return float((feats[test] @ w - target[test].double()).pow(2).mean()), test


SUMS = ("mse_content", "mse_all", "vel_content", "vel_all", "token_acc")


def _measure(model, x: torch.Tensor, ids: torch.Tensor, content: torch.Tensor, t: torch.Tensor, g: torch.Generator,
             **denoiser_kw) -> tuple[torch.Tensor, object]:
    """One denoising forward at times ``t (B,)``: the sums of :data:`SUMS` and the denoiser's output."""
    eps = torch.randn(x.shape, generator=g).to(x.device, x.dtype)
    out = model.denoiser(noisy_latent(x, t, eps, model.cfg.flow.sigma_n), t, self_cond=None, decode=None,
                         guidance=torch.ones_like(t), **denoiser_kw)
    err = (out.x_hat - x).pow(2).mean(dim=-1)  # (B, L)
    vel = err / (1.0 - t).clamp_min(model.cfg.flow.t_clamp).pow(2)[:, None]
    pred = model.denoiser.token_logits(out.hidden, model.vocab).argmax(dim=-1)
    pred = model.vocab.to(pred.device)[pred] if model.vocab is not None else pred
    sums = [err[content].sum(), err.sum(), vel[content].sum(), vel.sum(), (pred == ids)[content].sum()]
    return torch.stack([v.double().cpu() for v in sums]), out


@torch.no_grad()
def run_probe(model, cfg: ExperimentConfig, cuts: CutSet, *, title: str = "experiment",
              times: tuple[float, ...] = DEFAULT_TIMES, max_utts: Optional[int] = None, max_duration: float = 200.0,
              max_cuts: Optional[int] = None, seed: int = 0, show_progress: bool = True) -> ProbeResult:
    """Probe ``model`` (an ELF-S2T of ``cfg``) on the first ``max_utts`` cuts of ``cuts`` (module docstring)."""
    check_probe_model(cfg, title)
    model.eval()
    device, flow = model._device(), cfg.elf.flow  # _device also moves the frozen text encoder
    cuts = CutSet.from_cuts(itertools.islice(cuts, max_utts) if max_utts else cuts)
    sampler = SimpleCutSampler(cuts.sort_by_duration(ascending=False), max_duration=max_duration, max_cuts=max_cuts,
                               shuffle=False, world_size=1, rank=0)
    dataset = S2TDataset(text_transform=str.lower if model_kind(cfg).lowercase(cfg) else None)
    g = torch.Generator().manual_seed(seed)
    labels = [f"{t:g}" for t in times] + [TRAIN_T]
    sums = {label: torch.zeros(len(SUMS), dtype=torch.float64) for label in labels}
    kept: dict[str, list] = {"ids": [], "x": [], "content": [], "feats": [], "head": []}
    rows_total = 0
    for batch_cuts in tqdm(sampler, desc="flow probe", unit="batch", disable=not show_progress):
        batch = dataset[batch_cuts]
        ids = model.text_space.tokenize(batch["text"]).to(device)  # lower-cased by the dataset, as in training
        rows_total += ids.shape[0]
        cond, cmask = model.condition(batch)
        draft = model.draft(cond, cmask, g)
        rows = draft_matches(draft.ids, ids).nonzero(as_tuple=True)[0]
        if rows.numel() == 0:
            continue
        ids, slots = ids[rows], model.draft_slots(draft).rows(rows)
        x, content = model.text_space.encode(ids).to(device), model.content_mask(ids)
        kw = dict(cond_cache=model.denoiser.cache_condition(cond[rows], cmask[rows]), **slot_kwargs(slots))
        for label, t in zip(labels, [torch.full((len(rows),), float(t)) for t in times] +
                            [sample_logit_normal(len(rows), flow.t_mean, flow.t_std, generator=g)]):
            measured, out = _measure(model, x, ids, content, t.to(device), g, **kw)
            sums[label] += measured
        hidden = out.hidden.reshape(-1, out.hidden.shape[-1])  # the last label's: the training times
        for key, value in (("ids", ids), ("x", x), ("content", content), ("head", out.x_hat),
                           ("feats", model.denoiser.final_layer.norm_final(hidden))):
            kept[key].append(value.cpu())
    if not kept["ids"]:
        raise ConfigError(f"{title}: no utterance of {rows_total} has a CTC draft equal to its text: nothing to probe")
    ids, x, content = (torch.cat(kept[k]) for k in ("ids", "x", "content"))
    n = {"content": int(content.sum()), "all": content.numel()}
    target, head = x.reshape(-1, x.shape[-1]), torch.cat(kept["head"]).reshape(-1, x.shape[-1])
    probe, test = linear_probe_mse(torch.cat(kept["feats"]), target, torch.Generator().manual_seed(seed))
    per = {label: [v.item() / max(n["all" if k.endswith("_all") else "content"], 1) for k, v in zip(SUMS, total)]
           for label, total in sums.items()}
    notes = []
    if flow.self_cond_prob > 0:
        notes.append(f"trained with self-conditioning (self_cond_prob {flow.self_cond_prob:g}); probed without it "
                     "(the sampler's first step)")
    return ProbeResult(title=title, rows_kept=ids.shape[0], rows_total=rows_total, positions=n,
                       variance={"content": channel_variance(x[content]), "all": channel_variance(x.flatten(0, 1))},
                       oracle={"content": token_mean_oracle_mse(ids, x, content),
                               "all": token_mean_oracle_mse(ids, x, torch.ones_like(content))},
                       linear={"probe": probe, "head": float((head[test] - target[test]).double().pow(2).mean()),
                               "positions": float(test.numel())},
                       times={label: {k: v for k, v in zip(SUMS, vals) if label == TRAIN_T or not k.startswith("vel")}
                              for label, vals in per.items()}, notes=notes)


def format_table(res: ProbeResult) -> str:
    """The result as markdown."""
    out = [f"# Flow probe: {res.title}", "", f"{res.rows_kept} of {res.rows_total} utterances kept (CTC draft = "
           f"truth); {res.positions['content']} content positions, {res.positions['all']} in all. MSE per latent "
           "channel.", *(f"{note[0].upper()}{note[1:]}." for note in res.notes)]
    out += ["", "| t | x_hat MSE content | x_hat MSE all | velocity MSE content | velocity MSE all | token acc |",
            "|---|---:|---:|---:|---:|---:|"]
    out += ["| " + " | ".join([label] + [f"{r[k]:.{3 if k == 'token_acc' else 4}f}" if k in r else "" for k in SUMS])
            + " |" for label, r in res.times.items()]
    out += ["", "| reference | content | all |", "|---|---:|---:|",
            f"| variance of x (constant guess) | {res.variance['content']:.4f} | {res.variance['all']:.4f} |",
            f"| token-mean oracle | {res.oracle['content']:.4f} | {res.oracle['all']:.4f} |", "",
            "Linear read-out of norm_final(hidden) at the training times (ridge 1e-3, held-out 20%, "
            f"{int(res.linear['positions'])} positions):", f"MSE {res.linear['probe']:.4f}; "
            f"trained flow head there: {res.linear['head']:.4f}.", ""]
    return "\n".join(out)
