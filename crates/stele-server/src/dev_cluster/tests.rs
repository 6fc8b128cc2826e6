//! The layout, the command line, and reading the nodes' `/gossip`.

use std::path::Path;

use super::layout::{connection_string, node_args, plan};
use super::readiness::{leader_agreement, own_state};
use super::*;

fn options(args: &[&str]) -> Options {
    Options::try_parse_from(std::iter::once("stele dev-cluster").chain(args.iter().copied()))
        .unwrap()
}

#[test]
fn distinct_addresses_share_the_base_ports() {
    let members = plan(&options(&["--read-only-replicas", "1"]), true).unwrap();
    let shown: Vec<String> = members
        .iter()
        .map(|m| {
            format!(
                "{} {} {} {}",
                m.name,
                m.http_endpoint(),
                m.int_port,
                m.read_only_replica
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            "node-1 127.0.0.1:2113 1112 false",
            "node-2 127.0.0.2:2113 1112 false",
            "node-3 127.0.0.3:2113 1112 false",
            "node-4 127.0.0.4:2113 1112 true",
        ]
    );
    assert_eq!(
        connection_string(&members, None),
        "esdb://127.0.0.1:2113,127.0.0.2:2113,127.0.0.3:2113?tls=false"
    );
}

#[test]
fn one_address_gives_each_node_its_own_ports() {
    let members = plan(
        &options(&[
            "--nodes",
            "2",
            "--base-http-port",
            "3000",
            "--base-int-port",
            "4000",
        ]),
        false,
    )
    .unwrap();
    let endpoints: Vec<(String, u16)> = members
        .iter()
        .map(|m| (m.http_endpoint().to_string(), m.int_port))
        .collect();
    assert_eq!(
        endpoints,
        [
            ("127.0.0.1:3000".to_owned(), 4000),
            ("127.0.0.1:3001".to_owned(), 4001)
        ]
    );
}

#[test]
fn overlapping_port_ranges_are_refused() {
    let error = plan(
        &options(&["--base-http-port", "2113", "--base-int-port", "2112"]),
        false,
    )
    .unwrap_err();
    assert!(error.to_string().contains("127.0.0.1:2113"), "{error}");
    assert!(plan(&options(&["--base-http-port", "65535"]), false).is_err());
}

#[test]
fn node_command_lines_use_eventstoredb_options() {
    let members = plan(
        &options(&["--nodes", "2", "--read-only-replicas", "1"]),
        true,
    )
    .unwrap();
    let args = |k: usize, root: Option<&Path>| -> String {
        node_args(&members[k], &members, 2, root, Vec::new())
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        args(1, Some(Path::new("/d"))),
        "--insecure --node-ip 127.0.0.2 --int-ip 127.0.0.2 --http-port 2113 \
         --int-tcp-port 1112 --cluster-size 2 --discover-via-dns false \
         --gossip-seed 127.0.0.1:2113,127.0.0.2:2113 --db /d/node-2"
    );
    assert_eq!(
        args(2, None),
        "--insecure --node-ip 127.0.0.3 --int-ip 127.0.0.3 --http-port 2113 \
         --int-tcp-port 1112 --cluster-size 2 --discover-via-dns false \
         --gossip-seed 127.0.0.1:2113,127.0.0.2:2113 --mem-db --read-only-replica true"
    );
}

#[test]
fn the_command_line_is_checked() {
    let parse = |args: &[&str]| {
        Options::try_parse_from(std::iter::once("stele dev-cluster").chain(args.iter().copied()))
    };
    assert!(parse(&["--nodes", "0"]).is_err());
    assert!(parse(&["--nodes", "x"]).is_err());
    assert!(parse(&["--mem-db", "--dir", "d"]).is_err());
    assert!(parse(&["--unknown"]).is_err());
    let defaults = parse(&[]).unwrap();
    assert_eq!(
        (
            defaults.nodes,
            defaults.read_only_replicas,
            defaults.base_http_port,
            defaults.base_int_port
        ),
        (3, 0, 2113, 1112)
    );
}

#[test]
fn the_role_is_the_state_of_the_member_at_the_node_address() {
    let members = plan(&options(&["--nodes", "2"]), true).unwrap();
    let gossip = serde_json::json!({"members": [
        {"httpEndPointIp": "127.0.0.1", "httpEndPointPort": 2113, "state": "Leader"},
        {"httpEndPointIp": "127.0.0.2", "httpEndPointPort": 2113, "state": "Follower"},
    ]});
    assert_eq!(own_state(&gossip, &members[1]).as_deref(), Some("Follower"));
    assert_eq!(own_state(&gossip, &members[0]).as_deref(), Some("Leader"));
    assert_eq!(own_state(&serde_json::json!({}), &members[0]), None);
}

#[test]
fn the_leader_counts_once_every_node_names_the_same_one() {
    let members = plan(&options(&["--nodes", "2"]), true).unwrap();
    let view = |states: [&str; 2]| -> Result<serde_json::Value, String> {
        Ok(serde_json::json!({"members": [
            {"httpEndPointIp": "127.0.0.1", "httpEndPointPort": 2113, "state": states[0], "isAlive": true},
            {"httpEndPointIp": "127.0.0.2", "httpEndPointPort": 2113, "state": states[1], "isAlive": true},
        ]}))
    };
    let agreed = leader_agreement(
        &members,
        &[view(["Leader", "Follower"]), view(["Leader", "Follower"])],
    );
    assert_eq!(agreed.as_deref(), Ok("node-1 (127.0.0.1:2113)"));
    let stale = leader_agreement(
        &members,
        &[
            view(["Leader", "Follower"]),
            view(["DiscoverLeader", "Follower"]),
        ],
    );
    assert_eq!(stale, Err("node-2 knows no leader yet".to_owned()));
    let split = leader_agreement(
        &members,
        &[view(["Leader", "Follower"]), view(["Follower", "Leader"])],
    );
    assert!(split.unwrap_err().contains("names 127.0.0.2:2113"));
    let unreachable = leader_agreement(
        &members,
        &[view(["Leader", "Follower"]), Err("no /gossip".into())],
    );
    assert_eq!(unreachable, Err("node-2: no /gossip".to_owned()));
}
