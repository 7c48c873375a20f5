"""MEM8_RUNTIME=ray: grid regions and personas in Ray actors on a local cluster (two CPUs, one
worker process per actor) give the same answers and the same state digests as in-process, with
one and four regions; a killed worker or a crash there fails its ask clearly and the actor is
restarted, a region refilled."""

from __future__ import annotations

import contextlib
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from bench import locomo
from mem8 import errors
from mem8.actors.journal import read_journal
from mem8.actors.memory import recall_request
from mem8.actors.messages import (
    Accepted,
    Ack,
    Chat,
    GridImprint,
    GridRecalled,
    Percept,
    Remember,
    Remembered,
    Token,
    Turn,
)
from mem8.actors.ray_host import RayPlacement
from mem8.backends.fake import ScriptedLLM, UnavailableLLM
from mem8.cli import main
from mem8.clock import VirtualClock
from mem8.config import Settings
from mem8.system import System, open_system

ray = pytest.importorskip("ray", reason="ray is not installed (pip install ray==2.60.0)")

SIMS = Path(__file__).resolve().parents[2] / "sims"
NOW = 1_700_000_000.0
ADA, BEN = "mem8-counselor-v1", "mem8-creative-v1"
CHATS = [
    (ADA, "I moved to Porto last spring and I still miss my sister in Lisbon."),
    (BEN, "Write me a line about the sea at Porto."),
    (ADA, "My sister Maria is a nurse; she works nights at the hospital."),
    (BEN, "What did I tell you about the sea?"),
    (ADA, "Where does my sister live, and what does she do?"),
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def settings_for(tmp_path: Path, runtime: str, tiles: int) -> Settings:
    everyone = Settings().personas
    (tmp_path / runtime).mkdir(exist_ok=True)
    return Settings(
        storage=str(tmp_path / runtime / "mem8.db"),
        encoder="lexical",
        llm_backend="scripted",
        ask_timeout=20.0,
        grid_tiles=tiles,
        runtime=runtime,
        personas={pid: everyone[pid] for pid in (ADA, BEN)},
        default_persona=ADA,
    )


def remote(system: System) -> list[str]:
    """The actors in Ray actors (none in-process)."""
    placement = system.supervisor.placement
    return sorted(placement.hosted) if isinstance(placement, RayPlacement) else []


async def chat_session(settings: Settings) -> tuple[list[str], dict[str, str], list[str]]:
    """Each chat's answer, the state digests and the actors placed in Ray."""
    scripts = {
        pid: ScriptedLLM(cycle=[f"{pid} says line {i}." for i in range(9)]) for pid in (ADA, BEN)
    }
    clock = VirtualClock(NOW)
    answers = []
    async with open_system(settings, clock=clock, backends=scripts, run="session") as system:
        for i, (persona, text) in enumerate(CHATS):
            clock.set(NOW + 600 * i)
            chat = Chat(
                f"chat-{i}", persona, "t", "alice", clock.now(), [Turn("user", text)], seed=i
            )
            with await system.persona(persona).open_stream(chat) as replies:
                said = [r.text async for r in replies if isinstance(r, Token)]
            answers.append("".join(said))
        digests = await system.state_digests()
        placed = remote(system)
    return answers, {**digests, **journaled(settings)}, placed


def journaled(settings: Settings) -> dict[str, str]:
    """The state digests the journal's last record holds (written at the system's close)."""
    directory = settings.journal_dir()
    assert directory is not None
    states = [r for r in read_journal(directory).records if r.kind == "state"]
    return {f"journal {name}": digest for name, digest in states[-1].body["digests"].items()}


@pytest.mark.parametrize("tiles", [1, 2])
def test_a_chat_session_is_the_same_in_ray_actors(
    cluster: None, tmp_path: Path, tiles: int
) -> None:
    here = trio.run(chat_session, settings_for(tmp_path, "local", tiles))
    there = trio.run(chat_session, settings_for(tmp_path, "ray", tiles))
    assert here[2] == []
    regions = [f"region:{i}" for i in range(tiles * tiles)]
    assert there[2] == sorted([f"persona:{ADA}", f"persona:{BEN}", *regions])
    assert there[0] == here[0] and all(here[0])
    assert there[1] == here[1]
    assert set(here[1]) == {"memory", "grid", "journal memory", "journal grid"}


def test_a_persona_whose_backend_cannot_travel_stays_here(cluster: None, tmp_path: Path) -> None:
    async def main_() -> None:
        backends = {ADA: ScriptedLLM(), BEN: UnavailableLLM()}
        settings = settings_for(tmp_path, "ray", 1)
        async with open_system(settings, backends=backends, journal=False) as system:
            assert remote(system) == [f"persona:{ADA}", "region:0"]
            chat = Chat("c-1", BEN, "t", "alice", NOW, [Turn("user", "Hello")])
            with await system.persona(BEN).open_stream(chat) as replies:
                assert isinstance(await anext(replies), Accepted)
                with pytest.raises(errors.BackendUnavailable, match="the test backend is down"):
                    await anext(replies)

    trio.run(main_)


async def conversation(settings: Settings) -> tuple[list[list[str]], dict[str, str]]:
    """The first conversation of `bench locomo`'s data (its first sessions, to keep the test
    short) remembered session by session as the benchmark does (with fixed request ids, which
    memory ids are made from), then its questions recalled:
    the ids each question finds, and the state digests."""
    (first, *_) = locomo.load(locomo.DATA)
    talk = dataclasses.replace(first, sessions=first.sessions[:4], questions=first.questions[:40])
    clock = VirtualClock(talk.sessions[0][0].created)
    async with open_system(settings, clock=clock, journal=False, chat=False) as system:
        for i, session in enumerate(talk.sessions):  # as locomo.remember, with fixed ids
            clock.set(session[0].created)
            said = [Percept(t.text, f"locomo:{t.dia_id}", "text", t.created) for t in session]
            kept = Remember(f"session-{i}", "locomo", talk.sample_id, locomo.PERSONA, said, 1.0)
            await system.memory.ask(kept, Remembered)
        clock.set(talk.sessions[-1][-1].created + locomo.ASKED_AFTER)
        found = []
        for question in talk.questions:
            vector = system.encoder.embed_batch([question.text])[0]
            recall = recall_request(
                question.text, vector, "locomo", talk.sample_id, locomo.PERSONA, 5, clock.now()
            )
            hits = (await system.grid.ask(recall, GridRecalled)).hits
            found.append([memory_id for memory_id, _ in hits])
        return found, await system.state_digests()


@pytest.mark.parametrize("tiles", [1, 2])
def test_a_locomo_conversation_is_recalled_alike_in_ray_actors(
    cluster: None, tmp_path: Path, tiles: int
) -> None:
    here = trio.run(conversation, settings_for(tmp_path, "local", tiles))
    there = trio.run(conversation, settings_for(tmp_path, "ray", tiles))
    assert all(here[0])
    assert there == here


@pytest.mark.parametrize("scenario", sorted(p.name for p in SIMS.glob("*.toml")))
def test_every_shipped_scenario_runs_alike_in_ray_actors(
    cluster: None, tmp_path: Path, scenario: str
) -> None:
    for tiles in ("1", "2"):
        runs = {runtime: tmp_path / f"{runtime}-{tiles}" for runtime in ("local", "ray")}
        for runtime, out in runs.items():
            flags = ["--tiles", tiles, "--runtime", runtime, "--backend", "scripted"]
            assert main(["sim", "run", str(SIMS / scenario), "--out", str(out), *flags]) == 0
        here, there = (json.loads((out / "run.json").read_text()) for out in runs.values())
        assert there["digests"] == here["digests"]
        transcripts = [(out / "transcript.jsonl").read_bytes() for out in runs.values()]
        assert transcripts[0] == transcripts[1]


def test_a_killed_worker_or_a_crash_fails_its_ask_and_is_restarted(
    cluster: None, tmp_path: Path
) -> None:
    slow = ScriptedLLM(token_delay=0.05, cycle=[" ".join(["word"] * 400)])
    settings = settings_for(tmp_path, "ray", 2)

    async def main_() -> None:
        async with open_system(settings, backends={ADA: slow, BEN: ScriptedLLM()}) as system:
            placement = system.supervisor.placement
            assert isinstance(placement, RayPlacement)
            hosted = placement.hosted
            percept = Percept("Maria lives in Lisbon by the sea.", "t:1", "text", NOW)
            remember = Remember("r-1", "t", "alice", ADA, [percept], 1.0)
            await system.memory.ask(remember, Remembered)
            query = system.encoder.embed_batch(["Maria Lisbon"])[0]
            recall = recall_request("Maria Lisbon", query, "t", "alice", ADA, 5, NOW)
            before = (await system.grid.ask(recall, GridRecalled)).hits
            assert before

            chat = Chat("c-1", ADA, "t", "alice", NOW, [Turn("user", "Tell me a story")])
            with await system.persona(ADA).open_stream(chat) as replies:
                assert isinstance(await anext(replies), Accepted)
                assert isinstance(await anext(replies), Token)
                ray.kill(hosted[f"persona:{ADA}"])
                with pytest.raises(errors.ActorUnavailable, match=f"persona:{ADA}.*worker died"):
                    async for _ in replies:
                        pass
            with trio.fail_after(60):
                while system.supervisor.restarts[f"persona:{ADA}"] == 0:
                    await trio.sleep(0.1)

            for i in range(4):  # every region: the one holding Maria's memory is among them
                ray.kill(hosted[f"region:{i}"])
            with trio.fail_after(60):
                while any(system.supervisor.restarts[f"region:{i}"] == 0 for i in range(4)):
                    await trio.sleep(0.1)
                after: object = None
                while after != before:  # refilled from the store (Regrid) once restarted
                    await trio.sleep(0.2)
                    recall = dataclasses.replace(recall, request_id=f"again-{trio.current_time()}")
                    with contextlib.suppress(errors.ActorUnavailable):  # not yet back
                        after = (await system.grid.ask(recall, GridRecalled)).hits

            region = system.supervisor.refs["region:0"]  # a handler's bug there: a crash
            # its ask fails with its own failure, or (a race in the worker) as cut short by
            # the crash it caused: either names the actor and what it was handling
            crashed = "region:0 failed handling|region:0: it crashed: grid_imprint"
            with pytest.raises(errors.ActorUnavailable, match=crashed):
                await region.ask(GridImprint("bad", [{}], NOW), Ack)
            with trio.fail_after(60):
                while system.supervisor.restarts["region:0"] < 2:
                    await trio.sleep(0.1)
            assert system.supervisor.down == {}

    trio.run(main_)
