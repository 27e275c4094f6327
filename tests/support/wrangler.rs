//! The edge worker under `wrangler dev`: real workerd, miniflare's local KV and Queues, real HTTP.
//!
//! Needs `bash scripts/install-edge-tools.sh` once (wasm32 target, worker-build, wasm-bindgen, npm ci).
//! The worker is built once per test process; each [`Wrangler`] listens on a port of its own (port 0:
//! wrangler binds whatever is free and says which in its `Ready on` line, read back from its log) and
//! has a throwaway state directory, so tests never see each other's links or clicks. Dropping it (also
//! while a test panics) stops wrangler and its workerd children; a test process killed outright leaves
//! them running.
//!
//! [`Wrangler::start_with_probe`] runs the worker beside a small probe worker (`dlq-probe/`) in the
//! same `wrangler dev`, so on the same local queues: the probe sends messages to the clicks queue as
//! another worker version would, and forwards what reaches the dead-letter queue to a URL.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shared::LinkRecord;
use tempfile::TempDir;

use crate::{http, repo_root, wait_until};

/// The `EDGE_INGEST_TOKEN` of [`WranglerOptions::default`] (shared tokens are at least 32 bytes).
pub const TEST_INGEST_TOKEN: &str = "test-ingest-token-0123456789abcdefgh";
/// The `KV_SYNC_TOKEN` of [`WranglerOptions::default`].
pub const TEST_SYNC_TOKEN: &str = "test-kv-sync-token-0123456789abcdefg";

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
    /// `QUEUE_RETRY_MAX_DELAY` in seconds; `None` keeps the worker's default (10 minutes).
    pub queue_retry_max_delay: Option<u32>,
}

impl Default for WranglerOptions {
    fn default() -> Self {
        WranglerOptions {
            // The discard port: nothing answers, so batches are retried until a test looks.
            ingest_url: "http://127.0.0.1:9".to_owned(),
            ingest_token: TEST_INGEST_TOKEN.to_owned(),
            kv_sync_token: Some(TEST_SYNC_TOKEN.to_owned()),
            kv_cache_ttl: None,
            bot_management: false,
            queue_retry_max_delay: None,
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

impl WranglerOptions {
    /// The worker's vars and secrets, as `(name, value)`.
    fn vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![("INGEST_URL", self.ingest_url.clone()), ("EDGE_INGEST_TOKEN", self.ingest_token.clone())];
        vars.extend(self.kv_sync_token.iter().map(|token| ("KV_SYNC_TOKEN", token.clone())));
        vars.extend(self.kv_cache_ttl.iter().map(|ttl| ("KV_CACHE_TTL", ttl.to_string())));
        vars.push(("CF_BOT_MANAGEMENT", self.bot_management.to_string()));
        vars.extend(self.queue_retry_max_delay.iter().map(|secs| ("QUEUE_RETRY_MAX_DELAY", secs.to_string())));
        vars
    }
}

impl Wrangler {
    /// Builds the worker if needed, starts `wrangler dev` on a loopback port of its choosing and waits
    /// until the worker answers.
    pub fn start(options: WranglerOptions) -> Self {
        let dir = tempfile::Builder::new().prefix("edge-wrangler-").tempdir().expect("a temp dir");
        let vars: Vec<String> = options.vars().iter().map(|(name, value)| format!("{name}:{value}")).collect();
        let mut args = vec!["--config".to_owned(), repo_root().join("wrangler.toml").display().to_string()];
        args.extend(vars.iter().flat_map(|var| ["--var".to_owned(), var.clone()]));
        Self::run(options, dir, &args)
    }

    /// Starts the worker beside the probe worker (see the module's documentation), which forwards every
    /// dead-lettered message's body to `dead_letters_url` (`POST`, headers `X-Queue` and `X-Attempts`).
    /// [`Wrangler::url`] reaches the worker through the probe, which passes on every request but its own
    /// (`/__probe/...`) unchanged.
    ///
    /// Only the first worker of a multi-worker `wrangler dev` takes `--var`s, so the worker runs from a
    /// copy of `wrangler.toml` in the state directory (with `main` made absolute), and its vars go in a
    /// `.dev.vars` file beside it.
    pub fn start_with_probe(options: WranglerOptions, dead_letters_url: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("edge-wrangler-").tempdir().expect("a temp dir");
        let root = repo_root();
        let config = std::fs::read_to_string(root.join("wrangler.toml")).expect("read wrangler.toml");
        let main = root.join("crates/edge-worker/build/index.js");
        let config: String = config
            .lines()
            .map(|line| {
                if line.starts_with("main = ") {
                    format!("main = {:?}", main.display().to_string())
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let edge = dir.path().join("edge");
        std::fs::create_dir(&edge).expect("a config directory");
        std::fs::write(edge.join("wrangler.toml"), config).expect("write the worker's config");
        let dev_vars: String = options.vars().iter().map(|(name, value)| format!("{name}={value:?}\n")).collect();
        std::fs::write(edge.join(".dev.vars"), dev_vars).expect("write the worker's vars");
        let probe = root.join("tests/support/dlq-probe/wrangler.toml");
        let args = [
            "--config".to_owned(),
            probe.display().to_string(),
            "--config".to_owned(),
            edge.join("wrangler.toml").display().to_string(),
            "--var".to_owned(),
            format!("DEAD_LETTERS_URL:{dead_letters_url}"),
        ];
        Self::run(options, dir, &args)
    }

    fn run(options: WranglerOptions, dir: TempDir, config_args: &[String]) -> Self {
        build_worker();
        let root = repo_root();
        let wrangler = root.join("node_modules/.bin/wrangler");
        assert!(wrangler.exists(), "{} is missing: run scripts/install-edge-tools.sh", wrangler.display());
        let log = File::create(dir.path().join("wrangler.log")).expect("a log file");
        let mut command = Command::new(&wrangler);
        command
            .current_dir(&root)
            .arg("dev")
            .args(config_args)
            .args(["--local", "--ip", "127.0.0.1", "--show-interactive-dev-session=false"])
            // Port 0 everywhere: wrangler and workerd bind free ports themselves; the one served on is read back.
            .args(["--port", "0", "--inspector-port", "0"])
            .arg("--persist-to")
            .arg(dir.path().join("state"))
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
        let mut wrangler = Wrangler { child, port: 0, options, dir };
        wrangler.port = wait_until("wrangler dev to say where it listens", Duration::from_secs(120), || {
            if let Ok(Some(status)) = wrangler.child.try_wait() {
                panic!("wrangler dev exited with {status}:\n{}", wrangler.logs());
            }
            ready_port(&wrangler.logs())
        });
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

    /// Sends these message bodies to the clicks queue as text, through the probe worker (only after
    /// [`Wrangler::start_with_probe`]), as a worker of another version would.
    pub fn send_to_queue(&self, bodies: &[String]) {
        let mut response = http()
            .post(self.url("/__probe/send"))
            .send(serde_json::to_string(bodies).expect("JSON"))
            .expect("the probe");
        let text = response.body_mut().read_to_string().unwrap_or_default();
        assert_eq!(response.status(), 200, "the probe answered {text}");
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

/// The port of wrangler's `Ready on http://127.0.0.1:PORT` line.
fn ready_port(logs: &str) -> Option<u16> {
    let (_, rest) = logs.split_once("Ready on http://127.0.0.1:")?;
    rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
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
