"""Scale benchmark: the data side of a stage-4 run at LibriSpeech-960-h size, in memory and start-up time.

Nothing of the corpus is needed: the benchmark writes, in a temporary folder deleted afterwards, a stage-2
cuts manifest of ``num_cuts`` cuts (281,241: LibriSpeech's 960 h training set) with LibriSpeech-like durations
(three quarters 12-17 s, the rest 1.5-12 s: 12.6 s on average) and transcripts (2.7 words a second), each cut
carrying a recording and cached features of ``feat_dim`` channels (1280: whisper-large-v3). So that the folder
stays small, the features of all cuts point into ``distinct_feats`` stored arrays (one per duration; a cut's
duration is its array's), read through the real storage -- every batch reads full-width frames from disk.

Then, in a fresh process (so that its memory is the run's alone), what ``elfs2t.bin.train`` does before and
while it trains, each phase timed and its memory measured (resident set after it, and its peak):

* ``imports``  torch, Lhotse, the tokenizer: the floor of every process.
* ``manifest`` :func:`~elfs2t.data.dataset.load_sets` + :func:`~elfs2t.data.dataset.filter_cuts` with the
  tokenizer's token counts (the eager, filtered cuts every training process keeps).
* ``sampler``  :func:`~elfs2t.train.data.build_sampler` (duration buckets) and ``sampler_batches`` batches.
* ``loader``   :func:`~elfs2t.train.data.build_dataloader` with :class:`~elfs2t.data.dataset.S2TDataset` and
  ``num_workers`` workers: ``batches`` batches of ``max_duration`` seconds (the workers' memory apart).
* ``latent cache`` :class:`~elfs2t.text.latent.LatentCache` at its default byte budget, offered ``cache_fill``
  times as many distinct L x d rows as fit (``text_len`` x ``latent_dim``; the rows come from
  :class:`SyntheticLatentSpace`, random latents instead of the frozen encoder's: a cache's memory does not
  depend on the values, and encoding 10,000 texts at L 128 would take this machine minutes).

Every number is per training process: under DDP each process holds its own manifest, sampler, loader and
caches. ``budget_gb`` / ``start_budget_s`` are the budget the table is checked against.
"""
from __future__ import annotations

import multiprocessing as mp
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np

from elfs2t.config import config_check

__all__ = ["ScaleBenchConfig", "SyntheticLatentSpace", "make_scale_data", "measure", "run_scale_bench"]

_LETTERS = np.array(list("ETAOINSHRDLUCMFWYPGBVKXJQZ"))
_P = np.array([12.7, 9.1, 8.2, 7.5, 7.0, 6.7, 6.3, 6.1, 6.0, 4.3, 4.0, 2.8, 2.8, 2.4, 2.2, 2.4, 2.0, 1.9, 2.0, 1.5,
               1.0, 0.8, 0.2, 0.2, 0.1, 0.1])


@dataclass(kw_only=True)
class ScaleBenchConfig:
    """Size of the simulated corpus and of the run's batches; the stated budget."""

    num_cuts: int = 281_241
    """Cuts in the training manifest (LibriSpeech train-960: 281,241)."""
    feat_dim: int = 1280
    """Width of the cached encoder frames (whisper-large-v3: 1280)."""
    distinct_feats: int = 256
    """Stored feature arrays the cuts point into (one per duration)."""
    max_duration: float = 800.0
    """Seconds of audio per batch (the paper configs' data.max_duration)."""
    num_buckets: int = 20
    """Duration buckets of the sampler."""
    max_utt_duration: float = 30.0
    """data.max_utt_duration: longer cuts are dropped."""
    text_len: int = 128
    """L: text slots (the tokenizer's count must fit L - 2)."""
    latent_dim: int = 512
    """d of the text latents (t5-small: 512)."""
    tokenizer: Optional[str] = None
    """Tokenizer directory or hub id for the token counts (default: the offline MiniLM bundle, else words)."""
    sampler_batches: int = 200
    """Batches drawn from the sampler alone."""
    batches: int = 20
    """Batches read through the data loader."""
    num_workers: int = 2
    """DataLoader workers."""
    cache_fill: float = 2.0
    """Rows offered to the latent cache, as a multiple of what its budget holds."""
    cache_mb: int = 1024
    """The latent cache's budget in MiB (LatentCache's default: 1024)."""
    budget_gb: float = 8.0
    """Stated memory budget of the data side of one training process (main process, workers, caches)."""
    start_budget_s: float = 300.0
    """Stated budget of the start-up: manifest, sampler and the loader's first batch."""
    work_dir: Optional[Path] = None
    """Where the synthetic corpus goes (default: a temporary folder); deleted afterwards unless ``keep``."""
    keep: bool = False
    """Keep the synthetic corpus."""
    isolated: bool = True
    """Measure in a fresh process (the numbers are the run's alone); False: in this one (tests)."""
    seed: int = 0
    """Seed of durations, texts and frames."""

    def validate(self) -> None:
        for key in ("num_cuts", "feat_dim", "distinct_feats", "text_len", "latent_dim", "batches", "cache_mb"):
            config_check(getattr(self, key) >= 1, key, getattr(self, key), "must be >= 1")
        config_check(self.num_workers >= 0, "num_workers", self.num_workers, "must be >= 0")
        config_check(self.max_duration > 0, "max_duration", self.max_duration, "must be positive")


