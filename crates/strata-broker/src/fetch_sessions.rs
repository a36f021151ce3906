//! Fetch sessions (KIP-227): a client that fetches the same partitions over and over names them
//! once, and later fetches carry only what changed (partitions added, moved or forgotten);
//! the broker answers only the partitions with something new (records, a moved high
//! watermark, log start or last stable offset, an error).
//!
//! A request's `session_id` and `session_epoch` say what it is:
//! - epoch -1: a full fetch outside any session (closing `session_id` first, if set);
//! - epoch 0: a full fetch that opens a session (closing `session_id` first, if set); the
//!   response carries the new session's id, or 0 when the cache has no room;
//! - epoch > 0: an incremental fetch on `session_id`, which must be at exactly that epoch;
//!   each one moves the session to the next epoch.
//!
//! The cache is bounded: `max.incremental.fetch.session.cache.slots` sessions and
//! [`MAX_CACHED_PARTITIONS`] partitions over all of them. When it is full, a new session takes
//! the slot of the least recently used one if that has been idle for
//! [`EVICTABLE_AFTER`], or of the least recently used consumer's session if the new one is a
//! follower's; otherwise the fetch is answered without a session, which every client handles
//! by sending full fetches. Nothing is lost with a session: a client's positions are its own.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::PartitionData;
use kafka_protocol::messages::{FetchRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use uuid::Uuid;

use crate::metrics::FetchSessionMetrics;

/// Kafka's `min.incremental.fetch.session.eviction.ms`: a session idle this long may give its
/// slot to a new one.
pub const EVICTABLE_AFTER: Duration = Duration::from_secs(120);
/// Partitions held over all sessions (each about a hundred bytes): what bounds the cache's
/// memory whatever clients send.
pub const MAX_CACHED_PARTITIONS: usize = 200_000;

const FINAL_EPOCH: i32 = -1;
const INITIAL_EPOCH: i32 = 0;
/// The first version with sessions.
const SESSIONS_FROM_VERSION: i16 = 7;
/// The first version naming topics by id.
const TOPIC_IDS_FROM_VERSION: i16 = 13;

/// A topic as a fetch names it: by id from v13, by name before.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TopicKey {
    Id(Uuid),
    Name(TopicName),
}

/// What a fetch asks of one partition.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    pub topic: TopicKey,
    pub partition: i32,
    pub fetch_offset: i64,
    pub max_bytes: i32,
    pub current_leader_epoch: i32,
    pub last_fetched_epoch: i32,
}

impl FetchSpec {
    /// The spec with its topic name copied out of the request, to be kept in a session: a
    /// name decoded from a request shares the whole buffer the request was read into, which
    /// a session would otherwise keep alive for as long as it lasts.
    fn owned(&self) -> Self {
        let topic = match &self.topic {
            TopicKey::Id(id) => TopicKey::Id(*id),
            TopicKey::Name(name) => {
                TopicKey::Name(TopicName(StrBytes::from_string(name.to_string())))
            }
        };
        Self {
            topic,
            ..self.clone()
        }
    }
}

/// How a fetch relates to the session cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRole {
    /// A full fetch, answered in full, with no session.
    Sessionless,
    /// A full fetch that opens a session once answered.
    Opening,
    /// An incremental fetch on session `id`, which `begin` moved to `epoch`.
    Incremental { id: i32, epoch: i32 },
}

/// The partitions one fetch reads (every partition of its session for an incremental one).
#[derive(Debug)]
pub struct SessionFetch {
    pub role: SessionRole,
    pub partitions: Vec<FetchSpec>,
    /// Whether topics are named by id (v13+).
    pub by_id: bool,
}

/// A partition in a session, with what its last response told the client.
#[derive(Debug)]
struct Cached {
    spec: FetchSpec,
    high_watermark: i64,
    last_stable_offset: i64,
    log_start_offset: i64,
}

impl Cached {
    /// Not yet answered: the first response always includes it.
    fn new(spec: FetchSpec) -> Self {
        Self {
            spec,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
        }
    }

