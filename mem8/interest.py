"""Interest: how much a percept engages a persona, from its Big Five traits and the stimulus.

Model
-----
A stimulus offers seven features, each in [0, 1], read from its text and emotion:

- complexity: length (20 words saturate), the share of long words (seven letters or more, a proxy
  for rare ones), and specifics: numbers and named entities (capitalised words inside a sentence);
- question: a question mark, a wh-word or an inverted auxiliary ("can you") at the start, or a
  task verb ("explain", "fix") or "please"; scaled by length (0.4 for one word, 1 from ten
  words on), since a short question ("What time is it?") asks for little thought;
- technical: code-like tokens (snake_case, dotted.names, calls(), CamelCase such as "CPython",
  words mixing letters and digits) and words from a small technical vocabulary;
- social: first-person words, and words for people close to one and for life events ("sister",
  "wedding");
- emotion: emotional charge, the mean of |valence| and arousal;
- negative: negative charge, max(0, -valence);
- addressed: 1 when the caller says the message is addressed to the persona (e.g. by name).

Each feature has a weight that the traits modulate, after what each trait is known for:
openness -> curiosity about the complex and new (and, below, faster habituation to the familiar);
conscientiousness -> questions, tasks and precise technical content; extraversion -> being
addressed and social content; agreeableness -> emotional content, others' feelings; neuroticism
-> vigilance for negative content. The drive z = sum(weight x feature) is scaled by a
habituation gate, 1 - h (1 - novelty) with h = 0.4 + 0.4 x openness, so content the persona
already remembers (novelty near 0) engages it less, and novelty alone (a bare "Hello!" it never
heard) engages it little. The level is 1 - exp(-z x gate), in [0, 1).

`InterestReading.contributions` splits the level among the features in proportion to their share
of z, plus a "habituation" entry (zero or negative) for what familiarity took away; they add up
to the level. Calibrated (tests/test_interest.py) so that greetings stay far below the 0.70
threshold for all built-in personas, a personal, emotional message full of specifics passes it
for all three, and a technical question passes it for the Technical Analyst.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

from mem8.memory import Emotion
from mem8.personas import Traits

FEATURES = ("complexity", "question", "technical", "social", "emotion", "negative", "addressed")

_RIGHT_QUOTE = "\u2019"  # the typographic apostrophe
_WORD = re.compile(r"[^\W_]+(?:['\u2019][^\W_]+)*")
_SENTENCE_END = re.compile(r"[.!?]\s+")
_NUMBER = re.compile(r"\d")
_ORDINAL_OR_UNIT = re.compile(r"\d+(st|nd|rd|th|s|am|pm)", re.IGNORECASE)  # "3rd", "1990s", "5pm"
_CODE_LIKE = re.compile(
    r"\w_\w"  # snake_case
    r"|\w\w\.[a-z]\w"  # dotted.names, not "e.g."
    r"|\w\(\)?"  # calls()
    r"|[a-z][A-Z]|^[A-Z]{2}[a-z]"  # camelCase, CPython
    r"|[a-zA-Z]\d|\d[a-zA-Z]"  # utf8, x86
    r"|::|->|=="
)


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_WH_WORDS = _words("what why how when where which who whom whose")
_AUXILIARIES = _words("can could would will do does did is are was should shall may")
_SUBJECTS = _words("you i we it this that there they he she")
_TASK_WORDS = _words(
    "explain tell describe show help compare write list summarize summarise analyse analyze fix "
    "debug calculate compute translate define please"
)
_FIRST_PERSON = _words("i i'm i've i'll i'd me my mine myself we we're our ours us")
_SECOND_PERSON = _words("you you're your yours yourself")
_CLOSE_PEOPLE = _words(
    "sister brother mother father mom mum dad parent parents wife husband partner friend friends "
    "family son daughter kid kids child children baby boyfriend girlfriend fiance fiancé fiancee "
    "fiancée grandma grandpa grandmother grandfather aunt uncle cousin neighbor neighbour boss "
    "colleague coworker"
)
_LIFE_EVENTS = _words(
    "married marriage marry marrying wedding birthday funeral divorce divorced pregnant born "
    "died death dying graduation graduating anniversary engaged engagement pregnancy illness "
    "diagnosis hospital interview promotion fired moving"
)
_TECHNICAL = _words(
    "algorithm api array async await bug byte bytes cache class code compile compiler cpu "
    "database debug debugger error exception function garbage collector collection memory "
    "pointer python query recursion reference regex runtime server stack syntax thread threads "
    "variable kernel network protocol latency performance cycle cycles heap allocation "
    "allocator interpreter bytecode library module package dependency install version "
    "deadlock mutex lock concurrency parallel process socket http json sql schema index "
    "integer float string boolean type types typing generic interface struct object method "
    "loop iterator generator lambda closure scope complexity binary hash tree graph matrix "
    "vector tensor gpu model throughput benchmark linker segfault"
)

_HABITUATION_BASE, _HABITUATION_OPENNESS = 0.4, 0.4


@dataclass(frozen=True, slots=True)
class Stimulus:
    """A percept as interest sees it; novelty and addressed are the caller's to decide."""

    text: str
    emotion: Emotion
    novelty: float = 1.0  # 1 - the best resonance against the persona's memories; 1 if none
    addressed: bool = False  # e.g. the persona's name appears in the message


