"""The app factory: OpenAI routes over a running System, every error in the one shape."""

from __future__ import annotations

from functools import partial

from quart import Response
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from mem8 import errors
from mem8.http.audio import Transcriptions
from mem8.http.chat import ChatCompletions
from mem8.http.dashboard import Dashboard
from mem8.http.edge import Edge
from mem8.http.embeddings import Embeddings
from mem8.http.errors import from_http_exception, from_unexpected, render
from mem8.http.files import Files
from mem8.http.gate import Gate
from mem8.http.memories import Memories
from mem8.http.metrics import Exposition
from mem8.http.models import Models
from mem8.http.observe import Observer
from mem8.http.recent import RecentChats
from mem8.http.responses import Responses
from mem8.http.stored import StoredCompletions
from mem8.http.usage import Tenants
from mem8.system import System


def create_app(system: System, gate: Gate | None = None) -> QuartTrio:
    """The app; `gate` when another endpoint (/mcp) shares its keys and counts."""
    app = QuartTrio("mem8")
    app.config["MAX_CONTENT_LENGTH"] = system.settings.max_body_bytes
    app.config["BODY_TIMEOUT"] = 60  # seconds to receive a request body
    app.config["RESPONSE_TIMEOUT"] = None  # streams may last as long as the backend takes
    app.config["PROPAGATE_EXCEPTIONS"] = False
    settings = system.settings
    edge = Edge(settings.host, settings.allowed_hosts, settings.cors_origins)
    gate = gate or Gate(system)
    observer = Observer(system)
    app.before_request(observer.begin)  # first: a refused request is logged too
    app.before_request(edge.guard)
    app.before_request(gate.admit)
    app.after_request(observer.answer)  # after-request hooks run in reverse: this one last
    app.after_request(edge.sign)
    app.after_request(gate.sign)
    _routes(app, system, gate)
    _error_handlers(app)
    return app


def _routes(app: QuartTrio, system: System, gate: Gate) -> None:
    recent = RecentChats()  # what chats told the persona, for the dashboard
    chat = ChatCompletions(system, gate, recent)
    models = Models(system)
    app.add_url_rule("/health", "health", partial(_health, system), methods=["GET"])
    app.add_url_rule("/metrics", "metrics", Exposition(system, gate).read, methods=["GET"])
    app.add_url_rule("/v1/models", "list_models", models.list, methods=["GET"])
    app.add_url_rule("/v1/models/<path:model>", "retrieve_model", models.retrieve, methods=["GET"])
    app.add_url_rule("/v1/chat/completions", "chat_completions", chat.create, methods=["POST"])
    _stored_routes(app, StoredCompletions(system))
    _response_routes(app, Responses(system, gate, chat))
    embeddings = Embeddings(system)
    app.add_url_rule("/v1/embeddings", "create_embedding", embeddings.create, methods=["POST"])
    transcriptions = Transcriptions(system)
    app.add_url_rule(
        "/v1/audio/transcriptions", "transcribe", transcriptions.create, methods=["POST"]
    )
    files = Files(system)
    app.add_url_rule("/v1/files", "upload_file", files.create, methods=["POST"])
    app.add_url_rule("/v1/files", "list_files", files.list, methods=["GET"])
    app.add_url_rule("/v1/files/<file_id>", "retrieve_file", files.retrieve, methods=["GET"])
    app.add_url_rule("/v1/files/<file_id>", "delete_file", files.delete, methods=["DELETE"])
    app.add_url_rule("/v1/files/<file_id>/content", "file_content", files.content, methods=["GET"])
    tenants = Tenants(system, gate)
    app.add_url_rule("/v1/usage", "usage", tenants.own, methods=["GET"])
    app.add_url_rule("/v1/admin/tenants", "tenants", tenants.every, methods=["GET"])
    memories = Memories(system)
    app.add_url_rule("/v1/memories", "list_memories", memories.list, methods=["GET"])
    app.add_url_rule("/v1/memories/search", "search_memories", memories.search, methods=["POST"])
    app.add_url_rule(
        "/v1/memories/<memory_id>", "retrieve_memory", memories.retrieve, methods=["GET"]
    )
    app.add_url_rule(
        "/v1/memories/<memory_id>", "forget_memory", memories.forget, methods=["DELETE"]
    )
    _dashboard_routes(app, Dashboard(system, gate, recent))


