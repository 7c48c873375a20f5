"""Hearing: decoding under limits and real transcription of the fixtures with Whisper tiny.en."""

from __future__ import annotations

import io
import itertools
import re
import time
import wave
from pathlib import Path

import av
import numpy as np
import pytest

from mem8 import errors
from mem8.senses import audio

# In CI the repository is cloned with shared/ beside it: /work/main and /work/shared here.
FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "audio"
JFK = (
    "and so my fellow americans ask not what your country can do for you "
    "ask what you can do for your country"
)
DIGITS = {"1": "one", "2": "two", "3": "three"}


def normalise(text: str) -> list[str]:
    words = re.sub(r"[^a-z0-9' ]", " ", text.lower()).split()
    return [DIGITS.get(w, w) for w in words]


def word_error_rate(reference: str, heard: str) -> float:
    ref, hyp = normalise(reference), normalise(heard)
    distance = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        previous, distance[0] = distance[0], i
        for j, h in enumerate(hyp, start=1):
            previous, distance[j] = (
                distance[j],
                min(distance[j] + 1, distance[j - 1] + 1, previous + (r != h)),
            )
    return distance[len(hyp)] / len(ref)


@pytest.fixture(scope="module")
def transcriber() -> audio.WhisperTranscriber:
    return audio.WhisperTranscriber(threads=1)


def hear(transcriber: audio.Transcriber, data: bytes, **options: object) -> audio.Transcript:
    samples = audio.decode(data, max_seconds=600)
    return transcriber.transcribe(samples, audio.Hearing(**options))  # type: ignore[arg-type]


def test_jfk_is_transcribed_within_a_word_error_rate_of_a_tenth(
    transcriber: audio.WhisperTranscriber,
) -> None:
    transcript = hear(transcriber, (FIXTURES / "jfk.wav").read_bytes())
    assert word_error_rate(JFK, transcript.text) <= 0.1, transcript.text
    assert transcript.duration == pytest.approx(11.0, abs=0.1)
    assert transcript.segments[-1].end <= 11.5


def test_english_counts_one_two_three(transcriber: audio.WhisperTranscriber) -> None:
    transcript = hear(transcriber, (FIXTURES / "english.wav").read_bytes())
    assert normalise(transcript.text) == ["one", "two", "three"]


def test_word_timestamps_come_in_order_inside_the_audio(
    transcriber: audio.WhisperTranscriber,
) -> None:
    transcript = hear(transcriber, (FIXTURES / "jfk.wav").read_bytes(), words=True)
    words = [w for s in transcript.segments for w in s.words]
    assert [normalise(w.word)[0] for w in words[:3]] == ["and", "so", "my"]
    assert all(a.start <= b.start for a, b in itertools.pairwise(words))
    assert words[0].start >= 0 and words[-1].end <= 11.5


def test_silence_gives_an_empty_transcript(transcriber: audio.WhisperTranscriber) -> None:
    assert hear(transcriber, wav(np.zeros(16_000 * 5, np.int16))).text == ""


def test_compressed_formats_decode_to_the_same_words(
    transcriber: audio.WhisperTranscriber,
) -> None:
    samples = audio.decode((FIXTURES / "english.wav").read_bytes(), 60)
    formats = (
        ("ogg", "libopus"),
        ("flac", "flac"),
        ("mp3", "libmp3lame"),
        ("ipod", "aac"),  # .m4a
        ("webm", "libopus"),
    )
    for container, codec in formats:
        data = _encode(samples, container, codec)
        heard = transcriber.transcribe(audio.decode(data, 60), audio.Hearing())
        assert normalise(heard.text) == ["one", "two", "three"], container


def test_joined_mp3_files_decode_whole_past_the_damaged_joins() -> None:
    samples = audio.decode((FIXTURES / "english.wav").read_bytes(), 60)
    mp3 = _encode(samples, "mp3", "libmp3lame")
    joined = audio.decode(mp3 * 3, 60)
    assert len(joined) >= 3 * len(samples)


def test_other_languages_are_refused_by_the_english_model(
    transcriber: audio.WhisperTranscriber,
) -> None:
    with pytest.raises(errors.InvalidRequest, match="English only"):
        transcriber.transcribe(np.zeros(16_000, np.float32), audio.Hearing(language="de"))


@pytest.mark.parametrize(
    "data",
    [b"", b"RIFF\x00\x00", bytes(range(256)) * 40, (FIXTURES / "jfk.wav").read_bytes()[:60]],
    ids=["empty", "truncated-header", "random", "header-only"],
)
def test_garbage_is_a_clear_400(data: bytes) -> None:
    with pytest.raises(errors.InvalidRequest) as raised:
        audio.decode(data, 600)
    assert raised.value.param == "file"


def test_an_hour_of_opus_in_a_small_file_is_refused() -> None:
    hour = _silent_opus(3600)
    assert len(hour) < 2_000_000
    started = time.perf_counter()
    with pytest.raises(errors.InputTooLarge):
        audio.decode(hour, max_seconds=1800)
    assert time.perf_counter() - started < 2.0


def test_a_file_longer_than_the_cap_is_refused() -> None:
    with pytest.raises(errors.InputTooLarge, match="limit is 5 s"):
        audio.decode((FIXTURES / "jfk.wav").read_bytes(), max_seconds=5)


def test_changed_model_files_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(audio.MODEL_SHA256, "config.json", "0" * 64)
    with pytest.raises(errors.SenseUnavailable, match="SHA-256"):
        audio.model_directory()


def wav(samples: np.ndarray, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return out.getvalue()


def _encode(samples: np.ndarray, container: str, codec: str) -> bytes:
    out = io.BytesIO()
    rate = 48_000 if codec == "libopus" else 16_000  # what each encoder takes
    pcm = np.interp(np.arange(0, len(samples), 16_000 / rate), np.arange(len(samples)), samples)
    with av.open(out, mode="w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(
            (pcm * 32767).astype(np.int16).reshape(1, -1), format="s16", layout="mono"
        )
        frame.sample_rate = rate
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            muxer.mux(packet)
    return out.getvalue()


def _silent_opus(seconds: int) -> bytes:
    """Opus at 6 kb/s: an hour of silence is about 1.4 MB (and takes ~14 s to encode)."""
    out = io.BytesIO()
    second = np.zeros((1, 48_000), np.int16)
    with av.open(out, mode="w", format="ogg") as muxer:
        stream = muxer.add_stream("libopus", rate=48_000)
        stream.layout = "mono"
        stream.bit_rate = 6000
        for i in range(seconds):
            frame = av.AudioFrame.from_ndarray(second, format="s16", layout="mono")
            frame.sample_rate, frame.pts = 48_000, i * 48_000
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()
