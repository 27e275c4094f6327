//! Pushing a batch of link states to a sink so that one bad record never holds back the others: a
//! batch the sink refuses for its content is split in halves, and the halves again, until the record
//! at fault is alone; that record is set aside with the sink's reason, every other one is applied.

use uuid::Uuid;

use chrono::{DateTime, Utc};
use shared::{LinkRecord, Utm};

use super::sinks::{Applied, KvDelete, PushError};
use super::{KvPair, KvSink};

/// The state of a link as the edge should see it, read from the links table at push time.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct LinkState {
    pub id: Uuid,
    pub code: String,
    pub destination_url: String,
    pub version: i64,
    pub active: bool,
    pub domain: Option<String>,
    pub utm_source: Option<String>,
    pub utm_medium: Option<String>,
    pub utm_campaign: Option<String>,
    pub utm_term: Option<String>,
    pub utm_content: Option<String>,
    pub expires_at: Option<DateTime<Utc>>,
    pub expired_url: Option<String>,
}

/// The columns of a [`LinkState`], in a query on `links`.
pub(super) const STATE_COLUMNS: &str = "id, code, destination_url, version, active, domain, utm_source, utm_medium, \
     utm_campaign, utm_term, utm_content, expires_at, expired_url";

impl LinkState {
    /// The record the edge serves the link from.
    fn record(self) -> LinkRecord {
        let mut record = LinkRecord::new(self.id, self.destination_url, self.version);
        record.domain = self.domain;
        record.utm = Utm {
            source: self.utm_source,
            medium: self.utm_medium,
            campaign: self.utm_campaign,
            term: self.utm_term,
            content: self.utm_content,
        };
        record.expires_at_ms = self.expires_at.map(|t| t.timestamp_millis());
        record.expired_url = self.expired_url;
        record
    }
}

/// One link's state as one KV operation: a write of its record (active) or a delete (inactive).
#[derive(Debug)]
pub(super) struct Change {
    pub link_id: Uuid,
    pub version: i64,
    pub key: String,
    /// The record to write; `None` deletes the key.
    pub value: Option<String>,
}

impl From<LinkState> for Change {
    fn from(state: LinkState) -> Self {
        let (link_id, version, key, active) = (state.id, state.version, state.code.clone(), state.active);
        let value = active.then(|| state.record().to_json());
        Change { link_id, version, key, value }
    }
}

/// What became of a batch of changes (indices into it).
#[derive(Debug, Default)]
pub(super) struct Settled {
    /// Changes KV now holds.
    pub synced: Vec<usize>,
    /// Changes refused on their own, each with the reason: the sink refused the record alone, or the
    /// worker holds a newer version of its link.
    pub parked: Vec<(usize, String)>,
    /// Why the other changes are unsettled, if any are: the push stopped at an answer whose outcome is
    /// unknown, or at a sink that cannot be used right now. Those are pushed again later, from the
    /// links' state at that time.
    pub unsettled: Option<anyhow::Error>,
}

/// Pushes `changes` (writes first, then deletes), at most `S::MAX_BATCH` per request, isolating the
/// records the sink refuses. Stops at the first unsettled answer: when KV is down or slow, more
/// requests would only wait as long again.
pub(super) async fn push_isolating<S: KvSink>(sink: &S, changes: &[Change]) -> Settled {
    let mut settled = Settled::default();
    let (writes, deletes): (Vec<usize>, Vec<usize>) = (0..changes.len()).partition(|&i| changes[i].value.is_some());
    for group in [writes, deletes] {
        // A stack of index runs still to push, the first run on top.
        let mut runs: Vec<Vec<usize>> = group.chunks(S::MAX_BATCH.max(1)).rev().map(<[usize]>::to_vec).collect();
        while let Some(run) = runs.pop() {
            match send(sink, changes, &run).await {
                Ok(applied) => settle_applied(changes, &run, applied, &mut settled),
                Err(PushError::Refused(reason)) if run.len() == 1 => settled.parked.push((run[0], reason)),
                Err(PushError::Refused(_)) => {
                    let (first, second) = run.split_at(run.len() / 2);
                    runs.push(second.to_vec());
                    runs.push(first.to_vec());
                }
                Err(PushError::Unsettled(e)) => {
                    settled.unsettled = Some(e);
                    return settled;
                }
            }
        }
    }
    settled
}

/// Sends one run of changes of one kind (all writes or all deletes).
async fn send<S: KvSink>(sink: &S, changes: &[Change], run: &[usize]) -> Result<Applied, PushError> {
    let first = &changes[run[0]];
    if first.value.is_some() {
        let pairs: Vec<KvPair> = run
            .iter()
            .map(|&i| KvPair { key: changes[i].key.clone(), value: changes[i].value.clone().unwrap_or_default() })
            .collect();
        sink.put(&pairs).await
    } else {
        let deletes: Vec<KvDelete> =
            run.iter().map(|&i| KvDelete { key: changes[i].key.clone(), version: changes[i].version }).collect();
        sink.delete(&deletes).await
    }
}

