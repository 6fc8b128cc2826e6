use std::net::IpAddr;
use std::path::{Path, PathBuf};

use super::*;

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn env(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn ok(cli: &[&str], vars: &[(&str, &str)]) -> (Options, Vec<String>) {
    parse(&args(cli), &env(vars)).unwrap_or_else(|e| panic!("{e}"))
}

fn err(cli: &[&str], vars: &[(&str, &str)]) -> ConfigError {
    match parse(&args(cli), &env(vars)) {
        Ok(_) => panic!("{cli:?} {vars:?} parsed"),
        Err(error) => error,
    }
}

/// A config file in a fresh directory, kept alive with the returned guard.
fn yaml_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("stele.conf");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

fn with_config<'a>(path: &'a Path, rest: &[&'a str]) -> Vec<&'a str> {
    let mut list = vec!["--config", path.to_str().unwrap()];
    list.extend_from_slice(rest);
    list
}

const CLUSTER_NODE_YAML: &str = "---
Db: /tmp/stele-n1/db
Index: /tmp/stele-n1/db/index
Log: /tmp/stele-n1/log
Insecure: true
IntIp: 127.0.0.1
ExtIp: 127.0.0.1
HttpPort: 2113
IntTcpPort: 1112
EnableExternalTcp: false
EnableAtomPubOverHTTP: true
ClusterSize: 3
DiscoverViaDns: false
GossipSeed: 127.0.0.2:2113,127.0.0.3:2113
RunProjections: All
GossipIntervalMs: 2000
GossipTimeoutMs: 3000
IntTcpHeartbeatInterval: 5000
IntTcpHeartbeatTimeout: 1000
";

#[test]
fn defaults_are_eventstoredbs() {
    let (o, warnings) = ok(&["--insecure"], &[]);
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(o.db, PathBuf::from("./db"));
    assert_eq!(o.index, None);
    assert_eq!(o.log, PathBuf::from("./log"));
    assert!(!o.mem_db);
    assert_eq!(o.http_port, 2113);
    assert_eq!(o.int_tcp_port, 1112);
    assert_eq!(o.node_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(o.int_ip, "127.0.0.1".parse::<IpAddr>().unwrap());
    assert_eq!(o.advertise_host_to_client_as, None);
    assert_eq!(o.advertise_http_port_to_client_as, None);
    assert_eq!(o.cluster_size, 1);
    assert_eq!(o.chunk_size, 268_435_456);
    assert_eq!(o.max_append_size, 1_048_576);
    assert_eq!(o.run_projections, RunProjections::None);
    assert_eq!(o.log_level, LogLevel::Default);
    assert!(o.gossip_seed.is_empty());
    assert!(o.discover_via_dns);
    assert_eq!(o.cluster_dns, "fake.dns");
    assert_eq!(o.cluster_gossip_port, 2113);
    assert_eq!(o.gossip_interval_ms, 2000);
    assert_eq!(o.gossip_timeout_ms, 2500);
    assert_eq!(o.gossip_allowed_difference_ms, 60_000);
    assert_eq!(o.leader_election_timeout_ms, 1000);
    assert_eq!(o.node_priority, 0);
    assert!(!o.read_only_replica);
    assert_eq!(o.int_tcp_heartbeat_interval, 700);
    assert_eq!(o.int_tcp_heartbeat_timeout, 700);
    assert_eq!(o.commit_count, -1);
    assert_eq!(o.prepare_count, -1);
    assert!(!o.enable_external_tcp);
    assert!(!o.enable_atom_pub_over_http);
    assert_eq!(o.certificate_file, None);
}

#[test]
fn each_source_sets_an_option() {
    assert_eq!(
        ok(&["--insecure", "--cluster-size", "3"], &[])
            .0
            .cluster_size,
        3
    );
    assert_eq!(
        ok(&["--insecure", "--cluster-size=3"], &[]).0.cluster_size,
        3
    );
    assert_eq!(
        ok(&["--insecure", "--ClusterSize=3"], &[]).0.cluster_size,
        3
    );
    for var in [
        "EVENTSTORE_CLUSTER_SIZE",
        "STELE_CLUSTER_SIZE",
        "KURRENTDB_CLUSTER_SIZE",
    ] {
        assert_eq!(
            ok(&["--insecure"], &[(var, "3")]).0.cluster_size,
            3,
            "{var}"
        );
    }
    let (_dir, path) = yaml_file("clustersize: 3\n");
    assert_eq!(
        ok(&with_config(&path, &["--insecure"]), &[]).0.cluster_size,
        3
    );
    let (_dir, path) = yaml_file("ClusterSize: 3\n");
    assert_eq!(
        ok(
            &["--insecure"],
            &[("EVENTSTORE_CONFIG", path.to_str().unwrap())]
        )
        .0
        .cluster_size,
        3
    );
}

#[test]
fn command_line_beats_environment_beats_file_beats_default() {
    let (_dir, path) = yaml_file("ClusterSize: 3\nNodePriority: 4\nHttpPort: 2200\n");
    let (o, _) = ok(
        &with_config(&path, &["--insecure", "--cluster-size", "7"]),
        &[
            ("EVENTSTORE_CLUSTER_SIZE", "5"),
            ("EVENTSTORE_NODE_PRIORITY", "6"),
        ],
    );
    assert_eq!(o.cluster_size, 7);
    assert_eq!(o.node_priority, 6);
    assert_eq!(o.http_port, 2200);
    assert_eq!(o.int_tcp_port, 1112);
}

#[test]
fn stele_variables_beat_eventstore_variables() {
    let vars = [
        ("EVENTSTORE_CLUSTER_SIZE", "3"),
        ("STELE_CLUSTER_SIZE", "5"),
    ];
    assert_eq!(ok(&["--insecure"], &vars).0.cluster_size, 5);
}

#[test]
fn the_last_of_repeated_flags_wins() {
    let (o, _) = ok(
        &["--insecure", "--http-port", "1", "--int-http-port", "2"],
        &[],
    );
    assert_eq!(o.http_port, 2);
}

#[test]
fn an_eventstoredb_cluster_node_file_loads_and_warns_about_what_is_not_acted_on() {
    let (_dir, path) = yaml_file(CLUSTER_NODE_YAML);
    let (o, warnings) = ok(&with_config(&path, &[]), &[]);
    assert_eq!(o.db, PathBuf::from("/tmp/stele-n1/db"));
    assert_eq!(o.index, Some(PathBuf::from("/tmp/stele-n1/db/index")));
    assert!(o.insecure);
    assert_eq!(o.cluster_size, 3);
    assert!(!o.discover_via_dns);
    let seeds: Vec<String> = o.gossip_seed.iter().map(ToString::to_string).collect();
    assert_eq!(seeds, ["127.0.0.2:2113", "127.0.0.3:2113"]);
    assert_eq!(o.run_projections, RunProjections::All);
    assert_eq!(o.gossip_timeout_ms, 3000);
    assert_eq!(o.int_tcp_heartbeat_interval, 5000);
    assert_eq!(o.int_tcp_heartbeat_timeout, 1000);
    assert!(o.enable_atom_pub_over_http);

    let named: Vec<&str> = warnings
        .iter()
        .map(|w| w.split_whitespace().nth(1).unwrap())
        .collect();
    // EnableExternalTcp is set to its default, which is what Stele does. Gossip options are
    // acted on; the heartbeat options are not (heartbeats follow LeaderElectionTimeoutMs),
    // so they are named. RunProjections is acted on.
    assert_eq!(
        named,
        [
            "Log",
            "IntTcpHeartbeatInterval",
            "IntTcpHeartbeatTimeout",
            "EnableAtomPubOverHttp",
        ]
    );
    let atom_pub = warnings
        .iter()
        .find(|w| w.contains("EnableAtomPubOverHttp"))
        .unwrap();
    assert!(
        atom_pub.contains("key EnableAtomPubOverHTTP in config file"),
        "{atom_pub}"
    );
}

#[test]
fn unknown_options_are_errors_that_name_them() {
    let e = err(&["--insecure", "--cluster-sise", "3"], &[]);
    assert_eq!(
        e.to_string(),
        "unknown option: command-line option --cluster-sise (did you mean --cluster-size?)"
    );
    let e = err(&["--insecure"], &[("EVENTSTORE_GOSSIP_SEEDS", "a:1")]);
    assert_eq!(
        e.to_string(),
        "unknown option: environment variable EVENTSTORE_GOSSIP_SEEDS \
         (did you mean EVENTSTORE_GOSSIP_SEED?)"
    );
    let (_dir, path) = yaml_file("Insecure: true\nFrobnicate: 3\n");
    let e = err(&with_config(&path, &[]), &[]);
    assert!(
        matches!(&e, ConfigError::UnknownOption { origin: Origin::ConfigFile { key, .. }, suggestion: None } if key == "Frobnicate"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("key Frobnicate in config file"),
        "{e}"
    );
}

#[test]
fn other_variables_are_left_alone() {
    let (o, warnings) = ok(&["--insecure"], &[("PATH", "/bin"), ("RUST_LOG", "debug")]);
    assert!(warnings.is_empty());
    assert_eq!(o.cluster_size, 1);
}

#[test]
fn allow_unknown_options_turns_unknown_options_into_warnings() {
    let (o, warnings) = ok(
        &[
            "--insecure",
            "--allow-unknown-options",
            "--frobnicate",
            "3",
            "--mem-db",
        ],
        &[],
    );
    assert!(o.mem_db);
    assert_eq!(warnings.len(), 1);
    assert!(warnings[0].contains("--frobnicate"), "{warnings:?}");
}

#[test]
fn bad_values_are_errors_that_name_option_value_and_source() {
    let e = err(&["--insecure", "--http-port", "70000"], &[]);
    assert_eq!(
        e.to_string(),
        "bad value '70000' for option HttpPort (command-line option --http-port): \
         expected an integer from 0 to 65535"
    );
    let e = err(&["--insecure"], &[("STELE_NODE_IP", "localhost")]);
    assert!(
        matches!(&e, ConfigError::BadValue { option: "NodeIp", value, .. } if value == "localhost"),
        "{e:?}"
    );
    assert!(
        e.to_string().contains("environment variable STELE_NODE_IP"),
        "{e}"
    );
    let (_dir, path) = yaml_file("Insecure: true\nRunProjections: Some\n");
    let e = err(&with_config(&path, &[]), &[]);
    assert!(
        matches!(&e, ConfigError::BadValue { option: "RunProjections", value, expected: "None|System|All", .. } if value == "Some"),
        "{e:?}"
    );
    let e = err(&["--insecure", "--gossip-seed", "127.0.0.2"], &[]);
    assert!(
        matches!(
            e,
            ConfigError::BadValue {
                option: "GossipSeed",
                ..
            }
        ),
        "{e:?}"
    );
    let e = err(&["--insecure=yes"], &[]);
    assert!(
        matches!(
            e,
            ConfigError::BadValue {
                option: "Insecure",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn legacy_spellings_are_accepted() {
    let (o, warnings) = ok(
        &[
            "--insecure",
            "--int-http-port",
            "2114",
            "--ext-tcp-port",
            "1115",
            "--mem-db",
            "--ext-ip",
            "127.0.0.5",
            "--int-ip",
            "127.0.0.6",
            "--discover-via-dns",
            "false",
            "--gossip-seed",
            "127.0.0.2:2113,127.0.0.3:2113",
        ],
        &[],
    );
    assert_eq!(o.http_port, 2114);
    assert_eq!(o.ext_tcp_port, 1115);
    assert!(o.mem_db);
    assert_eq!(o.node_ip, "127.0.0.5".parse::<IpAddr>().unwrap());
    assert_eq!(o.int_ip, "127.0.0.6".parse::<IpAddr>().unwrap());
    assert!(!o.discover_via_dns);
    assert_eq!(o.gossip_seed.len(), 2);
    // ExtTcpPort is recognised, not acted on; the gossip options are acted on.
    let named: Vec<&str> = warnings
        .iter()
        .map(|w| w.split_whitespace().nth(1).unwrap())
        .collect();
    assert_eq!(named, ["ExtTcpPort"], "{warnings:?}");

    assert_eq!(
        ok(&["--insecure", "--ext-http-port=2115"], &[]).0.http_port,
        2115
    );
    assert_eq!(
        ok(&["--insecure", "--node-port=2116"], &[]).0.http_port,
        2116
    );
    let (o, _) = ok(
        &["--insecure"],
        &[("EVENTSTORE_REPLICATION_IP", "127.0.0.7")],
    );
    assert_eq!(o.int_ip, "127.0.0.7".parse::<IpAddr>().unwrap());
}

#[test]
fn booleans_take_a_bare_flag_or_a_value() {
    assert!(ok(&["--insecure", "--mem-db"], &[]).0.mem_db);
    assert!(ok(&["--insecure", "--mem-db", "TRUE"], &[]).0.mem_db);
    assert!(!ok(&["--insecure", "--mem-db", "false"], &[]).0.mem_db);
    assert!(!ok(&["--insecure", "--mem-db=False"], &[]).0.mem_db);
    assert!(
        ok(&["--insecure=true", "--mem-db", "--cluster-size", "1"], &[])
            .0
            .mem_db
    );
    assert!(ok(&[], &[("EVENTSTORE_INSECURE", "True")]).0.insecure);
}

#[test]
fn a_missing_value_or_a_stray_argument_is_an_error() {
    let e = err(&["--insecure", "--db"], &[]);
    assert!(
        matches!(e, ConfigError::MissingValue { option: "Db", .. }),
        "{e:?}"
    );
    let e = err(&["--db", "--insecure"], &[]);
    assert!(
        matches!(e, ConfigError::MissingValue { option: "Db", .. }),
        "{e:?}"
    );
    let e = err(&["--insecure", "db"], &[]);
    assert_eq!(e, ConfigError::UnexpectedArgument("db".into()));
    // A negative number is a value, not a flag.
    assert_eq!(
        ok(&["--insecure", "--node-priority", "-1"], &[])
            .0
            .node_priority,
        -1
    );
}

#[test]
fn without_insecure_the_node_needs_a_certificate() {
    // Secure by default (issue 13): a node without Insecure or Dev names the first missing
    // certificate option, and says how to get certificates or opt out.
    let e = err(&[], &[]);
    assert_eq!(
        e,
        ConfigError::TlsOptionMissing {
            option: "CertificateFile"
        }
    );
    assert!(
        e.to_string().contains("stele certs create-node") && e.to_string().contains("--insecure")
    );
    let e = err(&["--certificate-file", "/etc/node.crt"], &[]);
    assert_eq!(
        e,
        ConfigError::TlsOptionMissing {
            option: "CertificatePrivateKeyFile"
        }
    );
    let (o, _) = ok(
        &[
            "--certificate-file",
            "/etc/node.crt",
            "--certificate-private-key-file",
            "/etc/node.key",
        ],
        &[],
    );
    assert!(!o.insecure);
    assert_eq!(
        o.trusted_root_certificates_path,
        PathBuf::from("/etc/ssl/certs")
    );
    assert!(ok(&["--dev"], &[]).0.dev);
    assert!(matches!(
        err(&["--dev", "--insecure"], &[]),
        ConfigError::Conflict { .. }
    ));
    assert!(matches!(
        err(
            &[
                "--certificate-file",
                "a",
                "--certificate-private-key-file",
                "b",
                "--certificate-password",
                "x"
            ],
            &[]
        ),
        ConfigError::Invalid {
            option: "CertificatePassword",
            ..
        }
    ));
    // With Insecure, certificate settings would be ignored: the node says so and stops
    // instead of serving plaintext after a warning (issue 11, item 7).
    let e = err(&["--insecure", "--certificate-file", "/etc/node.crt"], &[]);
    assert!(
        matches!(
            e,
            ConfigError::Conflict {
                option: "Insecure",
                other: "CertificateFile",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("plaintext"), "{e}");
}

/// Issue 11, item 7: `--mem-db --db DIR` kept everything in memory without a word, and a chunk
/// smaller than the largest legal append was accepted; one such append then stopped consensus.
#[test]
fn settings_that_would_be_ignored_or_stop_the_node_are_refused() {
    let e = err(&["--insecure", "--mem-db", "--db", "/var/lib/stele"], &[]);
    assert!(
        matches!(
            e,
            ConfigError::Conflict {
                option: "MemDb",
                other: "Db",
                ..
            }
        ),
        "{e:?}"
    );
    assert!(ok(&["--insecure", "--mem-db"], &[]).0.mem_db);
    let (o, _) = ok(&["--insecure", "--mem-db", "false", "--db", "/d"], &[]);
    assert_eq!(o.db, Path::new("/d"));

    for size in ["100", "65536", "1048575"] {
        let e = err(&["--insecure", "--chunk-size", size], &[]);
        assert!(
            matches!(
                e,
                ConfigError::Invalid {
                    option: "ChunkSize",
                    ..
                }
            ),
            "{size}: {e:?}"
        );
        assert!(e.to_string().contains("MaxAppendSize (1048576)"), "{e}");
    }
    // A chunk that holds the largest append is fine, and so is a smaller append limit.
    ok(&["--insecure", "--chunk-size", "1048576"], &[]);
    ok(
        &[
            "--insecure",
            "--chunk-size",
            "65536",
            "--max-append-size",
            "65536",
        ],
        &[],
    );
    let e = err(
        &[
            "--insecure",
            "--chunk-size",
            "32768",
            "--max-append-size",
            "1024",
        ],
        &[],
    );
    assert!(
        matches!(
            e,
            ConfigError::Invalid {
                option: "ChunkSize",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn one_option_twice_in_one_file_or_environment_is_an_error() {
    let vars = [("EVENTSTORE_HTTP_PORT", "1"), ("EVENTSTORE_NODE_PORT", "2")];
    let e = err(&["--insecure"], &vars);
    assert!(
        matches!(
            e,
            ConfigError::SetTwice {
                option: "HttpPort",
                ..
            }
        ),
        "{e:?}"
    );
    let (_dir, path) = yaml_file("Insecure: true\nHttpPort: 1\nhttpport: 2\n");
    let e = err(&with_config(&path, &[]), &[]);
    assert!(
        matches!(
            e,
            ConfigError::SetTwice {
                option: "HttpPort",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn config_files_are_checked() {
    let e = err(&["--insecure", "--config", "/nonexistent/stele.conf"], &[]);
    assert!(
        matches!(&e, ConfigError::ConfigFile { path, .. } if path == Path::new("/nonexistent/stele.conf")),
        "{e:?}"
    );
    let (_dir, path) = yaml_file("Insecure: true\nConfig: other.conf\n");
    let e = err(&with_config(&path, &[]), &[]);
    assert!(
        matches!(
            e,
            ConfigError::NotAllowedHere {
                option: "Config",
                ..
            }
        ),
        "{e:?}"
    );
    let (_dir, path) = yaml_file("- just\n- a list\n");
    let e = err(&with_config(&path, &["--insecure"]), &[]);
    assert!(matches!(e, ConfigError::ConfigFile { .. }), "{e:?}");
    let (_dir, path) = yaml_file("Insecure: true\nGossipSeed:\n  Host: a\n");
    let e = err(&with_config(&path, &[]), &[]);
    assert!(
        matches!(
            e,
            ConfigError::BadValue {
                option: "GossipSeed",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn config_files_may_be_empty_or_use_lists_and_empty_values() {
    let (_dir, path) = yaml_file("---\n");
    assert_eq!(
        ok(&with_config(&path, &["--insecure"]), &[]).0.cluster_size,
        1
    );
    let (_dir, path) = yaml_file("Insecure: true\nIndex:\nGossipSeed:\n  - a:1\n  - b:2\n");
    let (o, _) = ok(&with_config(&path, &[]), &[]);
    assert_eq!(o.index, None);
    assert_eq!(o.gossip_seed.len(), 2);
}

#[test]
fn values_are_checked_beyond_their_type() {
    let e = err(&["--insecure", "--cluster-size", "0"], &[]);
    assert!(
        matches!(
            e,
            ConfigError::Invalid {
                option: "ClusterSize",
                ..
            }
        ),
        "{e:?}"
    );
}

#[test]
fn help_lists_every_option_and_its_other_names() {
    let help = help_text();
    for option in OPTIONS {
        assert!(
            help.contains(&format!("  {} ", option.flag())),
            "{}",
            option.name
        );
    }
    assert!(help.contains("Also: --node-port, --int-http-port, --ext-http-port"));
}

#[test]
fn addresses_follow_the_interface_and_advertise_options() {
    let (o, _) = ok(
        &["--insecure", "--node-ip", "10.0.0.5", "--http-port", "2200"],
        &[],
    );
    assert_eq!(o.http_bind_addr().to_string(), "10.0.0.5:2200");
    assert_eq!(o.int_tcp_bind_addr().to_string(), "127.0.0.1:1112");
    assert_eq!(o.http_advertised(), ("10.0.0.5".to_string(), 2200));
    assert_eq!(o.db_dir(), Some(Path::new("./db")));
    let (o, _) = ok(
        &[
            "--insecure",
            "--mem-db",
            "--advertise-host-to-client-as",
            "node1.example",
            "--advertise-http-port-to-client-as",
            "443",
        ],
        &[],
    );
    assert_eq!(o.http_advertised(), ("node1.example".to_string(), 443));
    assert_eq!(o.db_dir(), None);
}
