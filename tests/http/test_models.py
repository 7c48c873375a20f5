"""GET /health and the models routes."""

from __future__ import annotations

import httpx
import openai
import pytest
from openai import OpenAI

from tests.support.server import RunningServer


def test_health_answers_ok(server: RunningServer) -> None:
    response = httpx.get(server.root + "/health")
    assert response.status_code == 200
    assert response.text == "OK"


def test_models_lists_the_spec_personas(client: OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == [
        "mem8-creative-v1",
        "mem8-technical-v1",
        "mem8-counselor-v1",
    ]
    for model in models.data:
        assert model.object == "model"
        assert model.owned_by == "mem8"
        assert isinstance(model.created, int)


def test_one_model(client: OpenAI) -> None:
    model = client.models.retrieve("mem8-counselor-v1")
    assert model.id == "mem8-counselor-v1"


@pytest.mark.parametrize("model", ["mem8-unknown", "org/some-model"])
def test_unknown_model_is_404(client: OpenAI, model: str) -> None:
    with pytest.raises(openai.NotFoundError) as caught:
        client.models.retrieve(model)
    assert caught.value.body == {
        "message": f"Model '{model}' not found",
        "type": "invalid_request_error",
        "param": "model",
        "code": 404,
    }
