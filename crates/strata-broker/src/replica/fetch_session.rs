//! A follower's side of a fetch session (KIP-227) with one leader: after the first full fetch,
//! each request names only the partitions added or changed since the last one (a new fetch
//! offset or epoch) and those dropped, instead of every followed partition every time; the
//! leader answers only the partitions with news. See [`crate::fetch_sessions`] for the
//! leader's side.
//!
//! Any failed exchange or session error starts over: the next request is a full fetch at
//! epoch 0 under the old id, which closes that session on the leader and opens a new one.

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::messages::FetchRequest;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use uuid::Uuid;

/// Partitions to fetch, by topic id, as a full fetch names them.
pub(super) type Wanted = BTreeMap<Uuid, Vec<FetchPartition>>;

#[derive(Debug, Default)]
pub(super) struct SessionClient {
    /// The leader's id for the session; 0 while there is none.
    id: i32,
    /// The epoch the next request carries; 0 opens a session.
    epoch: i32,
    /// What the leader's session holds: each partition as last sent.
    sent: HashMap<(Uuid, i32), FetchPartition>,
}

impl SessionClient {
    /// `request` with its session fields, topics and forgotten topics set for `wanted`.
    pub(super) fn request(&self, request: FetchRequest, wanted: &Wanted) -> FetchRequest {
        let request = request
            .with_session_id(self.id)
            .with_session_epoch(self.epoch);
        if self.epoch == 0 {
            return request.with_topics(topics(wanted.iter().map(|(id, ps)| (*id, ps.iter()))));
        }
        let changed = wanted.iter().map(|(id, partitions)| {
            let changed = partitions
                .iter()
                .filter(|p| self.sent.get(&(*id, p.partition)) != Some(*p));
            (*id, changed)
        });
        let mut forgotten: BTreeMap<Uuid, Vec<i32>> = BTreeMap::new();
        for (topic_id, partition) in self.sent.keys() {
            let still = wanted
                .get(topic_id)
                .is_some_and(|ps| ps.iter().any(|p| p.partition == *partition));
            if !still {
                forgotten.entry(*topic_id).or_default().push(*partition);
            }
        }
        request
            .with_topics(topics(changed))
            .with_forgotten_topics_data(
                forgotten
                    .into_iter()
                    .map(|(topic_id, mut partitions)| {
                        partitions.sort_unstable();
                        ForgottenTopic::default()
                            .with_topic_id(topic_id)
                            .with_partitions(partitions)
                    })
                    .collect(),
            )
    }

    /// The leader answered a request built from `wanted` without error, giving `session_id`.
    pub(super) fn answered(&mut self, session_id: i32, wanted: &Wanted) {
        if self.epoch == 0 && session_id == 0 {
            // No room for a session on the leader: full fetches, asking again each time.
            self.id = 0;
            self.sent.clear();
            return;
        }
        self.id = session_id;
        self.epoch = if self.epoch == i32::MAX {
            1
        } else {
            self.epoch + 1
        };
        self.sent = wanted
            .iter()
            .flat_map(|(id, ps)| ps.iter().map(move |p| ((*id, p.partition), p.clone())))
            .collect();
    }

    /// The exchange failed or the leader refused the session: start over with a full fetch.
    pub(super) fn reset(&mut self) {
        self.epoch = 0;
        self.sent.clear();
    }
}

fn topics<'a>(
    by_topic: impl Iterator<Item = (Uuid, impl Iterator<Item = &'a FetchPartition>)>,
) -> Vec<FetchTopic> {
    by_topic
        .filter_map(|(topic_id, partitions)| {
            let partitions: Vec<FetchPartition> = partitions.cloned().collect();
            (!partitions.is_empty()).then(|| {
                FetchTopic::default()
                    .with_topic_id(topic_id)
                    .with_partitions(partitions)
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(partition: i32, offset: i64) -> FetchPartition {
        FetchPartition::default()
            .with_partition(partition)
            .with_fetch_offset(offset)
    }

    fn named(request: &FetchRequest) -> Vec<(i32, i64)> {
        request
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .map(|p| (p.partition, p.fetch_offset))
            .collect()
    }

    #[test]
    fn after_the_full_fetch_only_changes_and_drops_are_sent() {
        let topic = Uuid::new_v4();
        let mut session = SessionClient::default();
        let wanted: Wanted = [(topic, vec![at(0, 10), at(1, 20)])].into();
        let first = session.request(FetchRequest::default(), &wanted);
        assert_eq!((first.session_id, first.session_epoch), (0, 0));
        assert_eq!(named(&first), [(0, 10), (1, 20)]);
        session.answered(7, &wanted);

        let moved: Wanted = [(topic, vec![at(0, 10), at(1, 25)])].into();
        let second = session.request(FetchRequest::default(), &moved);
        assert_eq!((second.session_id, second.session_epoch), (7, 1));
        assert_eq!(named(&second), [(1, 25)], "only the partition that moved");
        assert!(second.forgotten_topics_data.is_empty());
        session.answered(7, &moved);

        let dropped: Wanted = [(topic, vec![at(1, 25)])].into();
        let third = session.request(FetchRequest::default(), &dropped);
        assert_eq!(third.session_epoch, 2);
        assert!(named(&third).is_empty());
        assert_eq!(third.forgotten_topics_data[0].partitions, [0]);
    }

    #[test]
    fn a_failure_starts_over_under_the_old_id_and_no_room_stays_sessionless() {
        let topic = Uuid::new_v4();
        let wanted: Wanted = [(topic, vec![at(0, 1)])].into();
        let mut session = SessionClient::default();
        session.answered(9, &wanted);
        session.reset();
        let again = session.request(FetchRequest::default(), &wanted);
        assert_eq!((again.session_id, again.session_epoch), (9, 0));
        assert_eq!(named(&again), [(0, 1)], "a full fetch");

        session.answered(0, &wanted);
        let full = session.request(FetchRequest::default(), &wanted);
        assert_eq!((full.session_id, full.session_epoch), (0, 0));
        assert_eq!(named(&full), [(0, 1)]);
    }
}