    /// Records `data` as answered; whether an incremental response must carry it.
    fn answer(&mut self, data: &PartitionData) -> bool {
        let changed = data.records.as_ref().is_some_and(|r| !r.is_empty())
            || data.error_code != 0
            || data.high_watermark != self.high_watermark
            || data.last_stable_offset != self.last_stable_offset
            || data.log_start_offset != self.log_start_offset
            || data.diverging_epoch.epoch >= 0
            || data.diverging_epoch.end_offset >= 0
            || data.preferred_read_replica.0 >= 0;
        // After an error the next good answer is news again.
        let ok = data.error_code == 0;
        self.high_watermark = if ok { data.high_watermark } else { -1 };
        self.last_stable_offset = if ok { data.last_stable_offset } else { -1 };
        self.log_start_offset = if ok { data.log_start_offset } else { -1 };
        changed
    }
}

#[derive(Debug)]
struct Session {
    /// The epoch the next incremental fetch must carry.
    epoch: i32,
    partitions: Vec<Cached>,
    by_id: bool,
    follower: bool,
    last_used: Instant,
}

#[derive(Debug, Default)]
struct Cache {
    sessions: HashMap<i32, Session>,
    partitions: usize,
}

/// The broker's fetch sessions.
#[derive(Debug)]
pub struct FetchSessions {
    cache: Mutex<Cache>,
    slots: usize,
    metrics: FetchSessionMetrics,
}

impl FetchSessions {
    /// A cache of at most `slots` sessions (0: no sessions).
    pub fn new(slots: usize, metrics: FetchSessionMetrics) -> Self {
        Self {
            cache: Mutex::new(Cache::default()),
            slots,
            metrics,
        }
    }

    /// Resolves what `request` (of `version`) reads, applying an incremental fetch's changes
    /// to its session. An error is the whole response's: the session is unknown, at another
    /// epoch, or named its topics the other way.
    pub fn begin(
        &self,
        request: &FetchRequest,
        version: i16,
        now: Instant,
    ) -> Result<SessionFetch, ResponseError> {
        let by_id = version >= TOPIC_IDS_FROM_VERSION;
        let asked = requested(request, by_id);
        if version < SESSIONS_FROM_VERSION {
            return Ok(SessionFetch {
                role: SessionRole::Sessionless,
                partitions: asked,
                by_id,
            });
        }
        let mut cache = self.lock();
        let (id, epoch) = (request.session_id, request.session_epoch);
        if epoch == FINAL_EPOCH || epoch == INITIAL_EPOCH {
            if id != 0 {
                cache.remove(id);
            }
            let role = if epoch == INITIAL_EPOCH && self.slots > 0 {
                SessionRole::Opening
            } else {
                SessionRole::Sessionless
            };
            self.publish(&cache);
            return Ok(SessionFetch {
                role,
                partitions: asked,
                by_id,
            });
        }
        let session = cache
            .sessions
            .get_mut(&id)
            .ok_or(ResponseError::FetchSessionIdNotFound)?;
        if session.epoch != epoch {
            return Err(ResponseError::InvalidFetchSessionEpoch);
        }
        if session.by_id != by_id {
            return Err(ResponseError::FetchSessionTopicIdError);
        }
        let before = session.partitions.len();
        apply_changes(session, asked, forgotten(request, by_id));
        session.epoch = next_epoch(epoch);
        session.last_used = now;
        let partitions: Vec<FetchSpec> =
            session.partitions.iter().map(|c| c.spec.clone()).collect();
        let epoch = session.epoch;
        cache.partitions = cache.partitions - before + partitions.len();
        if cache.partitions > MAX_CACHED_PARTITIONS {
            // The client falls back to full fetches, which open no session while full.
            cache.remove(id);
            self.publish(&cache);
            return Err(ResponseError::FetchSessionIdNotFound);
        }
        self.publish(&cache);
        self.metrics.incremental_fetches.inc();
        Ok(SessionFetch {
            role: SessionRole::Incremental { id, epoch },
            partitions,
            by_id,
        })
    }

