//! A real PostgreSQL streaming replica of the tests' server, started and stopped by
//! `scripts/start-replica.sh`, and the few questions the tests ask it through psql.

use std::process::Command;
use std::time::Duration;

use crate::{repo_root, wait_until};

/// A running replica; stopped (and its directory removed) when dropped.
pub struct Replica {
    port: u16,
    dir: Option<String>,
}

fn script(args: &[&str]) -> String {
    let output = Command::new("bash")
        .arg(repo_root().join("scripts/start-replica.sh"))
        .args(args)
        .output()
        .expect("run scripts/start-replica.sh");
    assert!(
        output.status.success(),
        "scripts/start-replica.sh {args:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Runs one query through psql and returns its output, trimmed (`None` if psql failed).
pub fn psql(url: &str, query: &str) -> Option<String> {
    let output = Command::new("psql").args(["-qtAX", url, "-c", query]).output().expect("run psql");
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

impl Replica {
    /// A base backup of the whole server, streaming from it, on a port of its own.
    pub fn start() -> Self {
        let printed = script(&["start"]);
        let field = |name: &str| {
            printed
                .lines()
                .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(": ")))
                .unwrap_or_else(|| panic!("no {name} line in {printed}"))
                .to_owned()
        };
        Replica { port: field("replica_port").parse().expect("a port"), dir: Some(field("replica_dir")) }
    }

    /// The server's URL, without a database.
    pub fn server_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    /// The replica's copy of the primary's database at `primary_url`.
    pub fn url_of(&self, primary_url: &str) -> String {
        let name = primary_url.rsplit('/').next().expect("a database name");
        format!("{}/{name}", self.server_url())
    }

    /// Waits until the replica has replayed everything the primary at `primary_url` has written so far.
    pub fn wait_for_replay(&self, primary_url: &str) {
        let written = psql(primary_url, "select pg_current_wal_lsn()").expect("the primary's WAL position");
        let query = format!("select pg_last_wal_replay_lsn() >= '{written}'::pg_lsn");
        wait_until("the replica to replay the primary's writes", Duration::from_secs(60), || {
            (psql(&self.url_of(primary_url), &query)? == "t").then_some(())
        });
    }

    /// Stops applying the primary's changes (it still receives them), and waits until it has stopped.
    pub fn pause_replay(&self, database_url: &str) {
        psql(&self.url_of(database_url), "select pg_wal_replay_pause()").expect("pause replay");
        wait_until("the replica's replay to pause", Duration::from_secs(60), || {
            (psql(&self.url_of(database_url), "select pg_get_wal_replay_pause_state()")? == "paused").then_some(())
        });
    }

    pub fn resume_replay(&self, database_url: &str) {
        psql(&self.url_of(database_url), "select pg_wal_replay_resume()").expect("resume replay");
    }

    /// Stops the server and removes its files.
    pub fn stop(&mut self) {
        if let Some(dir) = self.dir.take() {
            script(&["stop", &dir]);
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.stop();
    }
}
