# The runtime's ceiling, for bench/edge.sh: a JavaScript worker that answers every request with a
# fixed 302.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "trivial-js", worker = .trivialJsWorker)],
  sockets = [(name = "http", address = "127.0.0.1:18788", http = (cfBlobHeader = "cf-blob"), service = "trivial-js")],
);

const trivialJsWorker :Workerd.Worker = (
  modules = [(name = "trivial-js.js", esModule = embed "trivial-js.js")],
  compatibilityDate = "2026-04-26",
);
