//! Waiting for the nodes: every `/health/live` answering 204, then every `/gossip` naming
//! the same leader; and each node's role as its own `/gossip` reports it.

use std::time::Duration;

use futures::future::join_all;
use tokio::time::Instant;

use super::console::Console;
use super::layout::Member;

/// How long every node together may take to answer `/health/live` with 204.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often readiness is polled.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(250);
/// How long, once every node is ready, their `/gossip` may take to name the same leader
/// before the connection string is printed anyway (with a warning).
const LEADER_AGREEMENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How often the nodes still starting are named while waiting.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(5);

/// Polls every node's `/health/live` until all answer 204, naming the slow ones every
/// [`PROGRESS_INTERVAL`]. `Err` with the last answers after [`READY_TIMEOUT`].
async fn await_ready(
    http: &reqwest::Client,
    members: &[Member],
    console: &Console,
) -> Result<(), String> {
    let started = Instant::now();
    let deadline = started + READY_TIMEOUT;
    let mut ready = vec![false; members.len()];
    let mut last_answer = vec![String::from("no answer yet"); members.len()];
    let mut next_progress = started + PROGRESS_INTERVAL;
    console
        .say(format!(
            "stele dev-cluster: waiting for {} nodes to answer /health/live (up to {}s)",
            members.len(),
            READY_TIMEOUT.as_secs()
        ))
        .await;
    loop {
        let answers = join_all(
            members
                .iter()
                .map(|member| http.get(member.url("/health/live")).send()),
        )
        .await;
        for (k, answer) in answers.into_iter().enumerate() {
            if ready[k] {
                continue;
            }
            match answer {
                Ok(response) if response.status().as_u16() == 204 => {
                    ready[k] = true;
                    let count = ready.iter().filter(|r| **r).count();
                    console
                        .say(format!(
                            "stele dev-cluster: {} is ready ({count}/{} after {:.1}s)",
                            members[k].name,
                            members.len(),
                            started.elapsed().as_secs_f64()
                        ))
                        .await;
                }
                Ok(response) => last_answer[k] = response.status().to_string(),
                Err(error) if error.is_connect() => last_answer[k] = "not listening yet".into(),
                Err(error) if error.is_timeout() => last_answer[k] = "no answer in time".into(),
                Err(error) => last_answer[k] = error.to_string(),
            }
        }
        if ready.iter().all(|r| *r) {
            return Ok(());
        }
        let waiting = || {
            members
                .iter()
                .zip(&ready)
                .zip(&last_answer)
                .filter(|((_, ready), _)| !**ready)
                .map(|((member, _), answer)| format!("{} ({answer})", member.name))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "not every node was ready within {}s; still waiting for {}",
                READY_TIMEOUT.as_secs(),
                waiting()
            ));
        }
        if now >= next_progress {
            console
                .say(format!(
                    "stele dev-cluster: still waiting for {}",
                    waiting()
                ))
                .await;
            next_progress = now + PROGRESS_INTERVAL;
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// Every node ready, then (softly) agreeing on a leader.
pub(super) async fn await_cluster(
    http: &reqwest::Client,
    members: &[Member],
    console: &Console,
) -> Result<(), String> {
    await_ready(http, members, console).await?;
    await_leader(http, members, console).await;
    Ok(())
}

/// Waits until every node's `/gossip` names the same single leader, so that a client that
/// discovers through any of them is sent to the leader at once. A node becomes ready before
/// its gossip has caught up with the others (a follower lists the leader as it last heard of
/// it), and a client that reads such a list is answered NotLeader. After
/// [`LEADER_AGREEMENT_TIMEOUT`] this only warns: the cluster runs, clients retry.
async fn await_leader(http: &reqwest::Client, members: &[Member], console: &Console) {
    let deadline = Instant::now() + LEADER_AGREEMENT_TIMEOUT;
    let mut announced = false;
    loop {
        let views = join_all(members.iter().map(|member| gossip(http, member))).await;
        match leader_agreement(members, &views) {
            Ok(leader) => {
                console
                    .say(format!(
                        "stele dev-cluster: every node's /gossip names {leader} as the leader"
                    ))
                    .await;
                return;
            }
            Err(disagreement) if Instant::now() >= deadline => {
                console
                    .warn(format!(
                        "the nodes do not agree on a leader after {}s ({disagreement}); clients \
                         may be answered NotLeader until they do",
                        LEADER_AGREEMENT_TIMEOUT.as_secs()
                    ))
                    .await;
                return;
            }
            Err(disagreement) => {
                if !announced {
                    console
                        .say(format!(
                            "stele dev-cluster: waiting for every node's /gossip to name the same \
                             leader ({disagreement})"
                        ))
                        .await;
                    announced = true;
                }
                tokio::time::sleep(READY_POLL_INTERVAL).await;
            }
        }
    }
}

/// A node's `/gossip`, or why it could not be read.
async fn gossip(http: &reqwest::Client, member: &Member) -> Result<serde_json::Value, String> {
    let response = http
        .get(member.url("/gossip"))
        .send()
        .await
        .map_err(|error| format!("no /gossip: {error}"))?;
    response
        .json()
        .await
        .map_err(|error| format!("unreadable /gossip: {error}"))
}

/// The leader every node's gossip names (`node-k (ip:port)`), or the first disagreement.
pub(super) fn leader_agreement(
    members: &[Member],
    views: &[Result<serde_json::Value, String>],
) -> Result<String, String> {
    let mut agreed: Option<String> = None;
    for (member, view) in members.iter().zip(views) {
        let gossip = view
            .as_ref()
            .map_err(|error| format!("{}: {error}", member.name))?;
        let leaders: Vec<String> = gossip["members"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|m| m["state"] == "Leader" && m["isAlive"] != false)
            .map(|m| {
                format!(
                    "{}:{}",
                    m["httpEndPointIp"].as_str().unwrap_or("?"),
                    m["httpEndPointPort"]
                )
            })
            .collect();
        match leaders.as_slice() {
            [leader] => match &agreed {
                Some(other) if other != leader => {
                    return Err(format!(
                        "{} names {leader}, another node {other}",
                        member.name
                    ))
                }
                _ => agreed = Some(leader.clone()),
            },
            [] => return Err(format!("{} knows no leader yet", member.name)),
            several => return Err(format!("{} names {} leaders", member.name, several.len())),
        }
    }
    let leader = agreed.ok_or_else(|| "no nodes".to_owned())?;
    Ok(
        match members
            .iter()
            .find(|m| m.http_endpoint().to_string() == leader)
        {
            Some(member) => format!("{} ({leader})", member.name),
            None => leader,
        },
    )
}

/// Prints each node's role as its own `/gossip` reports it.
pub(super) async fn report_roles(http: &reqwest::Client, members: &[Member], console: &Console) {
    let answers = join_all(members.iter().map(|member| role(http, member))).await;
    for (member, role) in members.iter().zip(answers) {
        console
            .say(format!(
                "stele dev-cluster: {} http://{} {}",
                member.name,
                member.http_endpoint(),
                role
            ))
            .await;
    }
}

/// The `state` of the member of `/gossip` that is this node (matched by its HTTP endpoint).
async fn role(http: &reqwest::Client, member: &Member) -> String {
    match gossip(http, member).await {
        Ok(gossip) => {
            own_state(&gossip, member).unwrap_or_else(|| "(not in its own /gossip)".into())
        }
        Err(error) => format!("({error})"),
    }
}

pub(super) fn own_state(gossip: &serde_json::Value, member: &Member) -> Option<String> {
    let ip = member.ip.to_string();
    gossip["members"]
        .as_array()?
        .iter()
        .find(|m| {
            m["httpEndPointIp"].as_str() == Some(ip.as_str())
                && m["httpEndPointPort"].as_u64() == Some(u64::from(member.http_port))
        })
        .and_then(|m| m["state"].as_str())
        .map(str::to_owned)
}
