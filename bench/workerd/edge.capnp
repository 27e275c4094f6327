# The edge worker on plain `workerd serve`, for bench/edge.sh. KV and the click queue are small local
# workers: every click still does its KV read and queue send through the runtime's bindings, without
# miniflare's simulators or wrangler's proxy in the way. The baselines it is compared with run in
# processes of their own (trivial-js.capnp, trivial-rs.capnp), so that each process's CPU time,
# garbage collection included, is one worker's alone.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "edge", worker = .edgeWorker),
    (name = "kv", worker = .kvStub),
    (name = "queue", worker = .queueStub),
  ],
  # bench/edge.sh overrides the address with --socket-addr. With CF_BLOB=1 it sends Cloudflare's request
  # metadata (cf.json) in the cf-blob header, from which workerd builds `request.cf`.
  sockets = [(name = "http", address = "127.0.0.1:18787", http = (cfBlobHeader = "cf-blob"), service = "edge")],
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

const kvStub :Workerd.Worker = (
  modules = [(name = "kv.js", esModule = embed "kv.js")],
  compatibilityDate = "2026-04-26",
);

const queueStub :Workerd.Worker = (
  modules = [(name = "queue.js", esModule = embed "queue.js")],
  compatibilityDate = "2026-04-26",
);