    /// Records what a fetch answered and returns the response's session id and which of
    /// `answered` (one per partition of the [`SessionFetch`], in its order) it carries.
    pub fn finish(
        &self,
        fetch: &SessionFetch,
        answered: &[&PartitionData],
        follower: bool,
        now: Instant,
    ) -> Result<(i32, Vec<bool>), ResponseError> {
        let everything = vec![true; answered.len()];
        match fetch.role {
            SessionRole::Sessionless => Ok((0, everything)),
            SessionRole::Opening => {
                let mut cache = self.lock();
                let id = self.open(&mut cache, fetch, answered, follower, now);
                self.publish(&cache);
                Ok((id, everything))
            }
            SessionRole::Incremental { id, epoch } => {
                let mut cache = self.lock();
                // Another fetch on the session since `begin`: its answers are the client's
                // view now, and this one's would contradict them.
                let session = cache
                    .sessions
                    .get_mut(&id)
                    .filter(|s| s.epoch == epoch && s.partitions.len() == answered.len())
                    .ok_or(ResponseError::InvalidFetchSessionEpoch)?;
                let carried: Vec<bool> = session
                    .partitions
                    .iter_mut()
                    .zip(answered)
                    .map(|(cached, data)| cached.answer(data))
                    .collect();
                rotate_answered(&mut session.partitions, answered);
                Ok((id, carried))
            }
        }
    }

    /// Opens a session for a full fetch's partitions if the cache has (or can make) room: its
    /// id, or 0.
    fn open(
        &self,
        cache: &mut Cache,
        fetch: &SessionFetch,
        answered: &[&PartitionData],
        follower: bool,
        now: Instant,
    ) -> i32 {
        let size = fetch.partitions.len();
        if cache.partitions + size > MAX_CACHED_PARTITIONS {
            return 0;
        }
        if cache.sessions.len() >= self.slots {
            let Some(evicted) = cache.evictable(follower, now) else {
                return 0;
            };
            cache.remove(evicted);
            self.metrics.evictions.inc();
        }
        let partitions = fetch
            .partitions
            .iter()
            .zip(answered)
            .map(|(spec, data)| {
                let mut cached = Cached::new(spec.owned());
                cached.answer(data);
                cached
            })
            .collect();
        let id = cache.unused_id();
        cache.sessions.insert(
            id,
            Session {
                epoch: next_epoch(INITIAL_EPOCH),
                partitions,
                by_id: fetch.by_id,
                follower,
                last_used: now,
            },
        );
        cache.partitions += size;
        id
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cache> {
        self.cache
            .lock()
            .expect("no code panics holding the fetch session cache")
    }

    fn publish(&self, cache: &Cache) {
        self.metrics
            .sessions
            .set(i64::try_from(cache.sessions.len()).unwrap_or(i64::MAX));
        self.metrics
            .partitions
            .set(i64::try_from(cache.partitions).unwrap_or(i64::MAX));
    }
}

impl Cache {
    fn remove(&mut self, id: i32) {
        if let Some(session) = self.sessions.remove(&id) {
            self.partitions -= session.partitions.len();
        }
    }

    /// The session a new one may replace: the least recently used, if idle long enough or,
    /// for a follower's new session, if it is a consumer's.
    fn evictable(&self, follower: bool, now: Instant) -> Option<i32> {
        self.sessions
            .iter()
            .filter(|(_, s)| {
                now.saturating_duration_since(s.last_used) >= EVICTABLE_AFTER
                    || (follower && !s.follower)
            })
            .min_by_key(|(_, s)| s.last_used)
            .map(|(id, _)| *id)
    }

    /// A positive id no session has: ids are random so a client cannot guess another's.
    fn unused_id(&self) -> i32 {
        loop {
            let id = (Uuid::new_v4().as_u128() as u32 >> 1) as i32;
            if id != 0 && !self.sessions.contains_key(&id) {
                return id;
            }
        }
    }
}

/// Kafka's epoch sequence: 1, 2, ... `i32::MAX`, then 1 again.
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX { 1 } else { epoch + 1 }
}