class SyntheticLatentSpace:
    """Random ``(B, L, d)`` latents for :class:`~elfs2t.text.latent.LatentCache` to hold (see the module doc)."""

    def __init__(self, text_len: int, dim: int) -> None:
        import torch

        self.max_len, self.dim, self.device = text_len, dim, torch.device("cpu")

    def encode(self, ids):
        import torch

        return torch.randn(ids.shape[0], self.max_len, self.dim)


# --------------------------------------------------------------------------------------------------------
# The synthetic corpus
# --------------------------------------------------------------------------------------------------------
def _durations(rng: np.random.Generator, n: int) -> np.ndarray:
    long = rng.random(n) < 0.75
    return np.where(long, rng.uniform(12.0, 17.0, n), rng.uniform(1.5, 12.0, n))


def _word(rng: np.random.Generator) -> str:
    return "".join(rng.choice(_LETTERS, size=int(rng.integers(2, 9)), p=_P / _P.sum()))


def _default_tokenizer() -> Optional[str]:
    """The offline MiniLM bundle (tools/models/all-MiniLM-L6-v2), when installed."""
    bundle = Path(__file__).resolve().parents[2] / "tools" / "models" / "all-MiniLM-L6-v2"
    return str(bundle) if (bundle / "vocab.txt").is_file() else None


def _vocabulary(cfg: ScaleBenchConfig, rng: np.random.Generator) -> list[str]:
    """Upper-case English words (the whole words of the tokenizer's vocab.txt: ~1.2 tokens a word, as
    transcripts), or random letter strings when there is none."""
    vocab = Path(cfg.tokenizer or _default_tokenizer() or "-") / "vocab.txt"
    if vocab.is_file():
        words = [w.upper() for w in vocab.read_text(encoding="utf-8").split() if w.isalpha() and w.isascii()
                 and len(w) > 1]
        if len(words) > 1000:
            return words
    return [_word(rng) for _ in range(20000)]


def make_scale_data(cfg: ScaleBenchConfig, folder: Path) -> Path:
    """Write the feature arrays and the cuts manifest into ``folder``; returns the manifest's path."""
    from lhotse import CutSet, Features, MonoCut, Recording, SupervisionSegment
    from lhotse.audio import AudioSource
    from tqdm import tqdm

    from elfs2t.features.storage import STORAGE_TYPE, KaldiioArkWriter

    rng = np.random.default_rng(cfg.seed)
    folder.mkdir(parents=True, exist_ok=True)
    grid = np.round(np.linspace(1.5, 17.0, cfg.distinct_feats), 2)  # the stored arrays' durations
    frames = np.maximum(1, np.round(grid / 0.02).astype(int))
    writer = KaldiioArkWriter(folder / "feats.0.ark")
    keys = [writer.write(f"a{k}", rng.standard_normal((int(t), cfg.feat_dim)).astype(np.float16))
            for k, t in enumerate(frames)]
    writer.close()
    vocab = _vocabulary(cfg, rng)
    path = folder / "cuts.jsonl.gz"
    durations = _durations(rng, cfg.num_cuts)
    with CutSet.open_writer(path) as out:
        for i, want in enumerate(tqdm(durations, desc="synthetic cuts", unit="cut", mininterval=5)):
            k = int(np.abs(grid - want).argmin())
            dur, n = float(grid[k]), int(frames[k])
            cid = f"{100 + i % 2338}-{i // 2338}-{i % 1000:04d}"
            rec = Recording(id=cid, sources=[AudioSource(type="file", channels=[0],
                                                         source=f"LibriSpeech/train-960/{cid}.flac")],
                            sampling_rate=16000, num_samples=int(dur * 16000), duration=dur)
            text = " ".join(vocab[j] for j in rng.integers(0, len(vocab), max(1, int(2.7 * dur))))
            sup = SupervisionSegment(id=cid, recording_id=cid, start=0.0, duration=dur, text=text, language="en",
                                     speaker=cid.split("-")[0])
            feats = Features(type="synthetic_pad30", num_frames=n, num_features=cfg.feat_dim, frame_shift=0.02,
                             sampling_rate=16000, start=0.0, duration=dur, storage_type=STORAGE_TYPE,
                             storage_path=str(writer.ark), storage_key=keys[k], recording_id=cid)
            out.write(MonoCut(id=cid, start=0.0, duration=dur, channel=0, recording=rec, supervisions=[sup],
                              features=feats))
    return path


