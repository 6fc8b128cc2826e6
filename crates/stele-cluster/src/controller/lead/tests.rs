//! [`plan_leadership`], one test per branch. The cluster in most of them: voters 1 (this
//! node, the leader), 2 and 3, the log at index 100.

use super::*;
use crate::VNodeState;

const CLUSTER: Uuid = Uuid::from_u128(0xc1);
const OTHER_CLUSTER: Uuid = Uuid::from_u128(0xc2);

fn internal(id: u64) -> (String, u16) {
    (format!("10.0.0.{id}"), 1112)
}

/// Where node `at`'s address is, as a membership entry names it.
fn addr(at: u64) -> NodeAddr {
    NodeAddr {
        http: format!("10.0.0.{at}:2113"),
        internal: format!("10.0.0.{at}:1112"),
        cluster_id: CLUSTER,
    }
}

/// A live member gossip reports, node `id` at `10.0.0.<at>`.
fn member(id: u64, at: u64) -> NodeStatus {
    NodeStatus {
        node_id: id,
        instance_id: Uuid::from_u128(u128::from(id)),
        cluster_id: Some(CLUSTER),
        state: VNodeState::Follower,
        is_alive: true,
        time_stamp: 0,
        http_endpoint: (format!("10.0.0.{at}"), 2113),
        gossip_endpoint: (format!("10.0.0.{at}"), 2113),
        internal_tcp: internal(at),
        last_commit_position: 0,
        writer_checkpoint: 0,
        chaser_checkpoint: 0,
        last_log_index: 100,
        log_sync_count: 0,
        epoch_number: 5,
        node_priority: 0,
        read_only_replica: false,
        resigned: false,
        ready: true,
    }
}

/// Owns what a [`LeaderView`] borrows.
struct Scene {
    members: Vec<NodeStatus>,
    warned: HashSet<u64>,
    voters: BTreeSet<u64>,
    learners: Vec<u64>,
    /// Nodes of the membership not at their own address (`10.0.0.<id>`): id to address.
    moved: BTreeMap<u64, u64>,
    joint: Option<Vec<BTreeSet<u64>>>,
    matched: BTreeMap<u64, u64>,
    resigned_in_term: Option<u64>,
    cluster_id: Option<Uuid>,
    my_priority: i32,
    since_last_transfer: Option<Duration>,
}

impl Scene {
    /// Voters 1, 2, 3 at their own addresses, both followers caught up, gossip reporting
    /// them; nothing to do.
    fn steady() -> Scene {
        Scene {
            members: vec![member(2, 2), member(3, 3)],
            warned: HashSet::new(),
            voters: BTreeSet::from([1, 2, 3]),
            learners: Vec::new(),
            moved: BTreeMap::new(),
            joint: None,
            matched: BTreeMap::from([(2, 100), (3, 100)]),
            resigned_in_term: None,
            cluster_id: Some(CLUSTER),
            my_priority: 0,
            since_last_transfer: None,
        }
    }

    fn view(&self) -> LeaderView<'_> {
        let nodes = self
            .voters
            .iter()
            .chain(&self.learners)
            .map(|&id| (id, addr(self.moved.get(&id).copied().unwrap_or(id))))
            .collect();
        LeaderView {
            me: 1,
            my_priority: self.my_priority,
            cluster_id: self.cluster_id,
            term: 5,
            resigned_in_term: self.resigned_in_term,
            joint: self
                .joint
                .clone()
                .unwrap_or_else(|| vec![self.voters.clone()]),
            nodes,
            voters: self.voters.clone(),
            learners: self.learners.clone(),
            members: &self.members,
            last_log: 100,
            matched: self.matched.clone(),
            warned_surplus: &self.warned,
            since_last_transfer: self.since_last_transfer,
        }
    }

    fn plan(&self) -> Vec<LeaderAction> {
        plan_leadership(&self.view())
    }
}

/// A learner node 4 at the address of voter 3 (a wiped node 3 that came back as 4).
fn with_successor_learner(matched: u64) -> Scene {
    let mut scene = Scene::steady();
    scene.learners = vec![4];
    scene.moved.insert(4, 3);
    scene.members = vec![member(2, 2), member(4, 3)];
    scene.matched.insert(4, matched);
    scene
}

fn set(ids: &[u64]) -> BTreeSet<u64> {
    ids.iter().copied().collect()
}

