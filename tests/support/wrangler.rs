//! The edge worker under `wrangler dev`: real workerd, miniflare's local KV and Queues, real HTTP.
//!
//! Needs `bash scripts/install-edge-tools.sh` once (wasm32 target, worker-build, wasm-bindgen, npm ci).
//! The worker is built once per test process; each [`Wrangler`] gets its own ports and a throwaway
//! state directory, so tests never see each other's links or clicks. Dropping it (also while a test
//! panics) stops wrangler and its workerd children; a test process killed outright leaves them running.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shared::LinkRecord;
use tempfile::TempDir;

use crate::{free_port, http, repo_root, wait_until};

/// What to start the worker with. `Default` gives an ingest URL nobody listens on and fresh tokens.
#[derive(Debug, Clone)]
pub struct WranglerOptions {
    /// `INGEST_URL`: where the queue consumer posts click batches (`{ingest_url}/internal/clicks`).
    pub ingest_url: String,
    /// `EDGE_INGEST_TOKEN`: the bearer token the consumer presents.
    pub ingest_token: String,
    /// `KV_SYNC_TOKEN`: the bearer token of the link-sync routes; `None` disables them.
    pub kv_sync_token: Option<String>,
    /// `KV_CACHE_TTL` in seconds; `None` keeps wrangler.toml's.
    pub kv_cache_ttl: Option<u32>,
    /// `CF_BOT_MANAGEMENT`: whether clicks read Bot Management's verdict from `request.cf`.
    pub bot_management: bool,
}

impl Default for WranglerOptions {
    fn default() -> Self {
        WranglerOptions {
            // The discard port: nothing answers, so batches are retried until a test looks.
            ingest_url: "http://127.0.0.1:9".to_owned(),
            ingest_token: "test-ingest-token".to_owned(),
            kv_sync_token: Some("test-kv-sync-token".to_owned()),
            kv_cache_ttl: None,
            bot_management: false,
        }
    }
}

/// A running `wrangler dev`; stopped (with its workerd children) when dropped.
pub struct Wrangler {
    child: Child,
    port: u16,
    options: WranglerOptions,
    dir: TempDir,
}

/// Builds the worker (scripts/build-worker.sh) once per process; every later call waits for that build.
pub fn build_worker() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| {
        let status = Command::new("bash")
            .arg(repo_root().join("scripts/build-worker.sh"))
            .current_dir(repo_root())
            .stdin(Stdio::null())
            .status()
            .expect("run scripts/build-worker.sh");
        assert!(status.success(), "building the worker failed; did scripts/install-edge-tools.sh run?");
    });
}

impl Wrangler {
    /// Builds the worker if needed, starts `wrangler dev` on free loopback ports and waits until the
    /// worker answers.
    pub fn start(options: WranglerOptions) -> Self {
        build_worker();
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(wrangler.exists(), "{} is missing: run scripts/install-edge-tools.sh", wrangler.display());
        let dir = tempfile::Builder::new().prefix("edge-wrangler-").tempdir().expect("a temp dir");
        let log = File::create(dir.path().join("wrangler.log")).expect("a log file");
        let (port, inspector_port) = (free_port(), free_port());

        let mut vars =
            vec![format!("INGEST_URL:{}", options.ingest_url), format!("EDGE_INGEST_TOKEN:{}", options.ingest_token)];
        vars.extend(options.kv_sync_token.iter().map(|token| format!("KV_SYNC_TOKEN:{token}")));
        vars.extend(options.kv_cache_ttl.iter().map(|ttl| format!("KV_CACHE_TTL:{ttl}")));
        vars.push(format!("CF_BOT_MANAGEMENT:{}", options.bot_management));

        let mut command = Command::new(&wrangler);
        command
            .current_dir(&root)
            .args(["dev", "--local", "--ip", "127.0.0.1", "--show-interactive-dev-session=false"])
            .args(["--port", &port.to_string(), "--inspector-port", &inspector_port.to_string()])
            .arg("--persist-to")
            .arg(dir.path().join("state"))
            .args(vars.iter().flat_map(|var| ["--var", var.as_str()]))
            // No prompts, no metrics, no look-ups of Cloudflare's request metadata: the run is offline.
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .env("CLOUDFLARE_CF_FETCH_ENABLED", "false")
            .env("WRANGLER_LOG_PATH", dir.path().join("wrangler-debug.log"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone the log handle"))
            .stderr(log)
            // Its own process group, so dropping it can stop workerd too.
            .process_group(0);
        let child = command.spawn().expect("start wrangler dev");
        let mut wrangler = Wrangler { child, port, options, dir };
        wrangler.wait_until_ready();
        wrangler
    }

    fn wait_until_ready(&mut self) {
        let agent = http();
        let probe_url = self.url("/_ready");
        wait_until("wrangler dev to answer", Duration::from_secs(120), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("wrangler dev exited with {status}:\n{}", self.logs());
            }
            // The worker answers 404 for this path; wrangler's own proxy answers other statuses while starting.
            let mut response = agent.get(&probe_url).call().ok()?;
            let worker_answered = response.status() == 404 && response.headers().contains_key("cache-control");
            // Read the page, or workerd logs a broken pipe for the body it was still writing.
            let _ = response.body_mut().read_to_vec();
            worker_answered.then_some(())
        });
    }

    /// Base URL of the worker, e.g. `http://127.0.0.1:8787`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Absolute URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The options it was started with.
    pub fn options(&self) -> &WranglerOptions {
        &self.options
    }

    /// wrangler's output so far (the worker's console lines included).
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("wrangler.log")).unwrap_or_default()
    }

    /// Writes link records into the local KV through the worker's sync route, as the API does.
    pub fn kv_put(&self, records: &[(&str, &LinkRecord)]) {
        let body: Vec<_> =
            records.iter().map(|(code, record)| serde_json::json!({"key": code, "value": record.to_json()})).collect();
        let answer = self.sync("/_internal/kv/bulk", &serde_json::Value::from(body));
        assert_eq!(answer, serde_json::json!({"written": records.len()}));
    }

    /// Deletes link records from the local KV through the worker's sync route.
    pub fn kv_delete(&self, codes: &[&str]) {
        let answer = self.sync("/_internal/kv/bulk/delete", &serde_json::json!(codes));
        assert_eq!(answer, serde_json::json!({"deleted": codes.len()}));
    }

    fn sync(&self, path: &str, body: &serde_json::Value) -> serde_json::Value {
        let token = self.options.kv_sync_token.as_deref().expect("started with a kv_sync_token");
        let mut response = http()
            .post(self.url(path))
            .header("Authorization", format!("Bearer {token}"))
            .header("Content-Type", "application/json")
            .send(body.to_string())
            .expect("the sync route answers");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(response.status(), 200, "{path} answered {text}");
        serde_json::from_str(&text).expect("a JSON answer")
    }
}

impl Drop for Wrangler {
    fn drop(&mut self) {
        let group = Pid::from_raw(self.child.id() as i32);
        // SIGTERM lets wrangler stop workerd cleanly; SIGKILL the whole group if it lingers.
        let _ = killpg(group, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = killpg(group, Signal::SIGKILL);
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- wrangler dev output ---\n{}", self.logs());
        }
    }
}
