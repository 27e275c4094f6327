# The same-toolchain baseline, for bench/edge.sh: a workers-rs worker that answers every request with
# a fixed 302, written the way workers-rs documents it (bench/workerd/trivial-rs, built by
# bench/edge.sh).
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [(name = "trivial-rs", worker = .trivialRsWorker)],
  sockets = [(name = "http", address = "127.0.0.1:18789", http = (cfBlobHeader = "cf-blob"), service = "trivial-rs")],
);

const trivialRsWorker :Workerd.Worker = (
  modules = [
    (name = "index.js", esModule = embed "trivial-rs/build/index.js"),
    (name = "index_bg.wasm", wasm = embed "trivial-rs/build/index_bg.wasm"),
  ],
  compatibilityDate = "2026-04-26",
);
