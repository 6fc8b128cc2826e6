//! The cluster's background work on each node: the replication listener, the gossip rounds,
//! and the controller that forms the cluster once, admits read-only replicas and replaced
//! nodes, and moves leadership to the node with the highest priority. What the leader does
//! each round is decided apart from doing it: `lead.rs` decides (a pure function, unit
//! tested), `lead` here gathers what it decides on and carries out the actions.
//!
//! Formation (docs/design.md decision 8): a voter with an empty log that has found `ClusterSize`
//! voters with empty logs through gossip, none of them in a cluster already, forms the
//! cluster if it has the lowest node id among them: it initialises the consensus engine with
//! exactly those voters and a new cluster id, stored in the membership entry of the log. A
//! node never forms a cluster alone when `ClusterSize` is above 1, so a node that cannot find
//! its peers stays leaderless instead of accepting writes on its own.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use openraft::async_runtime::WatchReceiver;
use openraft::ServerState;

use crate::node::{AdminError, Node, NodeStatus};
use crate::transport::{self, Handler, Reply, Request, StreamHandler};
use crate::types::{NodeAddr, TypeConfig};
use lead::{addr_of, LeaderAction, LeaderView};

mod lead;

type Metrics = openraft::RaftMetrics<TypeConfig>;

/// Starts the listener, gossip and the controller; they stop with the node.
pub(crate) fn spawn(
    node: &Node,
    listener: Box<dyn crate::net::Listener>,
    gossip: Arc<dyn crate::net::GossipClient>,
) {
    serve_internal_port(node, listener);
    tokio::spawn(gossip_loop(node.clone(), gossip));
    tokio::spawn(control_loop(node.clone()));
}

/// What the guard (`guard.rs`) needs to know of this node now.
fn guard_view(node: &Node) -> crate::guard::View {
    let metrics = node.raft().server_metrics();
    let metrics = metrics.borrow_watched();
    crate::guard::View {
        me: node.node_id(),
        members: metrics
            .membership_config
            .membership()
            .nodes()
            .map(|(id, _)| *id)
            .collect(),
        term: metrics.vote.leader_id().term,
    }
}

/// The guard's verdict on a raft request's vote, overruling "not a member" for a member of
/// this node's cluster that gossip vouches for (its log may not hold the newest membership).
fn admit(node: &Node, vote: &crate::types::Vote, from: u64) -> Result<(), crate::guard::Refusal> {
    match crate::guard::check_vote(vote, from, &guard_view(node)) {
        Err(crate::guard::Refusal::NotAMember(id))
            if node
                .cluster_id()
                .is_some_and(|ours| node.member_table().vouches_for(id, ours)) =>
        {
            Ok(())
        }
        verdict => verdict,
    }
}

