"""``elfs2t.load``: a trained model on your own audio, in three lines::

    import elfs2t
    model = elfs2t.load("exp/asr_elf")            # an experiment folder, or an exported one (elfs2t.bin.export)
    print(model.transcribe("a.wav").text)          # a list of files gives a list, decoded in batches

``model.translate("b.wav")`` for speech translation models. The Whisper encoder runs in-process with the feature
path of stage 2 (:mod:`elfs2t.inference.features`): the same audio gives the same text as stages 2 and 5 with the
model's recorded decoding setting (:mod:`elfs2t.inference.setting`). Inputs are files, a Kaldi ``wav.scp`` or a
Lhotse cuts manifest, any sampling rate or channel count; audio longer than the model holds is segmented
(:mod:`elfs2t.inference.audio`). :meth:`SpeechModel.transcribe` returns :class:`Transcript` objects with the text,
n-best lists (``nbest=N``) and word times (``word_times=True``, from the CTC alignment of ELF-S2T).
"""
from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import SimpleCutSampler
from torch import nn
from tqdm import tqdm

from elfs2t.config import ConfigError
from elfs2t.experiment import MODELS, ExperimentConfig, batch_seed, task_tokens
from elfs2t.features.record import EncoderRecord, FeatureMismatchError
from elfs2t.features.whisper import DTYPES, WhisperFrontEnd
from elfs2t.inference.audio import Segment, model_seconds, open_inputs, segment_cut
from elfs2t.inference.features import AudioFeatureDataset
from elfs2t.inference.references import ModelRef, check_fingerprint, find_model
from elfs2t.kinds.base import Hyp, Word

log = logging.getLogger(__name__)

__all__ = ["SegmentResult", "Transcript", "SpeechModel", "load", "build_encoder"]

AudioInput = str | Path | Cut


@dataclass
class SegmentResult:
    """The decoding of one segment of an input."""

    start: float
    """Seconds from the start of the input."""
    end: float
    text: str
    nbest: list[Hyp] = field(default_factory=list)
    """Its hypotheses, best first (the first is ``text``)."""
    words: Optional[list[Word]] = None
    """Word times (seconds from the start of the input), when asked for and the model has an alignment."""
    full: bool = False
    """The text reached the model's text limit: it may be cut (a smaller ``max_segment`` splits the audio more)."""


@dataclass
class Transcript:
    """The decoding of one input (one file, one ``wav.scp`` line, one cut)."""

    id: str
    source: str
    """Where it came from (the file, ``wav.scp:<line>``, ``cuts.jsonl.gz:<cut id>``)."""
    task: str
    """``asr`` or ``st:<tgt>``."""
    duration: float
    segments: list[SegmentResult]

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def nbest(self) -> list[Hyp]:
        """The n-best list of a one-segment input (segmented inputs have one per segment)."""
        return self.segments[0].nbest if len(self.segments) == 1 else [Hyp(self.text)]

    @property
    def words(self) -> Optional[list[Word]]:
        if any(s.words is None for s in self.segments):
            return None
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "source": self.source, "task": self.task, "duration": round(self.duration, 3),
                "text": self.text, "segments": [asdict(s) for s in self.segments]}


def build_encoder(record: EncoderRecord, location: str, device: str | torch.device, where: str):
    """The Whisper encoder of ``record`` loaded from ``location``, in the recorded dtype where the device has it
    (float16 is for GPUs: float32 on a CPU, with a warning); refuses weights with another fingerprint or width."""
    spec = WhisperFrontEnd.from_pretrained(location, record.mode or "trim", name=record.name)
    if record.hidden_size and spec.hidden_size != record.hidden_size:
        raise FeatureMismatchError(f"encoder {location}: width {spec.hidden_size}, but {where} was trained on "
                                   f"{record.describe()} of width {record.hidden_size}")
    dtype = record.dtype or "float32"
    if torch.device(device).type == "cpu" and dtype == "float16":
        log.warning("%s was trained on float16 features (a GPU's); on the CPU the encoder runs in float32 (the "
                    "features differ by rounding)", where)
        dtype = "float32"
    encoder = spec.build(device=device, dtype=dtype if dtype in DTYPES else "float32")
    check_fingerprint(ModelRef(value=record.model, name=record.name or record.tag, fingerprint=record.fingerprint),
                      encoder.fingerprint, location, "encoder")
    return encoder


