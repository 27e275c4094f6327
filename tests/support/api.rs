//! The real `api` binary (built by `scripts/test.sh`) on a fresh PostgreSQL database. Its two listeners
//! (public and internal) bind port 0 unless told otherwise, and the ports they got are read back from
//! its log.

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

use crate::{http, repo_root, wait_until};

/// The PostgreSQL server the tests use; each [`ApiProcess`] gets a database of its own on it.
fn server_url() -> String {
    std::env::var("E2E_POSTGRES_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".to_owned())
}

/// What to start the API with, beyond its database and ports.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    /// Extra environment variables (`EDGE_INGEST_TOKEN`, `KV_SINK`, `KV_SYNC_URL`, ...).
    pub env: Vec<(String, String)>,
    /// The public listener's port; default: whatever port 0 gives.
    pub port: Option<u16>,
    /// The internal listener's port (`/internal/*`; the worker posts clicks there, so it may have to know
    /// it before the API starts); default: whatever port 0 gives.
    pub internal_port: Option<u16>,
    /// Arguments after `serve` (`--no-background`).
    pub serve_args: Vec<String>,
    /// A replica of the tests' PostgreSQL server (its URL without a database): `DATABASE_READ_URL` is this
    /// database's copy on it.
    pub read_replica: Option<String>,
}

/// A running `api serve`; stopped with SIGTERM (a graceful shutdown) when dropped.
pub struct ApiProcess {
    child: Option<Child>,
    /// The public and internal ports, once bound (a restart binds the same ones again).
    port: u16,
    internal_port: u16,
    database_url: String,
    /// Whether dropping this process drops its database (not for a process started beside another).
    owns_database: bool,
    options: ApiOptions,
    dir: TempDir,
}

/// Why a start failed.
#[derive(Debug)]
pub enum StartError {
    /// A port it was told to bind was taken by another process; its log.
    PortTaken(String),
}

