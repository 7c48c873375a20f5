"""POST /v1/audio/transcriptions: speech to text, and what was heard into the persona's memory
for the caller's scope (modality audio, each segment a memory, bound in time as heard): the
hearing actor does it all (`Listen`); this renders its transcript (`Heard`) in OpenAI's shapes."""

from __future__ import annotations

import math
from typing import Any

from quart import Response, jsonify

from mem8.actors.messages import Heard, Listen
from mem8.actors.runtime import new_request_id
from mem8.errors import InvalidRequest
from mem8.http.context import caller
from mem8.http.forms import Form, read_form
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
        # the persona a name or alias means (unknown: the spec's 404) keeps what is heard
        model = self.system.persona_id(form.required("model"))
        response_format = form.text("response_format") or "json"
        if response_format not in FORMATS:
            raise InvalidRequest(
                f"'response_format' must be one of {', '.join(FORMATS)}", param="response_format"
            )
        granularities = _granularities(form, response_format)
        language, prompt = form.text("language") or None, _prompt(form)
        temperature = form.number("temperature", 0.0, 1.0) or 0.0
        tenant, user = caller(form.text("user") or "")
        listen = Listen(
            new_request_id(),
            form.upload.data,
            form.upload.filename,
            tenant,
            user,
            model,
            self.system.settings.audio_max_seconds,
            language=language,
            prompt=prompt,
            temperature=temperature,
            words="word" in granularities,
        )
        heard = await self.system.hearing.ask(listen, Heard, timeout=math.inf)
        return render(heard.transcript, response_format, granularities)


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


# A transcript as Heard carries it: {language, duration, segments: [{id, seek, start, end,
# text, tokens, temperature, avg_logprob, compression_ratio, no_speech_prob, words}]}.
Transcript = dict[str, Any]
SEGMENT_FIELDS = (
    "id",
    "seek",
    "start",
    "end",
    "text",
    "tokens",
    "temperature",
    "avg_logprob",
    "compression_ratio",
    "no_speech_prob",
)


def render(transcript: Transcript, response_format: str, granularities: list[str]) -> Response:
    if response_format == "json":
        return jsonify({"text": _text(transcript), "usage": _usage(transcript)})
    if response_format == "verbose_json":
        return jsonify(_verbose(transcript, granularities))
    if response_format == "srt":
        return Response(subtitles(transcript, ","), content_type="text/plain; charset=utf-8")
    if response_format == "vtt":
        body = "WEBVTT\n\n" + subtitles(transcript, ".", numbered=False)
        return Response(body, content_type="text/vtt; charset=utf-8")
    return Response(_text(transcript) + "\n", content_type="text/plain; charset=utf-8")


def _text(transcript: Transcript) -> str:
    """The segments' words in one line (as mem8.senses.audio.Transcript.text)."""
    texts = (s["text"].strip() for s in transcript["segments"])
    return " ".join(text for text in texts if text)


def _usage(transcript: Transcript) -> dict[str, Any]:
    return {"type": "duration", "seconds": math.ceil(transcript["duration"])}


def _verbose(transcript: Transcript, granularities: list[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "task": "transcribe",
        "language": transcript["language"],
        "duration": transcript["duration"],
        "text": _text(transcript),
    }
    if "segment" in granularities:
        body["segments"] = [{key: s[key] for key in SEGMENT_FIELDS} for s in transcript["segments"]]
    if "word" in granularities:
        body["words"] = [
            {"word": w["word"], "start": w["start"], "end": w["end"]}
            for s in transcript["segments"]
            for w in s["words"]
        ]
    body["usage"] = _usage(transcript)
    return body


def subtitles(transcript: Transcript, decimal: str, numbered: bool = True) -> str:
    """SubRip (numbered cues, comma decimals) or WebVTT cues (dot decimals)."""
    cues = []
    for number, segment in enumerate(transcript["segments"], start=1):
        timing = f"{_clock(segment['start'], decimal)} --> {_clock(segment['end'], decimal)}"
        lines = [str(number)] if numbered else []
        cues.append("\n".join([*lines, timing, segment["text"]]) + "\n")
    return "\n".join(cues)


def _clock(seconds: float, decimal: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    whole, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{whole:02d}{decimal}{millis:03d}"