def _stored_routes(app: QuartTrio, stored: StoredCompletions) -> None:
    """Chat completions kept with `store: true` (mem8.http.stored)."""
    add = app.add_url_rule
    one = "/v1/chat/completions/<completion_id>"
    add("/v1/chat/completions", "list_chat_completions", stored.list, methods=["GET"])
    add(one, "retrieve_chat_completion", stored.retrieve, methods=["GET"])
    add(one, "update_chat_completion", stored.update, methods=["POST"])
    add(one, "delete_chat_completion", stored.delete, methods=["DELETE"])
    add(f"{one}/messages", "chat_completion_messages", stored.messages, methods=["GET"])


def _response_routes(app: QuartTrio, responses: Responses) -> None:
    """The Responses API (mem8.http.responses), on the chat completions' persona flow."""
    add = app.add_url_rule
    one = "/v1/responses/<response_id>"
    add("/v1/responses", "create_response", responses.create, methods=["POST"])
    add(one, "retrieve_response", responses.retrieve, methods=["GET"])
    add(one, "delete_response", responses.delete, methods=["DELETE"])
    add(f"{one}/input_items", "response_input_items", responses.input_items, methods=["GET"])
    add(f"{one}/cancel", "cancel_response", responses.cancel, methods=["POST"])


def _dashboard_routes(app: QuartTrio, dashboard: Dashboard) -> None:
    """The page, its assets, and its data under /dashboard/api/ (admin only: see the gate)."""
    add = app.add_url_rule
    add("/dashboard", "dashboard", dashboard.page, methods=["GET"])
    add("/dashboard/assets/<name>", "dashboard_asset", dashboard.asset, methods=["GET"])
    api = "/dashboard/api"
    add(f"{api}/personas", "dashboard_personas", dashboard.personas, methods=["GET"])
    add(f"{api}/tenants", "dashboard_tenants", dashboard.tenants, methods=["GET"])
    memories = dashboard.memories
    add(f"{api}/memories", "dashboard_memories", memories.list, methods=["GET"])
    add(
        f"{api}/memories/search",
        "dashboard_search_memories",
        memories.search,
        methods=["POST"],
    )
    add(
        f"{api}/memories/<memory_id>",
        "dashboard_forget_memory",
        memories.forget,
        methods=["DELETE"],
    )
    add(f"{api}/grid.png", "dashboard_grid", dashboard.grid, methods=["GET"])
    add(f"{api}/recent", "dashboard_recent", dashboard.recent_chats, methods=["GET"])
    add(f"{api}/sims", "dashboard_sims", dashboard.sims, methods=["GET"])
    add(f"{api}/sims/<run>/<name>", "dashboard_sim_file", dashboard.sim_file, methods=["GET"])


async def _health(system: System) -> Response:
    """OK while every actor runs; 503 naming those the supervisor gave up on, and why."""
    down = system.supervisor.down
    if not down:
        return Response("OK", content_type="text/plain")
    reasons = "; ".join(f"{name}: {why}" for name, why in sorted(down.items()))
    return render(errors.ActorUnavailable(f"actors down: {reasons}"))


def _error_handlers(app: QuartTrio) -> None:
    @app.errorhandler(errors.Mem8Error)
    async def _domain(error: errors.Mem8Error) -> Response:
        response = render(error)
        if isinstance(error, errors.InputTooLarge):  # refused before its body was read
            response.headers["Connection"] = "close"
        return response

    @app.errorhandler(HTTPException)
    async def _http(error: HTTPException) -> Response:
        """Quart's own refusals (an unknown route, a method not allowed ...) come before the
        body is read; a connection kept alive with it unread hung the next request on it (10
        of 60 in a loop), so the answer closes the connection."""
        response = render(from_http_exception(error))
        response.headers["Connection"] = "close"
        return response

    @app.errorhandler(Exception)
    async def _unexpected(error: Exception) -> Response:
        return render(from_unexpected(error))
