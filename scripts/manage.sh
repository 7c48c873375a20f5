#!/usr/bin/env bash
# The project's one task runner: what CI runs, and what the README shows.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
cd "$ROOT"

usage() {
  cat <<'USAGE'
usage: ./scripts/manage.sh COMMAND [ARGS]

  openai-api [--host H] [--port P] [--backend B]   set up the environment if needed, then serve
  test [PYTEST ARGS]                               set up if needed, run the whole test suite
  bench NAME [ARGS]                                run benchmark bench/NAME.py (http, llm, locomo, senses, ...)
  cli ARGS                                         the mem8 command (e.g. cli replay JOURNAL)
  lint                                             ruff and mypy, as CI runs them
  setup | build                                    only create or update the environment
USAGE
}

setup() { "$ROOT/scripts/setup.sh"; }

command="${1:-}"
[ $# -gt 0 ] && shift
case "$command" in
  openai-api) setup; exec "$VENV/bin/mem8" serve "$@" ;;
  test) setup; exec "$VENV/bin/pytest" "$@" ;;
  bench)
    name="${1:?bench needs a NAME: one of $(cd bench && ls [a-z]*.py | sed 's/\.py$//' | tr '\n' ' ')}"
    shift
    [ -f "bench/$name.py" ] || { echo "no benchmark bench/$name.py" >&2; exit 2; }
    setup; exec "$VENV/bin/python" -m "bench.$name" "$@" ;;
  cli) setup; exec "$VENV/bin/mem8" "$@" ;;
  lint)
    setup
    "$VENV/bin/ruff" check mem8 tests bench
    "$VENV/bin/ruff" format --check mem8 tests bench
    "$VENV/bin/mypy" ;;
  setup | build) setup ;;
  -h | --help | help | "") usage ;;
  *) echo "unknown command: $command" >&2; usage >&2; exit 2 ;;
esac