/// Pins that a steady cluster (every member in it, nobody of higher priority) asks for
/// nothing.
#[test]
fn a_steady_cluster_needs_nothing() {
    assert_eq!(Scene::steady().plan(), vec![]);
}

/// Pins that a resignation made in an earlier term ends once this node leads in a later
/// one, and one made in this term stands.
#[test]
fn a_resignation_from_an_earlier_term_is_cleared() {
    let mut scene = Scene::steady();
    scene.resigned_in_term = Some(4);
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::ClearResignation { term: 4 }]
    );
    scene.resigned_in_term = Some(5);
    assert_eq!(scene.plan(), vec![]);
}

/// Pins that a leader that does not know its cluster id yet only clears a resignation: it
/// admits nobody and hands leadership to nobody.
#[test]
fn without_a_cluster_id_only_the_resignation_is_cleared() {
    let mut scene = Scene::steady();
    scene.cluster_id = None;
    scene.resigned_in_term = Some(3);
    scene.members.push(Scene::replica(9));
    scene.my_priority = -1;
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::ClearResignation { term: 3 }]
    );
}

impl Scene {
    fn replica(id: u64) -> NodeStatus {
        NodeStatus {
            read_only_replica: true,
            state: VNodeState::ReadOnlyLeaderless,
            cluster_id: None,
            ..member(id, id)
        }
    }
}

/// Pins that a joint configuration (a membership change cut short) is finished to its new
/// voters before anything else, and that nothing else is done that round.
#[test]
fn an_interrupted_membership_change_is_finished_first_and_alone() {
    let mut scene = Scene::steady();
    scene.joint = Some(vec![set(&[1, 2, 3]), set(&[1, 2, 4])]);
    scene.members.push(Scene::replica(9));
    scene.members[0].node_priority = 10;
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::FinishMembershipChange {
            voters: set(&[1, 2, 4])
        }]
    );
}

/// Pins that a live read-only replica outside the membership is admitted as a learner at
/// the address it gossips.
#[test]
fn a_replica_outside_the_cluster_is_added_as_a_learner() {
    let mut scene = Scene::steady();
    scene.members.push(Scene::replica(9));
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::AddLearner {
            node: 9,
            addr: addr(9),
            replica: true,
            replaces: None,
        }]
    );
}

/// Pins the members never admitted: one gossip thinks dead, one already in the membership
/// (a learner being caught up), one of another cluster.
#[test]
fn dead_known_and_foreign_members_are_not_admitted() {
    let mut scene = Scene::steady();
    scene.learners = vec![8];
    let dead = NodeStatus {
        is_alive: false,
        ..Scene::replica(7)
    };
    let known = Scene::replica(8);
    let foreign = NodeStatus {
        cluster_id: Some(OTHER_CLUSTER),
        ..Scene::replica(9)
    };
    scene.members.extend([dead, known, foreign]);
    assert_eq!(scene.plan(), vec![]);
}

/// Pins that a voter back with a wiped data directory (a new id at voter 3's address) is
/// admitted as a learner, named as voter 3's successor.
#[test]
fn a_new_identity_at_a_voters_address_is_added_as_its_successor() {
    let mut scene = Scene::steady();
    scene.members = vec![member(2, 2), member(4, 3)];
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::AddLearner {
            node: 4,
            addr: addr_of(&member(4, 3), CLUSTER),
            replica: false,
            replaces: Some(3),
        }]
    );
}

/// Pins that a voter outside the cluster at no voter's address is warned about once, and
/// not admitted.
#[test]
fn a_surplus_voter_is_warned_about_once() {
    let mut scene = Scene::steady();
    scene.members.push(member(6, 6));
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::WarnSurplusVoter {
            node: 6,
            endpoint: ("10.0.0.6".into(), 2113),
        }]
    );
    scene.warned.insert(6);
    assert_eq!(scene.plan(), vec![]);
}

/// Pins that a successor learner that holds the leader's last entry is swapped in for the
/// voter whose address it took, and that nothing else is done that round (not even a
/// transfer a higher priority asks for).
#[test]
fn a_caught_up_successor_replaces_its_voter_and_ends_the_round() {
    let mut scene = with_successor_learner(100);
    scene.members[0].node_priority = 10;
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::ReplaceVoter {
            old: 3,
            new: 4,
            voters: set(&[1, 2, 4]),
        }]
    );
}