/// Keeps the cluster id the handshake and gossip judge by current as soon as the membership
/// changes, on every node (a single node has no control loop). Without it a handshake was
/// judged as if this node belonged to no cluster until the control loop's next refresh, and
/// a single node whose start-up refresh came before openraft published the membership never
/// learnt its cluster id: it merged another cluster's gossip and listed its leader beside
/// itself (issue 11 item 3).
pub(crate) async fn follow_cluster_id(node: Node) {
    let mut server = node.raft().server_metrics();
    let mut shutdown = node.shutdown_signal();
    loop {
        node.refresh_cluster_id();
        tokio::select! {
            changed = server.changed() => {
                if changed.is_err() {
                    // The engine's task ended: fatal unless the node is shutting down.
                    node.engine_ended();
                    return;
                }
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Serves the internal port on `listener` until the node shuts down.
pub(crate) fn serve_internal_port(node: &Node, listener: Box<dyn crate::net::Listener>) {
    tokio::spawn(transport::serve(
        listener,
        node.local_id(),
        handler(node.clone()),
        stream_handler(node.clone()),
        node.shutdown_signal(),
    ));
}

fn handler(node: Node) -> Handler {
    Arc::new(move |from, request| {
        let node = node.clone();
        Box::pin(async move {
            let verdict =
                crate::guard::claim(&request).map_or(Ok(()), |vote| admit(&node, vote, from));
            if let Err(refusal) = verdict {
                // Not a WARN: a hostile peer could fill the log with them.
                tracing::debug!(%refusal, "refused a raft request");
                return Reply::Failed(crate::guard::REFUSED.into());
            }
            let raft = &node.raft();
            let failed = |e: &dyn std::fmt::Display| Reply::Failed(e.to_string());
            match request {
                Request::AppendEntries(rpc) => match raft.append_entries(rpc).await {
                    Ok(response) => Reply::AppendEntries(response),
                    Err(e) => failed(&e),
                },
                Request::Vote(rpc) => match raft.vote(rpc).await {
                    Ok(response) => Reply::Vote(response),
                    Err(e) => failed(&e),
                },
                Request::PreVote(rpc) => match raft.pre_vote(rpc).await {
                    Ok(response) => Reply::Vote(response),
                    Err(e) => failed(&e),
                },
                Request::TransferLeader(rpc) => match raft.handle_transfer_leader(rpc).await {
                    Ok(response) => Reply::TransferLeader(response),
                    Err(e) => failed(&e),
                },
                Request::Forward(command) => Reply::Forwarded(node.handle_forward(command).await),
                // The transport serves this itself (`stream_handler`).
                Request::StreamAppend => Reply::Failed("unexpected StreamAppend".into()),
            }
        })
    })
}

/// Streaming replication on a follower: openraft pipelines the requests and answers in order.
/// Every request of the stream passes the guard, or the stream ends there.
fn stream_handler(node: Node) -> StreamHandler {
    use futures::StreamExt;
    Arc::new(move |from, requests| {
        let guarded = node.clone();
        let requests = requests.take_while(move |request| {
            let admitted = admit(&guarded, &request.vote, from);
            if let Err(refusal) = &admitted {
                tracing::debug!(%refusal, "refused a replication stream");
            }
            futures::future::ready(admitted.is_ok())
        });
        let replies = node.raft().stream_append(Box::pin(requests));
        Box::pin(replies.map(|reply| reply.map_err(|fatal| fatal.to_string())))
    })
}

async fn gossip_loop(node: Node, client: Arc<dyn crate::net::GossipClient>) {
    use crate::net::GossipCallError;
    let config = node.member_table().config().clone();
    let mut shutdown = node.shutdown_signal();
    let me = node.config().gossip_advertised.clone();
    loop {
        let targets = node.member_table().targets().await;
        let message = node.gossip_message();
        let rounds = targets.into_iter().filter(|t| *t != me).map(|endpoint| {
            let client = client.clone();
            let message = &message;
            let node = node.clone();
            async move {
                let exchange = client.exchange(&endpoint, message);
                match tokio::time::timeout(config.timeout, exchange).await {
                    Ok(Ok(reply)) => {
                        let ours = node.cluster_id();
                        match node.member_table().check(&reply, ours) {
                            Ok(()) => node.member_table().merge(&reply, ours),
                            Err(refused) => tracing::warn!("{refused}"),
                        }
                    }
                    Ok(Err(GossipCallError::Refused(e))) => tracing::warn!("gossip refused: {e}"),
                    Ok(Err(GossipCallError::BadReply(e))) => {
                        tracing::debug!("bad gossip reply: {e}")
                    }
                    Ok(Err(GossipCallError::Unreachable(e))) => {
                        tracing::debug!("gossip failed: {e}");
                        node.member_table().mark_unreachable(&endpoint);
                    }
                    Err(_) => {
                        tracing::debug!(?endpoint, "gossip timed out");
                        node.member_table().mark_unreachable(&endpoint);
                    }
                }
            }
        });
        futures::future::join_all(rounds).await;
        // Gossip again after the interval, or at once when this node's role or leader
        // changes, so that every member's view (and the clients reading it) follows an
        // election within a round trip rather than a gossip interval.
        let deadline = tokio::time::Instant::now() + config.interval;
        let seen = role(&node);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = shutdown.changed() => return,
                _ = tokio::time::sleep(ROLE_POLL) => {
                    if role(&node) != seen {
                        break;
                    }
                }
            }
        }
    }
}

/// How often the gossip loop looks for a change of role or leader between rounds.
const ROLE_POLL: Duration = Duration::from_millis(50);

/// What other members need to hear about at once.
fn role(node: &Node) -> (Option<u64>, crate::VNodeState) {
    let leader = node.raft().metrics().borrow_watched().current_leader;
    (leader, node.status().state)
}

struct ControlState {
    pending_learners: Arc<Mutex<HashSet<u64>>>,
    last_transfer: Option<Instant>,
    last_progress_log: Option<Instant>,
    warned_surplus: HashSet<u64>,
}

async fn control_loop(node: Node) {
    let interval = (node.member_table().config().interval / 2)
        .clamp(Duration::from_millis(50), Duration::from_millis(500));
    let mut shutdown = node.shutdown_signal();
    let mut state = ControlState {
        pending_learners: Arc::new(Mutex::new(HashSet::new())),
        last_transfer: None,
        last_progress_log: None,
        warned_surplus: HashSet::new(),
    };
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.changed() => return,
        }
        node.refresh_cluster_id();
        let metrics = node.raft().metrics().borrow_watched().clone();
        let initialized = metrics
            .membership_config
            .membership()
            .nodes()
            .next()
            .is_some();
        if !initialized {
            if !node.config().read_only_replica && node.log_is_empty() {
                try_form(&node, &mut state).await;
            }
            continue;
        }
        if metrics.state == ServerState::Leader {
            lead(&node, &metrics, &mut state).await;
        }
    }
}