@dataclass(frozen=True, slots=True)
class InterestReading:
    """The level of interest in [0, 1] and how it came about, for logs and tests."""

    level: float
    features: Mapping[str, float]  # FEATURES and the novelty, each in [0, 1]
    contributions: Mapping[str, float]  # each feature's part of the level, and "habituation"


def interest(traits: Traits, stimulus: Stimulus) -> InterestReading:
    """How much `stimulus` engages a persona with `traits` (the model in the module docstring)."""
    features = _features(stimulus)
    weights = _weights(traits)
    drives = {name: weights[name] * features[name] for name in FEATURES}
    drive = sum(drives.values())
    novelty = _clamp(stimulus.novelty)
    habituation = _HABITUATION_BASE + _HABITUATION_OPENNESS * traits.openness
    gate = 1.0 - habituation * (1.0 - novelty)
    unhabituated = 1.0 - math.exp(-drive)
    level = 1.0 - math.exp(-drive * gate)
    contributions = {
        name: (unhabituated * d / drive if drive else 0.0) for name, d in drives.items()
    }
    contributions["habituation"] = level - unhabituated
    return InterestReading(level, {**features, "novelty": novelty}, contributions)


def subconscious_reply(level: float) -> str:
    """The spec's brief reply below the threshold, e.g. "I understand. Interest level: 45.2%"."""
    return f"I understand. Interest level: {100.0 * level:.1f}%"


def _weights(traits: Traits) -> dict[str, float]:
    """Trait-modulated weights: a floor every persona shares, plus what the trait adds."""
    return {
        "complexity": 0.30 + 0.60 * traits.openness,
        "question": 0.20 + 0.60 * traits.conscientiousness,
        "technical": 0.05 + 1.10 * traits.conscientiousness,
        "social": 0.20 + 0.70 * traits.extraversion,
        "emotion": 0.30 + 0.90 * traits.agreeableness,
        "negative": 0.80 * traits.neuroticism,
        "addressed": 0.20 + 0.80 * traits.extraversion,
    }


def _features(stimulus: Stimulus) -> dict[str, float]:
    text = stimulus.text
    words = _WORD.findall(text)
    lowered = [w.lower().replace(_RIGHT_QUOTE, "'") for w in words]
    emotion = stimulus.emotion
    return {
        "complexity": _complexity(text, words),
        "question": _question(text, lowered),
        "technical": _technical(text.split(), lowered),
        "social": _social(lowered),
        "emotion": _clamp(0.5 * abs(emotion.valence) + 0.5 * emotion.arousal),
        "negative": _clamp(-emotion.valence),
        "addressed": 1.0 if stimulus.addressed else 0.0,
    }


def _complexity(text: str, words: list[str]) -> float:
    if not words:
        return 0.0
    length = min(1.0, len(words) / 20)
    long_words = sum(len(w) >= 7 and w.isalpha() for w in words) / len(words)
    specifics = _numbers(words) + _named_entities(text)
    return 0.45 * length + 0.30 * min(1.0, 2.5 * long_words) + 0.25 * min(1.0, specifics / 3)


def _numbers(words: list[str]) -> int:
    return sum(bool(_NUMBER.search(w)) for w in words)


def _named_entities(text: str) -> int:
    """Capitalised words that do not open a sentence, "I" aside: names, places, months."""
    count = 0
    for sentence in _SENTENCE_END.split(text):
        words = _WORD.findall(sentence)[1:]
        count += sum(w[:1].isupper() and w[1:].islower() and w != "I" for w in words)
    return count


def _question(text: str, lowered: list[str]) -> float:
    """How plainly the text asks something, times how much it asks: short questions ask little."""
    return _asking(text, lowered) * (0.4 + 0.6 * min(1.0, len(lowered) / 10))


def _asking(text: str, lowered: list[str]) -> float:
    if text.rstrip().endswith("?"):
        return 1.0
    first, second = [*lowered, "", ""][:2]
    cues = [
        0.8 if "?" in text else 0.0,
        0.8 if first in _WH_WORDS else 0.0,
        0.7 if first in _AUXILIARIES and second in _SUBJECTS else 0.0,
        0.7 if first in _TASK_WORDS or "please" in lowered else 0.0,
    ]
    return max(cues)


def _technical(tokens: list[str], lowered: list[str]) -> float:
    """Code-like tokens (split on whitespace, so "os.path" stays whole) and technical words."""
    tokens = [t.strip("\"'.,;:!?") for t in tokens]
    code_like = sum(
        bool(_CODE_LIKE.search(t)) and not _ORDINAL_OR_UNIT.fullmatch(t) for t in tokens
    )
    vocabulary = sum(w in _TECHNICAL or w.rstrip("s") in _TECHNICAL for w in lowered)
    return min(1.0, 0.3 * (code_like + vocabulary))


def _social(lowered: list[str]) -> float:
    first = min(3, sum(w in _FIRST_PERSON for w in lowered))
    second = min(2, sum(w in _SECOND_PERSON for w in lowered))
    close = sum(w in _CLOSE_PEOPLE for w in lowered)
    events = sum(w in _LIFE_EVENTS for w in lowered)
    return min(1.0, 0.15 * first + 0.10 * second + 0.35 * (close + events))


def _clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