/// The port on the log line `... <message> addr=127.0.0.1:PORT`, if the log has one.
fn logged_port(logs: &str, message: &str) -> Option<u16> {
    let marker = format!(": {message} addr=");
    logs.lines().find_map(|l| l.split_once(&marker)).and_then(|(_, addr)| addr.trim().rsplit(':').next()?.parse().ok())
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

/// The `api` binary the tests run (built by `cargo build -p api`).
pub fn binary() -> PathBuf {
    let path = repo_root().join("target/debug/api");
    assert!(path.exists(), "{} is missing: run `cargo build -p api` (scripts/test.sh does)", path.display());
    path
}

impl ApiProcess {
    /// Starts the API on a new, empty database (the binary creates and migrates it).
    pub fn start(options: ApiOptions) -> Self {
        Self::try_start(options).unwrap_or_else(|StartError::PortTaken(logs)| panic!("a port was taken:\n{logs}"))
    }

    /// [`ApiProcess::start`], or the reason it could not bind a port it was given.
    pub fn try_start(options: ApiOptions) -> Result<Self, StartError> {
        let database_url = format!("{}/e2e_{}_{}", server_url(), std::process::id(), unique());
        Self::try_start_on(database_url, true, options)
    }

    /// Another `api serve` on this one's database (a second process of one deployment), with ports of its
    /// own; the database stays until this one is dropped.
    pub fn start_beside(&self, options: ApiOptions) -> Self {
        Self::try_start_on(self.database_url.clone(), false, options)
            .unwrap_or_else(|StartError::PortTaken(logs)| panic!("a port was taken:\n{logs}"))
    }

    fn try_start_on(database_url: String, owns_database: bool, options: ApiOptions) -> Result<Self, StartError> {
        let dir = tempfile::Builder::new().prefix("e2e-api-").tempdir().expect("a temp dir");
        let (port, internal_port) = (options.port.unwrap_or(0), options.internal_port.unwrap_or(0));
        let mut api = ApiProcess { child: None, port, internal_port, database_url, owns_database, options, dir };
        api.try_resume()?;
        Ok(api)
    }

    fn command(&self) -> Command {
        let mut command = Command::new(binary());
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "info")
            // Plain log lines, which the ports are read from.
            .env("NO_COLOR", "1")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)));
        if let (Some(replica), Some(name)) = (&self.options.read_replica, self.database_url.rsplit('/').next()) {
            command.env("DATABASE_READ_URL", format!("{replica}/{name}"));
        }
        command
    }

    /// Replaces one environment variable for the next [`ApiProcess::resume`].
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.options.env.retain(|(k, _)| k != name);
        self.options.env.push((name.to_owned(), value.to_owned()));
    }

    /// Starts the process again after [`ApiProcess::stop`], on the same ports and database. The ports
    /// were released by the stop, so another process may hold one for a moment: the start waits until
    /// both can be bound and tries again (a few times) if it loses one all the same.
    pub fn resume(&mut self) {
        for attempt in 1..=5 {
            wait_until("the API's ports to be free again", Duration::from_secs(60), || {
                let free = |port| std::net::TcpListener::bind(("127.0.0.1", port)).is_ok();
                (free(self.port) && free(self.internal_port)).then_some(())
            });
            match self.try_resume() {
                Ok(()) => return,
                Err(StartError::PortTaken(logs)) if attempt == 5 => panic!("a port stayed taken:\n{logs}"),
                Err(StartError::PortTaken(_)) => eprintln!("the API lost a port on restart; starting it again"),
            }
        }
    }

    /// Starts `api serve` on the known ports (0 at first) and waits until it is ready; then its ports
    /// are the ones it logged.
    fn try_resume(&mut self) -> Result<(), StartError> {
        assert!(self.child.is_none(), "already running");
        let log_path = self.dir.path().join("api.log");
        // Only this start's lines are read for its ports and its errors.
        let log_start = std::fs::metadata(&log_path).map_or(0, |m| m.len() as usize);
        let log = File::options().create(true).append(true).open(&log_path).expect("log");
        let child = self
            .command()
            .arg("serve")
            .args(&self.options.serve_args)
            .env("BIND_ADDR", format!("127.0.0.1:{}", self.port))
            .env("INTERNAL_BIND_ADDR", format!("127.0.0.1:{}", self.internal_port))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .expect("start the api binary");
        self.child = Some(child);
        let this_start = |api: &Self| api.logs().get(log_start..).unwrap_or_default().to_owned();
        let (port, internal_port) = wait_until("the API to bind its listeners", Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                let logs = this_start(self);
                if logs.contains("Address already in use") {
                    return Some(Err(StartError::PortTaken(logs)));
                }
                panic!("api exited with {status}:\n{logs}");
            }
            let logs = this_start(self);
            Some(Ok((logged_port(&logs, "api listening")?, logged_port(&logs, "internal routes listening")?)))
        })?;
        (self.port, self.internal_port) = (port, internal_port);
        let agent = http();
        let ready = self.url("/readyz");
        wait_until("the API to be ready", Duration::from_secs(60), || {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                panic!("api exited with {status}:\n{}", self.logs());
            }
            agent.get(&ready).call().ok().filter(|r| r.status() == 200).map(drop)
        });
        Ok(())
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

    /// Base URL of the internal listener (`/internal/*`; the worker's `INGEST_URL`).
    pub fn internal_base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.internal_port)
    }

    /// The primary database this process uses.
    pub fn database_url(&self) -> &str {
        &self.database_url
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

    /// `api user create` for the brand: a person who signs in to its dashboard; returns the generated
    /// password it printed.
    pub fn create_user(&self, brand_id: &str, email: &str) -> String {
        let output = self.run(&["user", "create", "--brand", brand_id, "--email", email]);
        output
            .lines()
            .find_map(|l| l.strip_prefix("password: "))
            .unwrap_or_else(|| panic!("no password line in {output}"))
            .to_owned()
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
        if !self.owns_database {
            return;
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_start_that_loses_its_port_says_so_for_the_caller_to_start_again() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to hold");
        let port = held.local_addr().expect("its address").port();
        match ApiProcess::try_start(ApiOptions { internal_port: Some(port), ..ApiOptions::default() }) {
            Err(StartError::PortTaken(logs)) => {
                assert!(logs.contains(&format!("INTERNAL_BIND_ADDR 127.0.0.1:{port}")), "{logs}");
            }
            Ok(_) => panic!("started on port {port}, which another socket holds"),
        }
    }

    #[test]
    fn both_listeners_bind_ports_of_their_own_and_are_read_back() {
        let api = ApiProcess::start(ApiOptions::default());
        assert!(api.port != 0 && api.internal_port != 0, "{} {}", api.port, api.internal_port);
        assert_ne!(api.port, api.internal_port);
        let health = http().get(api.url("/healthz")).call().expect("the public listener answers");
        assert_eq!(health.status(), 200);
        let internal = http().get(format!("{}/healthz", api.internal_base_url())).call().expect("an answer");
        assert_eq!(internal.status(), 404, "the internal listener serves /internal/* only");
    }
}
