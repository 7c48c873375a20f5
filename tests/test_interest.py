from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mem8.emotion import perceive
from mem8.interest import FEATURES, Stimulus, interest, subconscious_reply
from mem8.memory import Emotion
from mem8.personas import Traits, builtin_personas

THRESHOLD = 0.70
PERSONAS = builtin_personas()
TECHNICAL = PERSONAS["mem8-technical-v1"].traits
WEDDING = (
    "My sister Anna is getting married in Lisbon on June 3rd and I'm so nervous about my speech!"
)
GC_QUESTION = "How does the garbage collector in CPython handle reference cycles?"

unit = st.floats(0.0, 1.0)
traits = st.builds(
    Traits,
    openness=unit,
    conscientiousness=unit,
    extraversion=unit,
    agreeableness=unit,
    neuroticism=unit,
)


def level(traits: Traits, text: str, novelty: float = 1.0, addressed: bool = False) -> float:
    return interest(traits, Stimulus(text, perceive(text), novelty, addressed)).level


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("text", ["Hello!", "ok", "Hi there", "thanks"])
def test_greetings_stay_far_below_the_threshold(persona: str, text: str) -> None:
    assert level(PERSONAS[persona].traits, text) < THRESHOLD - 0.25


@pytest.mark.parametrize("persona", PERSONAS)
def test_a_personal_emotional_message_with_facts_is_imprinted(persona: str) -> None:
    assert level(PERSONAS[persona].traits, WEDDING) > THRESHOLD


def test_a_technical_question_engages_the_technical_analyst() -> None:
    assert level(TECHNICAL, GC_QUESTION) > THRESHOLD


@pytest.mark.parametrize("persona", PERSONAS)
@pytest.mark.parametrize("text", [WEDDING, GC_QUESTION, "What time is it?"])
def test_repeated_content_is_less_interesting(persona: str, text: str) -> None:
    traits = PERSONAS[persona].traits
    assert level(traits, text, novelty=0.1) < level(traits, text, novelty=1.0) - 0.2


def test_a_short_question_asks_for_little() -> None:
    assert level(TECHNICAL, "What time is it?") < THRESHOLD


def test_conscientiousness_draws_to_technical_questions() -> None:
    careful, careless = Traits(conscientiousness=0.9), Traits(conscientiousness=0.1)
    assert level(careful, GC_QUESTION) > level(careless, GC_QUESTION) + 0.1


def test_agreeableness_draws_to_feelings() -> None:
    text = "I feel so lonely since my father died last winter."
    assert level(Traits(agreeableness=0.95), text) > level(Traits(agreeableness=0.1), text) + 0.1


def test_neuroticism_draws_to_negative_charge() -> None:
    text = "Everything is going wrong and I am terrified"
    assert level(Traits(neuroticism=0.9), text) > level(Traits(neuroticism=0.1), text) + 0.1


def test_extraversion_draws_to_being_addressed() -> None:
    outgoing, reserved = Traits(extraversion=0.9), Traits(extraversion=0.1)
    text = "Hey Creative Writer, are you there?"
    gain_outgoing = level(outgoing, text, addressed=True) - level(outgoing, text)
    gain_reserved = level(reserved, text, addressed=True) - level(reserved, text)
    assert gain_outgoing > gain_reserved > 0


def test_openness_tires_faster_of_the_familiar() -> None:
    curious, closed = Traits(openness=0.9), Traits(openness=0.1)
    loss_curious = level(curious, GC_QUESTION) - level(curious, GC_QUESTION, novelty=0.0)
    loss_closed = level(closed, GC_QUESTION) - level(closed, GC_QUESTION, novelty=0.0)
    assert loss_curious > loss_closed > 0


def test_features_read_the_text() -> None:
    question = interest(TECHNICAL, Stimulus(GC_QUESTION, perceive(GC_QUESTION))).features
    wedding = interest(TECHNICAL, Stimulus(WEDDING, perceive(WEDDING))).features
    assert question["question"] == 1.0 and wedding["question"] == 0.0
    assert question["technical"] > 0.5 and wedding["technical"] == 0.0
    assert wedding["social"] > 0.5 and question["social"] == 0.0
    assert wedding["complexity"] > 0.6
    assert wedding["emotion"] > 0.3 and question["emotion"] == 0.0


def test_code_like_tokens_are_technical() -> None:
    text = "why does os.path.join return None when my_var is empty?"
    assert interest(TECHNICAL, Stimulus(text, Emotion())).features["technical"] > 0.5


def test_contributions_add_up_to_the_level() -> None:
    reading = interest(TECHNICAL, Stimulus(WEDDING, perceive(WEDDING), novelty=0.3))
    assert set(reading.contributions) == {*FEATURES, "habituation"}
    assert sum(reading.contributions.values()) == pytest.approx(reading.level)
    assert reading.contributions["habituation"] < 0
    assert reading.contributions["social"] > 0


def test_nothing_is_lost_to_habituation_when_all_is_new() -> None:
    reading = interest(TECHNICAL, Stimulus(GC_QUESTION, Emotion(), novelty=1.0))
    assert reading.contributions["habituation"] == pytest.approx(0.0)


@given(
    traits,
    st.text(),
    st.floats(-1.0, 1.0),
    unit,
    unit,
    st.floats(-0.5, 1.5),
    st.booleans(),
)
def test_level_stays_in_range(
    persona: Traits,
    text: str,
    valence: float,
    arousal: float,
    dominance: float,
    novelty: float,
    addressed: bool,
) -> None:
    emotion = Emotion(valence, arousal, dominance)
    reading = interest(persona, Stimulus(text, emotion, novelty, addressed))
    assert 0.0 <= reading.level <= 1.0
    assert all(0.0 <= value <= 1.0 for value in reading.features.values())
    assert sum(reading.contributions.values()) == pytest.approx(reading.level, abs=1e-9)


@pytest.mark.parametrize(
    ("level_", "reply"),
    [
        (0.452, "I understand. Interest level: 45.2%"),
        (0.4567, "I understand. Interest level: 45.7%"),
        (0.0, "I understand. Interest level: 0.0%"),
        (0.7, "I understand. Interest level: 70.0%"),
    ],
)
def test_subconscious_reply_has_the_spec_form(level_: float, reply: str) -> None:
    assert subconscious_reply(level_) == reply
