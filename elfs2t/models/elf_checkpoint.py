"""Load released ELF PyTorch checkpoints into :class:`~elfs2t.models.denoiser.ElfDenoiser`.

The released checkpoints (``embedded-language-flows/ELF-B-owt-torch``, ``ELF-B-de-en-torch``, ...) are one
``torch.save`` file ``checkpoint_<step>`` holding a dict with the raw parameters under ``params`` and the
EMA copies under ``ema_params1`` (evaluation uses ``ema_params1``). Our denoiser registers its parameters
under the same names and in the same order as the released ``ELF`` module, so :data:`KEY_TABLE` maps
every released key to ours one-to-one (``{i}`` is the block index). No tensor is transposed: both sides
are PyTorch layouts (``Linear.weight`` is ``(out, in)``; ``proj_kernel`` is ``(H, d)``,
``unembed_kernel`` is ``(d, V)``).

Accepted containers for the selected entry: a flat ``{name: tensor}`` dict (prefixes ``module.`` and
``_orig_mod.`` are stripped), a nested dict (flattened with ``.``), or a list of tensors in the released
``named_parameters()`` order (the order :data:`KEY_TABLE` expands to). ``load_elf_checkpoint(..., strict=True)``
raises :class:`ElfCheckpointError` listing every missing key, unexpected key and shape mismatch.
"""
from __future__ import annotations

import logging
import pickle
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from elfs2t.errors import InputError
from elfs2t.models.denoiser import DenoiserConfig, ElfDenoiser

__all__ = [
    "KEY_TABLE",
    "ElfCheckpointError",
    "released_key_names",
    "find_checkpoint_file",
    "read_elf_state_dict",
    "map_released_keys",
    "infer_denoiser_config",
    "load_elf_checkpoint",
    "denoiser_from_elf_checkpoint",
]

log = logging.getLogger(__name__)

#: released ELF key -> our parameter name, in the released ``named_parameters()`` order
#: (a module's own parameters first, then its submodules in registration order).
KEY_TABLE: tuple[tuple[str, str], ...] = (
    ("t_emb_tokens", "t_emb_tokens"),  # (1, 4, H) learned time tokens
    ("self_cond_cfg_tokens", "self_cond_cfg_tokens"),  # (1, 4, H) guidance tokens
    ("mode_tokens", "mode_tokens"),  # (1, 4, H) mode tokens
    ("proj_kernel", "proj_kernel"),  # (H, d) token head P
    ("proj_bias", "proj_bias"),  # (d,) token head p
    ("unembed_kernel", "unembed_kernel"),  # (d, V) token head U
    ("unembed_bias", "unembed_bias"),  # (V,) token head u
    ("self_cond_proj.weight", "self_cond_proj.weight"),  # (d, 2d) [z | c] -> d
    ("self_cond_proj.bias", "self_cond_proj.bias"),
    ("text_proj.proj1.weight", "text_proj.proj1.weight"),  # (128, d) bottleneck, no bias
    ("text_proj.proj2.weight", "text_proj.proj2.weight"),  # (H, 128)
    ("text_proj.proj2.bias", "text_proj.proj2.bias"),
    ("t_embedder.mlp.0.weight", "t_embedder.mlp.0.weight"),  # (H, 256) sinusoid -> H
    ("t_embedder.mlp.0.bias", "t_embedder.mlp.0.bias"),
    ("t_embedder.mlp.2.weight", "t_embedder.mlp.2.weight"),  # (H, H)
    ("t_embedder.mlp.2.bias", "t_embedder.mlp.2.bias"),
    ("self_cond_cfg_embedder.mlp.0.weight", "self_cond_cfg_embedder.mlp.0.weight"),
    ("self_cond_cfg_embedder.mlp.0.bias", "self_cond_cfg_embedder.mlp.0.bias"),
    ("self_cond_cfg_embedder.mlp.2.weight", "self_cond_cfg_embedder.mlp.2.weight"),
    ("self_cond_cfg_embedder.mlp.2.bias", "self_cond_cfg_embedder.mlp.2.bias"),
    ("blocks.{i}.norm1.weight", "blocks.{i}.norm1.weight"),  # (H,)
    ("blocks.{i}.attn.qkv.weight", "blocks.{i}.attn.qkv.weight"),  # (3H, H) fused q|k|v
    ("blocks.{i}.attn.qkv.bias", "blocks.{i}.attn.qkv.bias"),
    ("blocks.{i}.attn.q_norm.weight", "blocks.{i}.attn.q_norm.weight"),  # (H/heads,)
    ("blocks.{i}.attn.k_norm.weight", "blocks.{i}.attn.k_norm.weight"),
    ("blocks.{i}.attn.proj.weight", "blocks.{i}.attn.proj.weight"),  # (H, H)
    ("blocks.{i}.attn.proj.bias", "blocks.{i}.attn.proj.bias"),
    ("blocks.{i}.norm2.weight", "blocks.{i}.norm2.weight"),
    ("blocks.{i}.mlp.w12.weight", "blocks.{i}.mlp.w12.weight"),  # (2 F, H) fused SwiGLU, F = int(8H/3)
    ("blocks.{i}.mlp.w12.bias", "blocks.{i}.mlp.w12.bias"),
    ("blocks.{i}.mlp.w3.weight", "blocks.{i}.mlp.w3.weight"),  # (H, F)
    ("blocks.{i}.mlp.w3.bias", "blocks.{i}.mlp.w3.bias"),
    ("final_layer.norm_final.weight", "final_layer.norm_final.weight"),  # flow head RMSNorm
    ("final_layer.linear.weight", "final_layer.linear.weight"),  # (d, H)
    ("final_layer.linear.bias", "final_layer.linear.bias"),
)