class SpeechModel:
    """A trained model with its Whisper encoder, ready for audio (see the module docstring)."""

    def __init__(self, model: nn.Module, cfg: ExperimentConfig, encoder, *, source: str, weights: str,
                 max_seconds: float, limit_why: str, tasks: list[str], device: str | torch.device = "cpu") -> None:
        self.model, self.cfg, self.encoder = model, cfg, encoder
        self.kind = MODELS[cfg.model]
        self.source, self.weights = source, weights
        self.max_seconds, self.limit_why = max_seconds, limit_why
        self.tasks = tasks
        self.device = torch.device(device)

    def __repr__(self) -> str:
        return (f"SpeechModel({self.source}: {self.cfg.model}, {self.weights}, tasks {self.tasks}, encoder "
                f"{self.encoder.spec.tag})")

    def default_task(self) -> str:
        """The model's task when it has one only; else ``asr`` if it has it."""
        if len(self.tasks) == 1 or "asr" not in self.tasks:
            return self.tasks[0]
        return "asr"

    def transcribe(self, audio: AudioInput | Sequence[AudioInput] | CutSet, **kw) -> Transcript | list[Transcript]:
        """Speech recognition of one input (a :class:`Transcript`) or a list of them (a list); keywords as
        :meth:`decode`."""
        if "asr" not in self.tasks:
            raise ConfigError(f"{self.source} does not transcribe (its tasks: {self.tasks}): use translate()")
        return self._one_or_many(audio, "asr", **kw)

    def translate(self, audio: AudioInput | Sequence[AudioInput] | CutSet, target: Optional[str] = None,
                  **kw) -> Transcript | list[Transcript]:
        """Speech translation into ``target`` (default: the model's only target language)."""
        st = [t for t in self.tasks if t.startswith("st:")]
        task = f"st:{target}" if target else (st[0] if len(st) == 1 else None)
        if task is None or task not in self.tasks:
            raise ConfigError(f"{self.source} does not translate{' into ' + target if target else ''} "
                              f"(its tasks: {self.tasks})" + ("; name the target language" if len(st) > 1 else ""))
        return self._one_or_many(audio, task, **kw)

    def _one_or_many(self, audio, task: str, **kw):
        single = isinstance(audio, (str, Path, Cut))
        out = self.decode([audio] if single else list(audio), task, **kw)
        return out[0] if single else out

    @torch.no_grad()
    def decode(self, inputs: Sequence[AudioInput], task: str, *, nbest: int = 1, word_times: bool = False,
               max_segment: Optional[float] = None, segment: bool = True, seed: int = 0,
               progress: bool = False, errors: Optional[list[str]] = None) -> list[Transcript]:
        """Decode ``inputs`` for ``task`` in batches of ``decode.max_duration`` seconds (as stage 5 does: the same
        sampling noise for the same batches). ``nbest``: hypotheses per segment; ``word_times``: word times (CTM);
        ``max_segment``: longest piece in seconds (default: what the model holds); ``segment=False`` refuses longer
        audio instead; ``errors``: skip unreadable inputs, their messages appended there (default: raise)."""
        limit, why = (max_segment, "--max-segment") if max_segment else (self.max_seconds, self.limit_why)
        items = open_inputs(inputs, errors)
        if not items:
            return []
        segments: list[Segment] = []
        for cut, src in items:
            segments += segment_cut(cut, limit, src, split=segment, why=why)
        by_id = {s.cut.id: s for s in segments}
        sources = {cut.id: src for cut, src in items}
        dataset = AudioFeatureDataset(self.encoder, task, sources={s.cut.id: sources[s.input_id] for s in segments})
        cuts = CutSet.from_cuts([s.cut for s in segments])
        sampler = SimpleCutSampler(cuts.sort_by_duration(ascending=False), max_duration=self.cfg.decode.max_duration,
                                   shuffle=False)
        gen = torch.Generator()
        decode = self.kind.decode_fn(self.model, self.cfg, gen, nbest)
        results: dict[str, SegmentResult] = {}
        with tqdm(total=len(segments), desc="decode", unit="seg", disable=not progress) as bar:
            for batch_cuts in sampler:
                batch = dataset[batch_cuts]
                gen.manual_seed(batch_seed(seed, batch["cut_ids"]))  # stage 5's noise for the same batch
                hyps = decode(batch)
                words = (self.kind.word_times(self.model, self.cfg, batch, [h[0].text for h in hyps],
                                              self.encoder.spec.frame_shift) if word_times else [None] * len(hyps))
                for cid, row, row_words in zip(batch["cut_ids"], hyps, words):
                    seg = by_id[cid]
                    if row_words is not None:
                        row_words = [Word(w.word, round(min(w.start + seg.start, seg.end), 3),  # the last slot
                                          round(min(w.end + seg.start, seg.end), 3), w.conf)  # may pass the end
                                     for w in row_words]
                    elif word_times and row[0].text:
                        log.warning("%s %.1f-%.1f s: the text could not be aligned to the audio: no word times",
                                    sources[seg.input_id], seg.start, seg.end)
                    results[cid] = SegmentResult(seg.start, seg.end, row[0].text, row, row_words, row[0].full)
                    if row[0].full:
                        log.warning("%s %.1f-%.1f s: the text fills the model's text limit and may be cut; a smaller "
                                    "--max-segment splits the audio further", sources[seg.input_id], seg.start, seg.end)
                bar.update(len(hyps))
        out = []
        for cut, src in items:
            mine = [results[s.cut.id] for s in segments if s.input_id == cut.id]
            out.append(Transcript(cut.id, src, task, cut.duration, mine))
        return out