async fn try_form(node: &Node, state: &mut ControlState) {
    let size = node.config().cluster_size as usize;
    let others = node.member_table().members();
    let me = node.status();
    if let Some(formed) = others.iter().find(|m| m.is_alive && m.cluster_id.is_some()) {
        log_progress(state, || {
            tracing::info!(
                cluster = ?formed.cluster_id,
                "found an existing cluster; waiting to be admitted by its leader"
            )
        });
        return;
    }
    let mut candidates: Vec<&NodeStatus> = others
        .iter()
        .filter(|m| {
            m.is_alive
                && !m.read_only_replica
                && m.cluster_id.is_none()
                && m.state == crate::VNodeState::DiscoverLeader
        })
        .collect();
    candidates.push(&me);
    candidates.sort_by_key(|m| m.node_id);
    candidates.dedup_by_key(|m| m.node_id);
    if candidates.len() < size {
        log_progress(state, || {
            tracing::info!(
                found = candidates.len(),
                cluster_size = size,
                "discovering: waiting for the other voters before forming the cluster"
            )
        });
        return;
    }
    let chosen = &candidates[..size];
    if chosen[0].node_id != me.node_id {
        return;
    }
    let cluster_id = crate::determinism::new_uuid();
    let members: BTreeMap<u64, NodeAddr> = chosen
        .iter()
        .map(|m| (m.node_id, addr_of(m, cluster_id)))
        .collect();
    tracing::info!(%cluster_id, members = ?members, "forming the cluster");
    match node.raft().initialize(members).await {
        Ok(()) => node.refresh_cluster_id(),
        Err(e) => tracing::warn!(error = %e, "forming the cluster failed"),
    }
}

fn log_progress(state: &mut ControlState, log: impl FnOnce()) {
    let due = state
        .last_progress_log
        .is_none_or(|t| t.elapsed() > Duration::from_secs(5));
    if due {
        state.last_progress_log = Some(Instant::now());
        log();
    }
}

fn matched_index(metrics: &Metrics, id: u64) -> Option<u64> {
    metrics
        .replication
        .as_ref()
        .and_then(|r| r.get(&id))
        .and_then(|m| m.as_ref().map(|log_id| log_id.index))
}

/// The leader's duties this round: gathers what it knows ([`lead::LeaderView`]), asks
/// [`lead::plan_leadership`] what to do, and does it.
async fn lead(node: &Node, metrics: &Metrics, state: &mut ControlState) {
    let membership = metrics.membership_config.membership();
    let members = node.member_table().members();
    let matched = metrics
        .replication
        .iter()
        .flatten()
        .filter_map(|(&id, log_id)| log_id.as_ref().map(|l| (id, l.index)))
        .collect();
    let resigned_in_term = *node.resigned_in_term().lock().expect("resign lock");
    let view = LeaderView {
        me: node.node_id(),
        my_priority: node.priority(),
        cluster_id: node.cluster_id(),
        term: metrics.current_term,
        resigned_in_term,
        joint: membership.get_joint_config().clone(),
        nodes: membership
            .nodes()
            .map(|(id, addr)| (*id, addr.clone()))
            .collect(),
        voters: membership.voter_ids().collect(),
        learners: membership.learner_ids().collect(),
        members: &members,
        last_log: metrics.last_log_index.unwrap_or(0),
        matched,
        warned_surplus: &state.warned_surplus,
        since_last_transfer: state.last_transfer.map(|t| t.elapsed()),
    };
    for action in lead::plan_leadership(&view) {
        carry_out(node, state, action).await;
    }
}

