//! The real `api` binary (built by `scripts/test.sh`) on a fresh PostgreSQL database and a free port.

use std::fs::File;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tempfile::TempDir;

use crate::{free_port, http, repo_root, wait_until};

/// The PostgreSQL server the tests use; each [`ApiProcess`] gets a database of its own on it.
fn server_url() -> String {
    std::env::var("E2E_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// What to start the API with, beyond its database and port.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Extra environment variables (`EDGE_INGEST_TOKEN`, `KV_SINK`, `KV_SYNC_URL`, ...).
    pub env: Vec<(String, String)>,
    /// The port to listen on (the worker must know it before the API starts); default: a free one.
    pub port: Option<u16>,
}

/// A running `api serve`; stopped with SIGTERM (a graceful shutdown) when dropped.
pub struct ApiProcess {
    child: Option<Child>,
    port: u16,
    database_url: String,
    options: ApiOptions,
    dir: TempDir,
}

pub struct Brand {
    pub id: String,
    pub api_key: String,
    pub pixel_id: String,
}

/// A number no other ApiProcess of this test process has.
fn unique() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

fn binary() -> PathBuf {
    let path = repo_root().join("target/debug/api");
    assert!(path.exists(), "{} is missing: run `cargo build -p api` (scripts/test.sh does)", path.display());
    path
}

impl ApiProcess {
    /// Starts the API on a new, empty database (the binary creates and migrates it).
    pub fn start(options: ApiOptions) -> Self {
        let database_url = format!("{}/e2e_{}_{}", server_url(), std::process::id(), unique());
        let dir = tempfile::Builder::new().prefix("e2e-api-").tempdir().expect("a temp dir");
        let port = options.port.unwrap_or_else(free_port);
        let mut api = ApiProcess { child: None, port, database_url, options, dir };
        api.resume();
        api
    }

    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "info")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Replaces one environment variable for the next [`ApiProcess::resume`].
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.options.env.retain(|(k, _)| k != name);
        self.options.env.push((name.to_owned(), value.to_owned()));
    }

    /// Starts the process again after [`ApiProcess::stop`], on the same port and database.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "already running");
        let log = File::options().create(true).append(true).open(self.dir.path().join("api.log")).expect("log");
        let child = self
            .command()
            .arg("serve")
            .env("BIND_ADDR", format!("127.0.0.1:{}", self.port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the api binary");
        self.child = Some(child);
        let agent = http();
        let ready = self.url("/readyz");
        wait_until("the API to be ready", Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("api exited with {status}:\n{}", self.logs());
            }
            agent.get(&ready).call().ok().filter(|r| r.status() == 200).map(drop)
        });
    }

    /// Stops the process gracefully (SIGTERM) and waits for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let _ = child.wait();
        }
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("api.log")).unwrap_or_default()
    }

    /// `api brand create`, parsed from its three printed lines.
    pub fn create_brand(&self, name: &str) -> Brand {
        let output = self.command().args(["brand", "create", "--name", name]).output().expect("run api brand create");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let field = |name: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
                .unwrap_or_else(|| panic!("no {name} line in {stdout}"))
                .to_owned()
        };
        Brand { id: field("brand_id"), api_key: field("api_key"), pixel_id: field("pixel_id") }
    }

    /// Runs another subcommand of the binary against this database, e.g. `["kv", "resync"]`.
    pub fn run(&self, args: &[&str]) -> String {
        let output = self.command().args(args).output().expect("run the api binary");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// A JSON request with the brand's key; returns the status and the parsed body (Null when empty).
    pub fn call(&self, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
        let agent = http();
        let url = self.url(path);
        let auth = format!("Bearer {key}");
        let response = match (method, body) {
            ("GET", _) => agent.get(&url).header("Authorization", &auth).call(),
            ("DELETE", _) => agent.delete(&url).header("Authorization", &auth).call(),
            ("POST", Some(b)) => agent
                .post(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            ("PATCH", Some(b)) => agent
                .patch(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            ("PUT", Some(b)) => agent
                .put(&url)
                .header("Authorization", &auth)
                .header("Content-Type", "application/json")
                .send(b.to_string()),
            other => panic!("unsupported request {other:?}"),
        };
        let mut response = response.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.body_mut().read_to_string().unwrap_or_default();
        (status, if text.is_empty() { Value::Null } else { serde_json::from_str(&text).expect("JSON") })
    }

    /// Counts rows with a SQL query through psql (the tests have no async runtime).
    pub fn sql_scalar(&self, query: &str) -> String {
        let output = Command::new("psql").args(["-qtA", &self.database_url, "-c", query]).output().expect("run psql");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for ApiProcess {
    fn drop(&mut self) {
        self.stop();
        // Leave no database behind (best effort: a failed drop only costs disk).
        if let Some(name) = self.database_url.rsplit('/').next() {
            let _ = Command::new("psql")
                .args([
                    "-q",
                    &format!("{}/postgres", server_url()),
                    "-c",
                    &format!("drop database if exists {name} with (force)"),
                ])
                .output();
        }
    }
}