def model_tasks(cfg: ExperimentConfig) -> list[str]:
    """The tasks a model does: its task tokens, else those of its training sets (``data.train[i].task``, by default
    from the target)."""
    return list(task_tokens(cfg)) or sorted({s.task_name for s in cfg.data.train}) or ["asr"]


def load(path: str | Path, *, device: str = "cpu", average: int = 0, average_by: str = "last",
         checkpoint: Optional[str | Path] = None, overrides: Sequence[str] = (), encoder: Optional[str] = None,
         text_model: Optional[str] = None) -> SpeechModel:
    """A trained model from an experiment folder (``exp/<tag>``: EMA weights of its latest checkpoint, or
    ``average`` checkpoints, or ``checkpoint``) or an exported folder (:mod:`elfs2t.inference.export`), with its
    recorded decoding setting (``overrides``: more ``decode.*`` overrides). ``encoder`` / ``text_model``: load the
    frozen Whisper / text encoder from there instead of the recorded location or name (useful where those do not
    exist; :mod:`elfs2t.inference.references`); their weights must still be the ones the model was trained with."""
    from elfs2t.inference.export import MODEL_FILE, load_exported

    path = Path(path)
    if (path / MODEL_FILE).is_file():
        if average or checkpoint:
            raise ConfigError(f"{path} is an exported model (one set of weights): --average / --checkpoint apply "
                              "to experiment folders")
        return load_exported(path, device=device, overrides=overrides, encoder=encoder, text_model=text_model)
    if not (path / "config.yaml").is_file():
        raise FileNotFoundError(f"{path}: not a model folder (an experiment folder exp/<tag> with config.yaml, or a "
                                "folder written by python -m elfs2t.bin.export with model.json)")
    return _from_experiment(path, device=device, average=average, average_by=average_by,
                            checkpoint=Path(checkpoint) if checkpoint else None, overrides=overrides, encoder=encoder,
                            text_model=text_model)


def _from_experiment(path: Path, *, device: str, average: int, average_by: str, checkpoint: Optional[Path],
                     overrides: Sequence[str], encoder: Optional[str], text_model: Optional[str]) -> SpeechModel:
    """:func:`load` for an experiment folder: the frozen models where given, recorded or found by name, checked
    against their recorded fingerprints; the Whisper encoder of ``encoder.json``."""
    from elfs2t.config import load_config
    from elfs2t.inference.references import make_ref, read_frozen
    from elfs2t.inference.trained import config_bases, experiment_encoder, load_experiment, resolve_path
    from elfs2t.train.run_info import read_train_data

    bases = config_bases(path)
    frozen = read_frozen(path)
    stored = load_config(ExperimentConfig, path / "config.yaml")
    kind = MODELS[stored.model]
    locations = {key: find_model(frozen.get(key) or make_ref(value, None, bases), text_model, bases, key)
                 for key, value in kind.frozen_models(stored).items() if value}
    loaded = load_experiment(path, overrides, checkpoint=checkpoint, average=average, average_by=average_by,
                             use_setting=True, device=device, paths=locations)
    cfg = loaded.cfg
    _check_frozen(kind, loaded.model, cfg, frozen, locations)
    record = experiment_encoder(path, cfg)
    if record is None:
        raise ConfigError(f"{path}: no record of the Whisper encoder it was trained on (encoder.json, or its training "
                          "features' folder): retrain it with this version of elfs2t")
    ref = ModelRef(value=resolve_path(record.model, bases) if record.model else None, name=record.name or record.tag,
                   fingerprint=record.fingerprint)
    enc = build_encoder(record, find_model(ref, encoder, bases, "encoder"), device, str(path))
    seconds, why = model_seconds(read_train_data(path).get("max_duration"), cfg.data.max_utt_duration, None)
    return SpeechModel(loaded.model, cfg, enc, source=str(path), weights=loaded.weights, max_seconds=seconds,
                       limit_why=why, tasks=model_tasks(cfg), device=device)


def _check_frozen(kind, model: nn.Module, cfg: ExperimentConfig, frozen: dict[str, ModelRef],
                  locations: dict[str, str]) -> None:
    prints = kind.frozen_fingerprints(model, cfg)
    for key, ref in frozen.items():
        if key in prints:
            check_fingerprint(ref, prints[key], locations.get(key, ref.value or ref.name), key)