/// The partitions `request` names, in its order.
fn requested(request: &FetchRequest, by_id: bool) -> Vec<FetchSpec> {
    request
        .topics
        .iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, t.topic_id, &t.topic);
            t.partitions.iter().map(move |p| FetchSpec {
                topic: topic.clone(),
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                last_fetched_epoch: p.last_fetched_epoch,
            })
        })
        .collect()
}

/// The partitions an incremental `request` drops from its session.
fn forgotten(request: &FetchRequest, by_id: bool) -> Vec<(TopicKey, i32)> {
    request
        .forgotten_topics_data
        .iter()
        .flat_map(|t| {
            let topic = topic_key(by_id, t.topic_id, &t.topic);
            t.partitions.iter().map(move |p| (topic.clone(), *p))
        })
        .collect()
}

fn topic_key(by_id: bool, id: Uuid, name: &TopicName) -> TopicKey {
    if by_id {
        TopicKey::Id(id)
    } else {
        TopicKey::Name(name.clone())
    }
}

/// Drops `forgotten` from `session`, then updates the partitions `asked` names (new ones go
/// last).
fn apply_changes(session: &mut Session, asked: Vec<FetchSpec>, forgotten: Vec<(TopicKey, i32)>) {
    if !forgotten.is_empty() {
        let forgotten: HashSet<(TopicKey, i32)> = forgotten.into_iter().collect();
        session
            .partitions
            .retain(|c| !forgotten.contains(&(c.spec.topic.clone(), c.spec.partition)));
    }
    if asked.is_empty() {
        return;
    }
    let index: HashMap<(TopicKey, i32), usize> = session
        .partitions
        .iter()
        .enumerate()
        .map(|(i, c)| ((c.spec.topic.clone(), c.spec.partition), i))
        .collect();
    for spec in asked {
        match index.get(&(spec.topic.clone(), spec.partition)) {
            Some(&i) => {
                let kept = &mut session.partitions[i].spec;
                kept.fetch_offset = spec.fetch_offset;
                kept.max_bytes = spec.max_bytes;
                kept.current_leader_epoch = spec.current_leader_epoch;
                kept.last_fetched_epoch = spec.last_fetched_epoch;
            }
            None => session.partitions.push(Cached::new(spec.owned())),
        }
    }
}

