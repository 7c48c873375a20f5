"""POST /v1/audio/transcriptions: speech to text, and what was heard into the persona's memory
for the caller's scope (modality audio, each segment a memory, bound in time as heard)."""

from __future__ import annotations

import math
from typing import Any

from quart import Response, jsonify

from mem8.actors.messages import Hear, Heard, Percept, Remember, Remembered
from mem8.actors.runtime import new_request_id
from mem8.actors.senses import SENSED_IMPORTANCE, encoded, transcript_from_wire
from mem8.errors import InvalidRequest
from mem8.http.context import caller
from mem8.http.forms import Form, read_form
from mem8.senses.audio import Transcript
from mem8.system import System

MAX_AUDIO_BYTES = 25 * 1024 * 1024  # OpenAI's limit for an audio upload
FORMATS = ("json", "text", "srt", "verbose_json", "vtt")
GRANULARITIES = ("segment", "word")
MAX_PROMPT = 4096  # characters


class Transcriptions:
    def __init__(self, system: System) -> None:
        self.system = system

    async def create(self) -> Response:
        form = await read_form(MAX_AUDIO_BYTES)
        model = form.required("model")
        self.system.persona(model)  # an unknown persona is the spec's 404
        response_format = form.text("response_format") or "json"
        if response_format not in FORMATS:
            raise InvalidRequest(
                f"'response_format' must be one of {', '.join(FORMATS)}", param="response_format"
            )
        granularities = _granularities(form, response_format)
        hear = Hear(
            new_request_id(),
            form.upload.data,
            self.system.settings.audio_max_seconds,
            language=form.text("language") or None,
            prompt=_prompt(form),
            temperature=form.number("temperature", 0.0, 1.0) or 0.0,
            words="word" in granularities,
        )
        heard = await self.system.hearing.ask(hear, Heard, timeout=math.inf)
        transcript = transcript_from_wire(heard.transcript)
        await self._remember(transcript, form, model, hear.request_id)
        return render(transcript, response_format, granularities)

    async def _remember(self, transcript: Transcript, form: Form, model: str, heard: str) -> None:
        """Each segment a memory, dated when it was heard: the recording ended now."""
        tenant, user = caller(form.text("user") or "")
        ended = self.system.clock.now()
        percepts = [
            Percept(
                text=segment.text,
                source=f"audio:{heard}:{form.upload.filename}:segment:{segment.id}",
                modality="audio",
                created=ended - transcript.duration + segment.start,
            )
            for segment in transcript.segments
        ]
        percepts = await encoded(self.system.encoder, percepts)
        if percepts:
            remember = Remember(heard, tenant, user, model, percepts, SENSED_IMPORTANCE)
            await self.system.memory.ask(remember, Remembered)


def _granularities(form: Form, response_format: str) -> list[str]:
    chosen = form.each("timestamp_granularities")
    for granularity in chosen:
        if granularity not in GRANULARITIES:
            raise InvalidRequest(
                "'timestamp_granularities' may hold 'segment' and 'word'",
                param="timestamp_granularities",
            )
    if chosen and response_format != "verbose_json":
        raise InvalidRequest(
            "'timestamp_granularities' needs response_format 'verbose_json'",
            param="timestamp_granularities",
        )
    return chosen or ["segment"]


def _prompt(form: Form) -> str | None:
    prompt = form.text("prompt")
    if prompt is not None and len(prompt) > MAX_PROMPT:
        raise InvalidRequest(f"'prompt' is longer than {MAX_PROMPT} characters", param="prompt")
    return prompt or None


def render(transcript: Transcript, response_format: str, granularities: list[str]) -> Response:
    if response_format == "json":
        return jsonify({"text": transcript.text, "usage": _usage(transcript)})
    if response_format == "verbose_json":
        return jsonify(_verbose(transcript, granularities))
    if response_format == "srt":
        return Response(subtitles(transcript, ","), content_type="text/plain; charset=utf-8")
    if response_format == "vtt":
        body = "WEBVTT\n\n" + subtitles(transcript, ".", numbered=False)
        return Response(body, content_type="text/vtt; charset=utf-8")
    return Response(transcript.text + "\n", content_type="text/plain; charset=utf-8")


def _usage(transcript: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(transcript.duration)}


def _verbose(transcript: Transcript, granularities: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript.language,
        "duration": transcript.duration,
        "text": transcript.text,
    }
    if "segment" in granularities:
        body["segments"] = [
            {
                "id": s.id,
                "seek": s.seek,
                "start": s.start,
                "end": s.end,
                "text": s.text,
                "tokens": s.tokens,
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in transcript.segments
        ]
    if "word" in granularities:
        body["words"] = [
            {"word": w.word, "start": w.start, "end": w.end}
            for s in transcript.segments
            for w in s.words
        ]
    body["usage"] = _usage(transcript)
    return body


def subtitles(transcript: Transcript, decimal: str, numbered: bool = True) -> str:
    """SubRip (numbered cues, comma decimals) or WebVTT cues (dot decimals)."""
    cues = []
    for number, segment in enumerate(transcript.segments, start=1):
        timing = f"{_clock(segment.start, decimal)} --> {_clock(segment.end, decimal)}"
        lines = [str(number)] if numbered else []
        cues.append("\n".join([*lines, timing, segment.text]) + "\n")
    return "\n".join(cues)


def _clock(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{decimal}{millis:03d}"
