from __future__ import annotations

import math
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mem8.emotion import MAX_TEMPERATURE_SHIFT, Modulation, amplitude, modulation, perceive
from mem8.memory import Emotion

emotions = st.builds(
    Emotion,
    valence=st.floats(-1.0, 1.0),
    arousal=st.floats(0.0, 1.0),
    dominance=st.floats(0.0, 1.0),
)


@pytest.mark.parametrize(
    ("pleasant", "unpleasant"),
    [
        ("I love this, it is wonderful", "I hate this, it is awful"),
        ("What a great day", "What a terrible day"),
        ("Thank you so much, that was really helpful :)", "That was useless and I am angry :("),
        ("😂", "😠"),
    ],
)
def test_pleasant_and_unpleasant_texts_have_opposite_valence(
    pleasant: str, unpleasant: str
) -> None:
    assert perceive(pleasant).valence > 0.2
    assert perceive(unpleasant).valence < -0.2


def test_shouting_is_more_arousing_than_mild_annoyance() -> None:
    furious = perceive("I am FURIOUS!!!")
    annoyed = perceive("I am slightly annoyed")
    assert furious.arousal > annoyed.arousal + 0.3
    assert furious.valence < annoyed.valence < 0


def test_emphasis_raises_arousal() -> None:
    plain = perceive("I am happy").arousal
    assert perceive("I am happy!!!").arousal > plain
    assert perceive("I am HAPPY, really").arousal > perceive("I am happy, really").arousal
    assert perceive("I am sooo happy").arousal > plain


def test_calm_words_are_less_arousing_than_fearful_ones() -> None:
    assert perceive("I feel calm and relaxed").arousal < perceive("I feel terrified").arousal


@pytest.mark.parametrize(
    ("text", "negated"),
    [
        ("I am happy", "I am not happy"),
        ("This is good", "This isn't good"),
        ("This is good", "This isn\u2019t good"),
        ("I was afraid", "I was never afraid"),
    ],
)
def test_negation_flips_valence(text: str, negated: str) -> None:
    before, after = perceive(text).valence, perceive(negated).valence
    assert before * after < 0
    assert abs(after) < abs(before)


def test_negation_stops_at_the_end_of_a_clause() -> None:
    assert perceive("No. I am happy").valence == pytest.approx(perceive("I am happy").valence)


def test_intensifiers_strengthen_and_softeners_weaken() -> None:
    plain = perceive("I am sad").valence
    assert perceive("I am very sad").valence < plain < perceive("I am slightly sad").valence
    assert perceive("I am kind of sad").valence > plain


def test_but_shifts_weight_to_what_follows() -> None:
    assert perceive("The food was good, but the service was terrible").valence < 0
    assert perceive("The service was terrible, but the food was good").valence > 0


def test_phrases_in_the_lexicon_are_read_whole() -> None:
    assert perceive("I am fed up").valence < 0


def test_dominance_follows_control() -> None:
    assert perceive("I feel helpless and scared").dominance < 0.4
    assert perceive("I am confident and proud").dominance > 0.6
    assert perceive("Maybe I could try, I guess?").dominance < 0.4
    assert perceive("You must fix this now, definitely").dominance > 0.6


@pytest.mark.parametrize(
    "text",
    ["", "   ", "The meeting is at 3 pm in room 204.", "zxqv blorf wug", "12345", "Ωμέγα"],
)
def test_text_without_emotion_is_neutral(text: str) -> None:
    assert perceive(text) == Emotion(valence=0.0, arousal=0.0, dominance=0.5)


def test_the_same_text_always_reads_the_same() -> None:
    text = "My sister Anna is getting married in Lisbon on June 3rd and I'm so nervous!"
    assert len({perceive(text) for _ in range(5)}) == 1


@given(st.text())
def test_any_text_stays_in_range_and_is_deterministic(text: str) -> None:
    emotion = perceive(text)
    assert -1.0 <= emotion.valence <= 1.0
    assert 0.0 <= emotion.arousal <= 1.0
    assert 0.0 <= emotion.dominance <= 1.0
    assert perceive(text) == emotion


def test_thousands_of_short_texts_a_second() -> None:
    texts = [f"Message {i}: I am so happy with this, but the wait was awful!" for i in range(3000)]
    start = time.perf_counter()
    for text in texts:
        perceive(text)
    assert time.perf_counter() - start < 3.0


def test_neutral_emotion_adds_nothing_to_the_reply() -> None:
    assert modulation(Emotion()) == Modulation(prompt="", temperature_delta=0.0)
    assert modulation(perceive("Hello!")) == Modulation(prompt="", temperature_delta=0.0)


def test_strong_emotion_shapes_tone_and_temperature() -> None:
    furious = modulation(perceive("I am FURIOUS!!!"))
    assert furious.prompt == "In your answer, be energetic, serious and assertive."
    assert furious.temperature_delta > 0.1


@pytest.mark.parametrize(
    ("emotion", "cues"),
    [
        (Emotion(valence=0.6, arousal=0.1, dominance=0.5), ["very warm"]),
        (Emotion(valence=0.3, arousal=0.4, dominance=0.5), ["lively", "warm"]),
        (Emotion(valence=-0.4, arousal=0.7, dominance=0.2), ["energetic", "serious", "gentle"]),
        (Emotion(valence=0.0, arousal=0.0, dominance=0.8), ["assertive"]),
    ],
)
def test_each_dimension_names_its_cue(emotion: Emotion, cues: list[str]) -> None:
    prompt = modulation(emotion).prompt
    assert prompt.startswith("In your answer, be ")
    for cue in cues:
        assert f" {cue}" in prompt


@given(emotions, st.floats(0.0, 2.0))
def test_temperature_shift_is_bounded(emotion: Emotion, base: float) -> None:
    shift = modulation(emotion)
    assert 0.0 <= shift.temperature_delta <= MAX_TEMPERATURE_SHIFT
    expected = MAX_TEMPERATURE_SHIFT * max(0.0, emotion.arousal - 0.3) / 0.7
    assert shift.temperature_delta == pytest.approx(expected)
    assert 0.0 <= shift.temperature(base) <= 2.0


def test_temperature_stays_within_openai_bounds() -> None:
    assert Modulation(prompt="", temperature_delta=0.15).temperature(1.95) == 2.0


@pytest.mark.parametrize(
    ("emotion", "expected"),
    [
        (Emotion(), 1.0),
        (Emotion(valence=1.0, arousal=1.0), 1.3 * 1.5),
        (Emotion(valence=-1.0, arousal=0.0), 0.7),
        (Emotion(valence=0.5, arousal=0.4), 1.15 * 1.2),
    ],
)
def test_amplitude_grows_with_emotion(emotion: Emotion, expected: float) -> None:
    assert amplitude(emotion) == pytest.approx(expected)
    assert amplitude(emotion, base=2.5) == pytest.approx(2.5 * expected)


@given(emotions)
def test_amplitude_formula(emotion: Emotion) -> None:
    expected = (1 + 0.3 * emotion.valence) * (1 + 0.5 * emotion.arousal)
    assert math.isclose(amplitude(emotion), expected)