/// Pins that a successor still behind the leader's last entry waits: the voters stay.
#[test]
fn a_successor_behind_the_log_is_not_swapped_in() {
    assert_eq!(with_successor_learner(99).plan(), vec![]);
    let mut unknown = with_successor_learner(0);
    unknown.matched.remove(&4);
    assert_eq!(unknown.plan(), vec![]);
}

/// Pins the learners never swapped in: a read-only replica (even at a voter's address) and
/// a learner at no voter's address.
#[test]
fn replicas_and_learners_at_no_voters_address_are_not_swapped_in() {
    let mut replica = with_successor_learner(100);
    replica.members[1].read_only_replica = true;
    assert_eq!(replica.plan(), vec![]);

    let mut elsewhere = Scene::steady();
    elsewhere.learners = vec![8];
    elsewhere.matched.insert(8, 100);
    elsewhere.members.push(member(8, 8));
    // Node 8's membership entry is at 10.0.0.8, where no voter is.
    assert_eq!(elsewhere.plan(), vec![]);
}

/// Pins the priority transfer: to the caught-up live voter with the highest priority above
/// this node's, ties going to the highest id.
#[test]
fn leadership_goes_to_the_best_caught_up_voter_of_higher_priority() {
    let mut scene = Scene::steady();
    scene.members[0].node_priority = 5;
    scene.members[1].node_priority = 5;
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::TransferLeadership {
            to: 3,
            priority: 5,
            my_priority: 0,
        }]
    );
    scene.members[0].node_priority = 7;
    assert_eq!(
        scene.plan(),
        vec![LeaderAction::TransferLeadership {
            to: 2,
            priority: 7,
            my_priority: 0,
        }]
    );
}

/// Pins every voter leadership never goes to: one of no higher priority, one gossip thinks
/// dead, one that resigned, one behind the log, a learner, and this node itself.
#[test]
fn leadership_goes_to_nobody_unfit() {
    let fit = |scene: &mut Scene, f: fn(&mut NodeStatus)| {
        scene.members = vec![NodeStatus {
            node_priority: 9,
            ..member(2, 2)
        }];
        f(&mut scene.members[0]);
        scene.plan()
    };
    let mut scene = Scene::steady();
    assert_eq!(fit(&mut scene, |_| {}).len(), 1, "the fit voter takes it");
    assert_eq!(fit(&mut scene, |m| m.node_priority = 0), vec![]);
    assert_eq!(fit(&mut scene, |m| m.is_alive = false), vec![]);
    assert_eq!(fit(&mut scene, |m| m.resigned = true), vec![]);
    assert_eq!(fit(&mut scene, |m| m.node_id = 1), vec![]);
    scene.matched.insert(2, 99);
    assert_eq!(fit(&mut scene, |_| {}), vec![]);
    scene.matched.insert(2, 100);
    scene.voters.remove(&2);
    scene.learners = vec![2];
    assert_eq!(fit(&mut scene, |_| {}), vec![]);
}

/// Pins the pause between transfers: none within [`PRIORITY_TRANSFER_PAUSE`] of the last,
/// one again after it.
#[test]
fn transfers_for_priority_pause_between_them() {
    let mut scene = Scene::steady();
    scene.members[0].node_priority = 9;
    scene.since_last_transfer = Some(PRIORITY_TRANSFER_PAUSE - Duration::from_millis(1));
    assert_eq!(scene.plan(), vec![]);
    scene.since_last_transfer = Some(PRIORITY_TRANSFER_PAUSE);
    assert_eq!(scene.plan().len(), 1);
}

/// Pins the order of one round's actions: the resignation cleared, then the members
/// admitted in gossip's order, then the transfer.
#[test]
fn a_round_clears_then_admits_then_transfers() {
    let mut scene = Scene::steady();
    scene.resigned_in_term = Some(2);
    scene.members[0].node_priority = 9;
    scene.members.push(Scene::replica(9));
    scene.members.push(member(6, 6));
    let kinds: Vec<&str> = scene
        .plan()
        .iter()
        .map(|a| match a {
            LeaderAction::ClearResignation { .. } => "clear",
            LeaderAction::AddLearner { .. } => "learner",
            LeaderAction::WarnSurplusVoter { .. } => "surplus",
            LeaderAction::TransferLeadership { .. } => "transfer",
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert_eq!(kinds, ["clear", "learner", "surplus", "transfer"]);
}
