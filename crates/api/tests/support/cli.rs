//! The real `api` binary (built by cargo for these tests), run against a test's own database.
#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

use sqlx::PgPool;

/// What a run of the binary printed, and whether it succeeded.
#[derive(Debug)]
pub struct Output {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// The value of a `name: value` line of stdout.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.stdout.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(": "))
    }
}

/// `api` with `DATABASE_URL` naming the database behind `pool`, and nothing else from this process's
/// environment.
pub struct Cli {
    database_url: String,
}

impl Cli {
    pub fn new(pool: &PgPool) -> Self {
        let options = pool.connect_options();
        let database_url = format!(
            "postgres://{}@{}:{}/{}",
            options.get_username(),
            options.get_host(),
            options.get_port(),
            options.get_database().expect("the test database has a name")
        );
        Cli { database_url }
    }

    /// Runs `api ARGS`, writing `stdin` (if any) to it.
    pub async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_api"));
        command
            .args(args)
            .env_clear()
            .env("DATABASE_URL", &self.database_url)
            .env("RUST_LOG", "warn")
            .stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let stdin = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut child = command.spawn().expect("start the api binary");
            if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
                pipe.write_all(text.as_bytes()).expect("write to the api binary");
            }
            let output = child.wait_with_output().expect("wait for the api binary");
            Output {
                success: output.status.success(),
                stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            }
        })
        .await
        .expect("the api binary's runner")
    }

    /// Runs `api ARGS` and insists it succeeds.
    pub async fn ok(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let output = self.run(args, stdin).await;
        assert!(output.success, "api {args:?} failed:\n{}", output.stderr);
        output
    }
}