_CKPT_RE = re.compile(r"^checkpoint_(\d+)$")
_PREFIXES = ("module.", "_orig_mod.")


class ElfCheckpointError(InputError):
    """A checkpoint cannot be read or does not fit the denoiser; the message names file and keys."""


def released_key_names(depth: int) -> list[tuple[str, str]]:
    """:data:`KEY_TABLE` expanded for ``depth`` blocks, in the released parameter order."""
    out: list[tuple[str, str]] = []
    block_rows = [row for row in KEY_TABLE if "{i}" in row[0]]
    for released, ours in KEY_TABLE:
        if "{i}" in released:
            continue
        if released == "final_layer.norm_final.weight":  # blocks come before final_layer
            for i in range(depth):
                out.extend((r.format(i=i), o.format(i=i)) for r, o in block_rows)
        out.append((released, ours))
    return out


def find_checkpoint_file(path_or_hub_id: str | Path) -> Path:
    """A file as is; a directory -> its ``checkpoint_<step>`` with the highest step; otherwise a hub id
    fetched with ``huggingface_hub.snapshot_download`` and searched the same way."""
    path = Path(path_or_hub_id)
    if path.is_file():
        return path
    if not path.exists():
        text = str(path_or_hub_id)
        if text.count("/") != 1 or text.startswith((".", "/")):
            raise FileNotFoundError(f"ELF checkpoint {text!r}: no such file or directory (nor a hub id owner/name)")
        from huggingface_hub import snapshot_download

        log.info("fetching ELF checkpoint %s from the hub", text)
        try:
            path = Path(snapshot_download(repo_id=text))
        except Exception as exc:  # noqa: BLE001 - offline, unknown repo, auth
            raise FileNotFoundError(
                f"ELF checkpoint {text!r}: not a local path, and fetching it as a hub id failed: {exc}"
            ) from exc
    steps = [(int(m.group(1)), p) for p in path.iterdir() if (m := _CKPT_RE.match(p.name)) and p.is_file()]
    if not steps:
        raise FileNotFoundError(f"{path}: no checkpoint_<step> file in this directory")
    return max(steps)[1]


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _strip(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if name.startswith(p):
                name, changed = name[len(p):], True
    return name


def read_elf_state_dict(path_or_hub_id: str | Path, which: str = "ema_params1") -> tuple[dict[str, torch.Tensor], Path]:
    """Read entry ``which`` of a released checkpoint -> (``{released name: tensor}``, file).

    A list entry is named through :func:`released_key_names` (its length fixes the depth).
    """
    file = find_checkpoint_file(path_or_hub_id)
    try:
        try:
            ckpt = torch.load(file, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "weights only" not in str(exc).lower():
                raise
            log.warning("%s holds non-tensor objects; loading it with full unpickling (trusted source only)", file)
            ckpt = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - corrupt file, wrong format
        raise ElfCheckpointError(f"{file}: cannot read as a torch checkpoint: {exc}") from exc
    if not isinstance(ckpt, Mapping):
        raise ElfCheckpointError(f"{file}: expected a dict with {which!r}, got {type(ckpt).__name__}")
    if which not in ckpt:
        raise ElfCheckpointError(f"{file}: no entry {which!r}; entries: {sorted(map(str, ckpt))}")
    entry = ckpt[which]
    if isinstance(entry, (list, tuple)):
        n_fixed = sum("{i}" not in r for r, _ in KEY_TABLE)
        n_block = len(KEY_TABLE) - n_fixed
        depth, rest = divmod(len(entry) - n_fixed, n_block)
        if rest or depth < 0:
            raise ElfCheckpointError(f"{file}: {which!r} is a list of {len(entry)} tensors, which matches no ELF depth")
        names = [r for r, _ in released_key_names(depth)]
        state = dict(zip(names, entry))
    elif isinstance(entry, Mapping):
        state = {_strip(k): v for k, v in _flatten(entry).items()}
    else:
        raise ElfCheckpointError(f"{file}: {which!r} is a {type(entry).__name__}, expected a dict or a list")
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ElfCheckpointError(f"{file}: {which!r} has non-tensor values for keys {bad[:10]}")
    return state, file


def map_released_keys(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Released names -> our names through :data:`KEY_TABLE`; names not in the table are kept as they are
    (they surface as unexpected keys when loading)."""
    patterns = [(re.compile("^" + re.escape(r).replace(r"\{i\}", r"(\d+)") + "$"), o) for r, o in KEY_TABLE]
    out: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        for regex, ours in patterns:
            m = regex.match(name)
            if m:
                out[ours.format(i=m.group(1)) if m.groups() else ours] = tensor
                break
        else:
            out[name] = tensor
    return out


def infer_denoiser_config(state: Mapping[str, torch.Tensor]) -> DenoiserConfig:
    """Architecture from tensor shapes (released or our names)."""
    s = map_released_keys(state)
    need = ["text_proj.proj1.weight", "text_proj.proj2.weight", "unembed_kernel", "t_emb_tokens",
            "t_embedder.mlp.0.weight", "blocks.0.attn.q_norm.weight", "blocks.0.mlp.w3.weight"]
    missing = [k for k in need if k not in s]
    if missing:
        raise ElfCheckpointError(f"cannot infer the denoiser size: missing keys {missing}")
    hidden = int(s["text_proj.proj2.weight"].shape[0])
    depth = 1 + max(int(m.group(1)) for k in s if (m := re.match(r"^blocks\.(\d+)\.", k)))
    ffn = int(s["blocks.0.mlp.w3.weight"].shape[1])

    def tokens(name: str) -> int:
        return int(s[name].shape[1]) if name in s else 0

    return DenoiserConfig(
        latent_dim=int(s["text_proj.proj1.weight"].shape[1]),
        vocab_size=int(s["unembed_kernel"].shape[1]),
        hidden=hidden,
        depth=depth,
        heads=hidden // int(s["blocks.0.attn.q_norm.weight"].shape[0]),
        bottleneck=int(s["text_proj.proj1.weight"].shape[0]),
        num_time_tokens=tokens("t_emb_tokens"),
        num_guidance_tokens=tokens("self_cond_cfg_tokens"),
        num_mode_tokens=tokens("mode_tokens"),
        freq_dim=int(s["t_embedder.mlp.0.weight"].shape[1]),
        ffn_inner=None if ffn == 8 * hidden // 3 else ffn,
    )


def load_elf_checkpoint(
    denoiser: ElfDenoiser, path_or_hub_id: str | Path, which: str = "ema_params1", strict: bool = True
) -> dict[str, Any]:
    """Copy a released ELF checkpoint's ``which`` parameters into ``denoiser`` (cast to its dtype/device).

    strict: any missing key, unexpected key or shape mismatch raises :class:`ElfCheckpointError` listing
    all of them. Not strict: matching tensors are copied, the rest is logged. Returns a report
    ``{"file", "which", "loaded", "missing", "unexpected", "mismatched"}``.
    """
    released, file = read_elf_state_dict(path_or_hub_id, which)
    return _load_state(denoiser, released, file, which, strict)


def _load_state(
    denoiser: ElfDenoiser, released: Mapping[str, torch.Tensor], file: Path, which: str, strict: bool
) -> dict[str, Any]:
    state = map_released_keys(released)
    params = {n: p for n, p in denoiser.named_parameters() if p.numel() > 0}  # 0 tokens: no key released
    missing = sorted(set(params) - set(state))
    unexpected = sorted(set(state) - set(params))
    mismatched = sorted(
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(params[k].shape)}"
        for k in set(params) & set(state) if tuple(state[k].shape) != tuple(params[k].shape)
    )
    problems = [f"missing keys: {missing}"] * bool(missing) + [f"unexpected keys: {unexpected}"] * bool(unexpected)
    problems += [f"shape mismatches: {mismatched}"] * bool(mismatched)
    if problems and strict:
        raise ElfCheckpointError(f"{file} [{which}] does not fit the denoiser: " + "; ".join(problems))
    for p in problems:
        log.warning("%s [%s]: %s", file, which, p)
    bad = {m.split(":")[0] for m in mismatched}
    loaded = 0
    with torch.no_grad():
        for name, param in params.items():
            if name in state and name not in bad:
                param.copy_(state[name].to(device=param.device, dtype=param.dtype))
                loaded += 1
    log.info("loaded %d tensors from %s [%s]", loaded, file, which)
    return {"file": str(file), "which": which, "loaded": loaded, "missing": missing,
            "unexpected": unexpected, "mismatched": mismatched}


def denoiser_from_elf_checkpoint(path_or_hub_id: str | Path, which: str = "ema_params1") -> ElfDenoiser:
    """Build a denoiser of the checkpoint's size (:func:`infer_denoiser_config`) and load it strictly."""
    released, file = read_elf_state_dict(path_or_hub_id, which)
    model = ElfDenoiser(infer_denoiser_config(released))
    _load_state(model, released, file, which, strict=True)
    return model