# --------------------------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------------------------
def _kb(pid: str, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children_rss_gb() -> float:
    total = 0
    for task in Path("/proc/self/task").glob("*"):
        try:
            total += sum(_kb(c, "VmRSS") for c in (task / "children").read_text().split())
        except OSError:
            pass
    return total / 2**20


class _Phase:
    """Times a phase and measures the resident set after it and its peak (``/proc/self``; see bench.common)."""

    def __init__(self, rows: list[dict], name: str) -> None:
        self.rows, self.name, self.note = rows, name, ""
        self.extra: dict[str, Any] = {}

    def __enter__(self) -> "_Phase":
        from elfs2t.bench.common import PeakMemory

        self.mem = PeakMemory("cpu").__enter__()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: Any) -> None:
        seconds = time.perf_counter() - self.t0
        self.mem.__exit__(*exc)
        self.rows.append({"phase": self.name, "seconds": seconds, "rss_gb": _kb("self", "VmRSS") / 2**20,
                          "peak_gb": (self.mem.abs_mb or 0) / 1024, "grew_gb": (self.mem.peak_mb or 0) / 1024,
                          "workers_gb": None,
                          "note": self.note, **self.extra})


def _token_counter(cfg: ScaleBenchConfig):
    name = cfg.tokenizer or _default_tokenizer()
    if name is None:
        return "words", lambda text: len(text.split())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(name)
    return Path(name).name, lambda text: len(tok(text, add_special_tokens=False)["input_ids"])


def measure(cfg: ScaleBenchConfig, cuts_path: Path) -> list[dict]:
    """The phases of the module docstring on ``cuts_path``; one row per phase."""
    rows: list[dict] = []
    with _Phase(rows, "imports") as ph:
        import torch

        from elfs2t.data.dataset import S2TDataset, SetSpec, filter_cuts, load_sets
        from elfs2t.text.latent import LatentCache
        from elfs2t.train.data import build_dataloader, build_sampler

        torch.set_num_threads(1)
        tok_name, count = _token_counter(cfg)
        ph.note = f"token counts: {tok_name}"
    with _Phase(rows, "manifest") as ph:
        kept, counts = filter_cuts(load_sets([SetSpec(cuts=cuts_path)]), cfg.max_utt_duration, cfg.text_len - 2, count)
        ph.note = f"{counts['kept']} cuts kept, {sum(counts.values()) - counts['kept']} dropped"
    with _Phase(rows, "sampler") as ph:
        sampler = build_sampler(kept, max_duration=cfg.max_duration, num_buckets=cfg.num_buckets, shuffle=True,
                                seed=cfg.seed)
        t0, sizes, first = time.perf_counter(), [], None
        for i, batch in zip(range(cfg.sampler_batches), sampler):
            sizes.append(len(batch))
            first = first or time.perf_counter() - t0
        ph.note = f"{len(sizes)} batches of {np.mean(sizes):.0f} cuts on average; first after {first:.1f} s"
    with _Phase(rows, "loader") as ph:
        loader = build_dataloader(kept, S2TDataset(), max_duration=cfg.max_duration, num_buckets=cfg.num_buckets,
                                  shuffle=True, seed=cfg.seed, num_workers=cfg.num_workers, persistent_workers=False)
        t0, first, workers_gb, frames = time.perf_counter(), None, 0.0, []
        batches = iter(loader)
        for _ in range(cfg.batches):
            batch = next(batches, None)
            if batch is None:
                break
            first = first or time.perf_counter() - t0
            frames.append(tuple(batch["feats"].shape))
            workers_gb = max(workers_gb, _children_rss_gb())
        del batch, batches  # the workers stop here
        ph.extra["workers_gb"] = workers_gb
        biggest = max(frames, key=lambda s: s[0] * s[1])
        ph.note = (f"{len(frames)} batches, first after {first:.1f} s, largest (B, T, D) = {biggest}; "
                   f"{cfg.num_workers} workers")
        ph.extra["first_batch_s"] = first
        del loader
    with _Phase(rows, "latent cache") as ph:
        space = SyntheticLatentSpace(cfg.text_len, cfg.latent_dim)
        cache = LatentCache(space, max_bytes=cfg.cache_mb << 20)
        per_row = cfg.text_len * (cfg.latent_dim * 4 + 8)
        rows_offered = int(cfg.cache_fill * cache.max_bytes / per_row)
        for start in range(0, rows_offered, 64):
            n = min(64, rows_offered - start)
            ids = torch.arange(start, start + n).unsqueeze(1).repeat(1, cfg.text_len)  # distinct rows
            cache.encode(ids)
        ph.extra.update(cache_gb=cache.nbytes / 2**30, cache_budget_gb=cache.max_bytes / 2**30)
        ph.note = (f"{rows_offered} rows of {cfg.text_len} x {cfg.latent_dim} offered, {len(cache)} held "
                   f"({cache.nbytes / 2**30:.2f} of {cache.max_bytes / 2**30:.2f} GiB)")
    return rows