/// Does one thing [`lead::plan_leadership`] decided, with its log line.
async fn carry_out(node: &Node, state: &mut ControlState, action: LeaderAction) {
    match action {
        LeaderAction::ClearResignation { term } => {
            let mut resigned = node.resigned_in_term().lock().expect("resign lock");
            // Unless the operator resigned again since the view was taken.
            if *resigned == Some(term) {
                *resigned = None;
            }
        }
        // A membership change interrupted between its two phases (the leader that started
        // it lost leadership) leaves a joint configuration: finish it (`lead.rs`).
        LeaderAction::FinishMembershipChange { voters } => {
            tracing::info!(voters = ?voters, "finishing an interrupted membership change");
            if let Err(e) = node.raft().change_membership(voters, false).await {
                tracing::warn!(error = %e, "finishing the membership change failed");
            }
        }
        LeaderAction::AddLearner {
            node: id,
            addr,
            replica,
            replaces,
        } => {
            if let Some(old) = replaces {
                tracing::info!(
                    new = id,
                    old,
                    "a node with a new identity is at a voter's address; admitting it as a learner"
                );
            }
            add_learner(node, state, id, addr, replica);
        }
        LeaderAction::WarnSurplusVoter { node: id, endpoint } => {
            state.warned_surplus.insert(id);
            tracing::warn!(
                node = id,
                endpoint = ?endpoint,
                "a voter outside the cluster was found; the cluster already has ClusterSize voters, so it is not admitted"
            );
        }
        LeaderAction::ReplaceVoter { old, new, voters } => {
            tracing::info!(old, new, "replacing a voter with its successor");
            if let Err(e) = node.raft().change_membership(voters, false).await {
                tracing::warn!(error = %e, "replacing a voter failed");
            }
        }
        LeaderAction::TransferLeadership {
            to,
            priority,
            my_priority,
        } => {
            tracing::info!(
                to,
                priority,
                my_priority,
                "handing leadership to a voter with a higher priority"
            );
            state.last_transfer = Some(Instant::now());
            if let Err(e) = node.raft().trigger().transfer_leader(to).await {
                tracing::warn!(error = %e, "leadership transfer failed");
            }
        }
    }
}

/// Adds learner `id` at `addr` in the background, unless it is being added already.
fn add_learner(node: &Node, state: &mut ControlState, id: u64, addr: NodeAddr, replica: bool) {
    if !state
        .pending_learners
        .lock()
        .expect("pending lock")
        .insert(id)
    {
        return;
    }
    let pending = state.pending_learners.clone();
    let raft = node.raft().clone();
    tracing::info!(node = id, %addr, replica, "adding a learner");
    tokio::spawn(async move {
        if let Err(e) = raft.add_learner(id, addr, false).await {
            tracing::warn!(node = id, error = %e, "adding a learner failed");
        }
        pending.lock().expect("pending lock").remove(&id);
    });
}

pub(crate) async fn resign(node: &Node) -> Result<(), AdminError> {
    let metrics = node.raft().metrics().borrow_watched().clone();
    if metrics.state != ServerState::Leader {
        tracing::info!("resign requested on a node that is not the leader: nothing to do");
        return Ok(());
    }
    let me = node.node_id();
    let members = node.member_table().members();
    let alive = |id: u64| members.iter().any(|m| m.node_id == id && m.is_alive);
    let priority = |id: u64| {
        members
            .iter()
            .find(|m| m.node_id == id)
            .map_or(0, |m| m.node_priority)
    };
    let best = metrics
        .membership_config
        .membership()
        .voter_ids()
        .filter(|&id| id != me && alive(id))
        .max_by_key(|&id| (priority(id), matched_index(&metrics, id).unwrap_or(0)));
    let Some(to) = best else {
        tracing::warn!("resign requested, but no other live voter can take over");
        return Ok(());
    };
    *node.resigned_in_term().lock().expect("resign lock") = Some(metrics.current_term);
    tracing::info!(to, "resigning leadership");
    node.raft()
        .trigger()
        .transfer_leader(to)
        .await
        .map_err(|fatal| {
            let cause = crate::node::render_chain(&fatal);
            node.stop_on_fatal(cause.clone());
            AdminError::Fatal(cause)
        })
}
