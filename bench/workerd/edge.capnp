# The edge worker and a trivial worker side by side on plain `workerd serve`, for bench/edge.sh.
# KV and the click queue are small local workers: every click still does its KV read and queue send
# through the runtime's bindings, without miniflare's simulators or wrangler's proxy in the way.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edgeWorker),
    (name = "trivial-js", worker = .trivialJsWorker),
    (name = "trivial-rs", worker = .trivialRsWorker),
    (name = "kv", worker = .kvStub),
    (name = "queue", worker = .queueStub),
  ],
  sockets = [
    # bench/edge.sh overrides these addresses with --socket-addr.
    (name = "edge", address = "127.0.0.1:18787", http = (), service = "edge"),
    (name = "trivial-js", address = "127.0.0.1:18788", http = (), service = "trivial-js"),
    (name = "trivial-rs", address = "127.0.0.1:18789", http = (), service = "trivial-rs"),
  ],
);

# The worker exactly as scripts/build-worker.sh builds it.
const edgeWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "../../crates/edge-worker/build/index.js"),
    (name = "index_bg.wasm", wasm = embed "../../crates/edge-worker/build/index_bg.wasm"),
  ],
  compatibilityDate = "2026-04-26",
  bindings = [
    (name = "LINKS", kvNamespace = "kv"),
    (name = "CLICKS", queue = "queue"),
    (name = "KV_CACHE_TTL", text = "60"),
    (name = "INGEST_URL", text = "http://127.0.0.1:9"),
  ],
);

# The runtime's ceiling: a JavaScript worker that answers every request with a fixed 302.
const trivialJsWorker :Workerd.Worker = (
  modules = [(name = "trivial-js.js", esModule = embed "trivial-js.js")],
  compatibilityDate = "2026-04-26",
);

# The same-toolchain baseline: a workers-rs worker that answers every request with a fixed 302
# (bench/workerd/trivial-rs, built by bench/edge.sh).
const trivialRsWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "trivial-rs/build/index.js"),
    (name = "index_bg.wasm", wasm = embed "trivial-rs/build/index_bg.wasm"),
  ],
  compatibilityDate = "2026-04-26",
);

const kvStub :Workerd.Worker = (
  modules = [(name = "kv.js", esModule = embed "kv.js")],
  compatibilityDate = "2026-04-26",
);

const queueStub :Workerd.Worker = (
  modules = [(name = "queue.js", esModule = embed "queue.js")],
  compatibilityDate = "2026-04-26",
);