def _measure_child(cfg: ScaleBenchConfig, cuts_path: Path, queue) -> None:
    try:
        queue.put(("ok", measure(cfg, cuts_path)))
    except BaseException as exc:  # the parent reports it
        queue.put(("error", f"{type(exc).__name__}: {exc}"))


def run_scale_bench(cfg: ScaleBenchConfig) -> dict:
    """Generate the corpus, measure (in a fresh process unless ``cfg.isolated`` is False), clean up; returns
    ``rows``, ``table``, ``verdict`` (lines against the budget) and ``generate_s``."""
    from elfs2t.bench.common import format_table

    cfg.validate()
    folder = Path(cfg.work_dir) if cfg.work_dir else Path(tempfile.mkdtemp(prefix="elfs2t_scale_"))
    try:
        t0 = time.perf_counter()
        cuts_path = make_scale_data(cfg, folder)
        generate_s = time.perf_counter() - t0
        disk_mb = sum(p.stat().st_size for p in folder.iterdir()) / 2**20
        if cfg.isolated:
            ctx = mp.get_context("spawn")
            queue = ctx.Queue()
            proc = ctx.Process(target=_measure_child, args=(cfg, cuts_path, queue))
            proc.start()
            status, rows = queue.get()
            proc.join()
            if status != "ok":
                raise RuntimeError(f"scale benchmark failed in its process: {rows}")
        else:
            rows = measure(cfg, cuts_path)
    finally:
        if not cfg.keep:
            shutil.rmtree(folder, ignore_errors=True)
    by = {r["phase"]: r for r in rows}
    peak = max(r["peak_gb"] for r in rows) + by["loader"].get("workers_gb", 0.0)
    start = by["manifest"]["seconds"] + by["loader"]["first_batch_s"]  # (the loader builds its own sampler)
    verdict = [
        f"peak of the main process + the loader's workers: {peak:.2f} GB (budget {cfg.budget_gb:g} GB): "
        + ("within" if peak <= cfg.budget_gb else "OVER"),
        f"start-up (manifest + the loader's first batch): {start:.0f} s (budget {cfg.start_budget_s:g} s): "
        + ("within" if start <= cfg.start_budget_s else "OVER"),
        f"latent cache: {by['latent cache']['cache_gb']:.2f} GiB held, budget {by['latent cache']['cache_budget_gb']:.2f}"
        " GiB: " + ("within" if by["latent cache"]["cache_gb"] <= by["latent cache"]["cache_budget_gb"] else "OVER"),
    ]
    table = format_table(rows, [("phase", "phase", ""), ("seconds", "s", ".1f"), ("rss_gb", "RSS after (GB)", ".2f"),
                                ("peak_gb", "peak (GB)", ".2f"), ("grew_gb", "peak growth (GB)", ".2f"),
                                ("workers_gb", "workers' RSS (GB)", ".2f"), ("note", "what", "")])
    header = [f"synthetic corpus: {cfg.num_cuts} cuts, {cfg.feat_dim}-wide features in {cfg.distinct_feats} arrays "
              f"({disk_mb:.0f} MB on disk), written in {generate_s:.0f} s; batches of {cfg.max_duration:g} s",
              f"settings: {asdict(cfg)}"]
    return {"rows": rows, "table": table + "\n\n" + "\n".join(verdict), "verdict": verdict, "generate_s": generate_s,
            "header_extra": header}