/// Records an applied run: every change synced but those the worker refused as stale.
fn settle_applied(changes: &[Change], run: &[usize], applied: Applied, settled: &mut Settled) {
    for &i in run {
        let change = &changes[i];
        match applied.stale.iter().find(|stale| stale.key == change.key) {
            Some(stale) => settled.parked.push((
                i,
                format!(
                    "refused as stale: KV holds version {} of this link, newer than the database's {}",
                    stale.stored_version, change.version
                ),
            )),
            None => settled.synced.push(i),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::super::sinks::StaleKey;
    use super::*;

    /// A sink that refuses any batch holding a poisoned key, fails when told to, and notes every batch.
    #[derive(Default)]
    struct Fake {
        poisoned: Vec<String>,
        stale: Vec<String>,
        unsettled_after: Option<usize>,
        batches: Mutex<Vec<Vec<String>>>,
    }

    impl Fake {
        fn answer(&self, keys: Vec<String>) -> Result<Applied, PushError> {
            let mut batches = self.batches.lock().unwrap();
            batches.push(keys.clone());
            if self.unsettled_after.is_some_and(|n| batches.len() > n) {
                return Err(PushError::Unsettled(anyhow::anyhow!("timed out")));
            }
            if keys.iter().any(|k| self.poisoned.contains(k)) {
                return Err(PushError::Refused(format!("bad value in a batch of {}", keys.len())));
            }
            let stale = keys
                .iter()
                .filter(|k| self.stale.contains(k))
                .map(|k| StaleKey { key: k.clone(), stored_version: 99 })
                .collect();
            Ok(Applied { stale })
        }
    }

    impl KvSink for Fake {
        const MAX_BATCH: usize = 4;

        async fn put(&self, pairs: &[KvPair]) -> Result<Applied, PushError> {
            self.answer(pairs.iter().map(|p| p.key.clone()).collect())
        }

        async fn delete(&self, deletes: &[KvDelete]) -> Result<Applied, PushError> {
            self.answer(deletes.iter().map(|d| d.key.clone()).collect())
        }
    }

    fn changes(n: usize) -> Vec<Change> {
        (0..n)
            .map(|i| Change {
                link_id: Uuid::from_u128(i as u128),
                version: 1,
                key: format!("k{i}"),
                // Every third link is inactive.
                value: (i % 3 != 2).then(|| format!("v{i}")),
            })
            .collect()
    }

    fn keys(changes: &[Change], indices: impl IntoIterator<Item = usize>) -> Vec<String> {
        let mut keys: Vec<String> = indices.into_iter().map(|i| changes[i].key.clone()).collect();
        keys.sort();
        keys
    }

    #[tokio::test]
    async fn a_clean_batch_goes_in_runs_of_the_sinks_limit_writes_before_deletes() {
        let sink = Fake::default();
        let changes = changes(9);
        let settled = push_isolating(&sink, &changes).await;
        assert_eq!(settled.synced.len(), 9);
        assert!(settled.parked.is_empty() && settled.unsettled.is_none());
        let batches = sink.batches.lock().unwrap().clone();
        assert_eq!(batches, vec![vec!["k0", "k1", "k3", "k4"], vec!["k6", "k7"], vec!["k2", "k5", "k8"]]);
    }

    #[tokio::test]
    async fn refused_batches_are_split_until_each_bad_record_is_alone_and_parked() {
        let sink = Fake { poisoned: vec!["k1".into(), "k5".into()], ..Fake::default() };
        let changes = changes(9);
        let settled = push_isolating(&sink, &changes).await;
        let parked: Vec<usize> = settled.parked.iter().map(|(i, _)| *i).collect();
        assert_eq!(keys(&changes, parked), ["k1", "k5"]);
        assert!(settled.parked.iter().all(|(_, reason)| reason.starts_with("bad value")));
        assert_eq!(keys(&changes, settled.synced.clone()), ["k0", "k2", "k3", "k4", "k6", "k7", "k8"]);
        assert!(settled.unsettled.is_none());
        // Each bad record costs a few requests, not one per record.
        assert!(sink.batches.lock().unwrap().len() <= 12);
    }

    #[tokio::test]
    async fn keys_the_worker_refused_as_stale_are_parked_and_the_rest_synced() {
        let sink = Fake { stale: vec!["k3".into()], ..Fake::default() };
        let changes = changes(4);
        let settled = push_isolating(&sink, &changes).await;
        assert_eq!(settled.parked.len(), 1);
        let (index, reason) = &settled.parked[0];
        assert_eq!(changes[*index].key, "k3");
        assert!(reason.contains("KV holds version 99"), "{reason}");
        assert_eq!(settled.synced.len(), 3);
    }

    #[tokio::test]
    async fn an_unsettled_answer_stops_the_push_and_parks_nothing() {
        let sink = Fake { poisoned: vec!["k0".into()], unsettled_after: Some(1), ..Fake::default() };
        let changes = changes(6);
        let settled = push_isolating(&sink, &changes).await;
        assert!(settled.unsettled.is_some());
        assert!(settled.synced.is_empty() && settled.parked.is_empty());
        assert_eq!(sink.batches.lock().unwrap().len(), 2);
    }
}