/// Moves the partitions that returned records to the end, keeping order otherwise, so the
/// next response's byte budget goes to the others first (Kafka does the same).
fn rotate_answered(partitions: &mut Vec<Cached>, answered: &[&PartitionData]) {
    let had_records = |data: &&PartitionData| data.records.as_ref().is_some_and(|r| !r.is_empty());
    if !answered.iter().any(had_records) {
        return;
    }
    let (mut quiet, busy): (Vec<_>, Vec<_>) = std::mem::take(partitions)
        .into_iter()
        .zip(answered)
        .partition(|(_, data)| !had_records(data));
    quiet.extend(busy);
    *partitions = quiet.into_iter().map(|(cached, _)| cached).collect();
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};

    use super::*;

    fn topic(name: &str) -> TopicName {
        TopicName(StrBytes::from_string(name.to_string()))
    }

    /// A v12 fetch (topics by name) of `partitions` of topic "t" at `session`/`epoch`.
    fn fetch(session: i32, epoch: i32, partitions: &[(i32, i64)]) -> FetchRequest {
        let partitions = partitions
            .iter()
            .map(|&(p, offset)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect::<Vec<_>>();
        let topics = if partitions.is_empty() {
            Vec::new()
        } else {
            vec![
                FetchTopic::default()
                    .with_topic(topic("t"))
                    .with_partitions(partitions),
            ]
        };
        FetchRequest::default()
            .with_session_id(session)
            .with_session_epoch(epoch)
            .with_topics(topics)
    }

    fn answer(partition: i32, high_watermark: i64, records: &'static [u8]) -> PartitionData {
        PartitionData::default()
            .with_partition_index(partition)
            .with_high_watermark(high_watermark)
            .with_last_stable_offset(high_watermark)
            .with_log_start_offset(0)
            .with_records(Some(Bytes::from_static(records)))
    }

    fn sessions(slots: usize) -> FetchSessions {
        FetchSessions::new(slots, FetchSessionMetrics::default())
    }

    /// Runs one fetch through `begin` and `finish` with the answers `answer_for` gives each
    /// partition read: the session id and the partitions carried, or the error.
    fn round(
        cache: &FetchSessions,
        request: &FetchRequest,
        answer_for: impl Fn(i32) -> PartitionData,
        now: Instant,
    ) -> Result<(i32, Vec<i32>), ResponseError> {
        let fetch = cache.begin(request, 12, now)?;
        let answers: Vec<PartitionData> = fetch
            .partitions
            .iter()
            .map(|p| answer_for(p.partition))
            .collect();
        let answered: Vec<&PartitionData> = answers.iter().collect();
        let (id, carried) = cache.finish(&fetch, &answered, false, now)?;
        let carried = answers
            .iter()
            .zip(carried)
            .filter(|(_, c)| *c)
            .map(|(a, _)| a.partition_index)
            .collect();
        Ok((id, carried))
    }

    #[test]
    fn a_session_carries_only_what_changed_and_moves_one_epoch_per_fetch() {
        let cache = sessions(10);
        let now = Instant::now();
        let quiet = |p| answer(p, 5, b"");
        let (id, carried) = round(&cache, &fetch(0, 0, &[(0, 5), (1, 5)]), quiet, now)
            .expect("the fetch is answered");
        assert!(id > 0, "a full fetch at epoch 0 opens a session");
        assert_eq!(carried, [0, 1], "the full fetch answers every partition");

        let (same, carried) =
            round(&cache, &fetch(id, 1, &[]), quiet, now).expect("the fetch is answered");
        assert_eq!(
            (same, carried),
            (id, vec![]),
            "nothing changed, nothing carried"
        );

        let one_new = |p| {
            if p == 1 {
                answer(p, 6, b"x")
            } else {
                answer(p, 5, b"")
            }
        };
        let (_, carried) =
            round(&cache, &fetch(id, 2, &[]), one_new, now).expect("the fetch is answered");
        assert_eq!(carried, [1], "only the partition with records");

        let moved = |p| answer(p, if p == 0 { 9 } else { 6 }, b"");
        let (_, carried) =
            round(&cache, &fetch(id, 3, &[]), moved, now).expect("the fetch is answered");
        assert_eq!(carried, [0], "a moved high watermark is news too");

        assert_eq!(
            round(&cache, &fetch(id, 3, &[]), quiet, now),
            Err(ResponseError::InvalidFetchSessionEpoch),
            "an epoch already used is refused"
        );
        assert_eq!(
            round(
                &cache,
                &fetch(id.wrapping_add(1).max(1), 1, &[]),
                quiet,
                now
            ),
            Err(ResponseError::FetchSessionIdNotFound)
        );
        let (closed, carried) =
            round(&cache, &fetch(id, -1, &[(0, 5)]), quiet, now).expect("the fetch is answered");
        assert_eq!(
            (closed, carried),
            (0, vec![0]),
            "epoch -1 closes the session"
        );
        assert_eq!(
            round(&cache, &fetch(id, 4, &[]), quiet, now),
            Err(ResponseError::FetchSessionIdNotFound)
        );
    }

    #[test]
    fn an_incremental_fetch_adds_updates_and_forgets_partitions() {
        let cache = sessions(10);
        let now = Instant::now();
        let quiet = |p| answer(p, 5, b"");
        let (id, _) = round(&cache, &fetch(0, 0, &[(0, 5), (1, 5)]), quiet, now)
            .expect("the fetch is answered");
        let mut request = fetch(id, 1, &[(2, 0)]);
        request.forgotten_topics_data = vec![
            ForgottenTopic::default()
                .with_topic(topic("t"))
                .with_partitions(vec![0]),
        ];
        let started = cache
            .begin(&request, 12, now)
            .expect("the fetch is answered");
        let read: Vec<i32> = started.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(read, [1, 2], "partition 0 forgotten, 2 added last");
        let answers = [answer(1, 5, b""), answer(2, 5, b"")];
        let (_, carried) = cache
            .finish(&started, &[&answers[0], &answers[1]], false, now)
            .expect("the fetch is answered");
        assert_eq!(
            carried,
            [false, true],
            "a new partition is answered the first time"
        );

        let moved = cache
            .begin(&fetch(id, 2, &[(1, 3)]), 12, now)
            .expect("the fetch is answered");
        assert_eq!(
            moved.partitions[0].fetch_offset, 3,
            "the new fetch offset is read"
        );
        assert_eq!(moved.partitions.len(), 2);
    }

    #[test]
    fn partitions_that_returned_records_go_last() {
        let cache = sessions(10);
        let now = Instant::now();
        let (id, _) = round(
            &cache,
            &fetch(0, 0, &[(0, 0), (1, 0), (2, 0)]),
            |p| answer(p, 5, b""),
            now,
        )
        .expect("the fetch is answered");
        round(
            &cache,
            &fetch(id, 1, &[]),
            |p| answer(p, 5, if p == 0 { b"x" } else { b"" }),
            now,
        )
        .expect("the fetch is answered");
        let next = cache
            .begin(&fetch(id, 2, &[]), 12, now)
            .expect("the fetch is answered");
        let order: Vec<i32> = next.partitions.iter().map(|p| p.partition).collect();
        assert_eq!(order, [1, 2, 0]);
    }

    #[test]
    fn a_full_cache_makes_room_only_from_idle_sessions_or_for_followers() {
        let cache = sessions(1);
        let start = Instant::now();
        let quiet = |p| answer(p, 5, b"");
        let (first, _) =
            round(&cache, &fetch(0, 0, &[(0, 0)]), quiet, start).expect("the fetch is answered");
        assert!(first > 0);
        let (none, carried) =
            round(&cache, &fetch(0, 0, &[(0, 0)]), quiet, start).expect("the fetch is answered");
        assert_eq!(
            (none, carried),
            (0, vec![0]),
            "full: answered without a session"
        );

        let follower = cache
            .begin(&fetch(0, 0, &[(0, 0)]), 12, start)
            .expect("the fetch is answered");
        let data = answer(0, 5, b"");
        let (theirs, _) = cache
            .finish(&follower, &[&data], true, start)
            .expect("the fetch is answered");
        assert!(theirs > 0, "a follower's session displaces a consumer's");
        assert_eq!(
            round(&cache, &fetch(first, 1, &[]), quiet, start),
            Err(ResponseError::FetchSessionIdNotFound)
        );

        let later = start + EVICTABLE_AFTER;
        let (idle_replaced, _) =
            round(&cache, &fetch(0, 0, &[(0, 0)]), quiet, later).expect("the fetch is answered");
        assert!(
            idle_replaced > 0,
            "a session idle for the eviction time gives way"
        );
        assert_eq!(cache.metrics.evictions.get(), 2);
    }

    #[test]
    fn sessions_are_off_with_no_slots_and_before_v7() {
        let now = Instant::now();
        let (id, _) = round(
            &sessions(0),
            &fetch(0, 0, &[(0, 0)]),
            |p| answer(p, 5, b""),
            now,
        )
        .expect("the fetch is answered");
        assert_eq!(id, 0);
        let cache = sessions(10);
        let old = cache
            .begin(&fetch(0, 0, &[(0, 0)]), 6, now)
            .expect("the fetch is answered");
        assert_eq!(old.role, SessionRole::Sessionless);
    }

    #[test]
    fn a_session_keeps_the_way_it_names_topics() {
        let cache = sessions(10);
        let now = Instant::now();
        let (id, _) = round(&cache, &fetch(0, 0, &[(0, 0)]), |p| answer(p, 5, b""), now)
            .expect("the fetch is answered");
        assert_eq!(
            cache.begin(&fetch(id, 1, &[]), 13, now).map(|f| f.role),
            Err(ResponseError::FetchSessionTopicIdError)
        );
    }
}
