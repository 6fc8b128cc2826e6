//! The default policy, pinned operation by operation.

use super::*;
use crate::access::ADMINS_GROUP;

fn user(name: &str, groups: &[&str]) -> Principal {
    Principal::User {
        name: name.to_owned(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

/// The five principals of the table, in column order.
fn principals() -> [Principal; 5] {
    [
        Principal::Anonymous,
        user("bob", &["readers"]),
        user("olga", &[OPS_GROUP]),
        user("ann", &[ADMINS_GROUP]),
        Principal::System,
    ]
}

/// Columns: anonymous, plain user, `$ops` member, `$admins` member, system. `Y` allowed.
const TABLE: [(Operation, &str); 49] = {
    use Operation as O;
    [
        (O::Ping, "YYYYY"),
        (O::Info, "YYYYY"),
        (O::ServerFeatures, "YYYYY"),
        (O::MonitoringStats, "YYYYY"),
        (O::GossipRead, "YYYYY"),
        (O::GossipUpdate, "----Y"),
        (O::ClusterInternal, "----Y"),
        (O::Stats, "-YYYY"),
        (O::Metrics, "-YYYY"),
        (O::NodeOptionsRequest, "-YYYY"),
        (O::InfoOptions, "--YYY"),
        (O::Subsystems, "--YYY"),
        (O::Shutdown, "--YYY"),
        (O::ReloadConfiguration, "--YYY"),
        (O::MergeIndexes, "--YYY"),
        (O::SetNodePriority, "--YYY"),
        (O::ResignNode, "--YYY"),
        (O::ScavengeStart, "--YYY"),
        (O::ScavengeStop, "--YYY"),
        (O::ScavengeRead, "--YYY"),
        (O::PersistentSubscriptionCreate, "--YYY"),
        (O::PersistentSubscriptionUpdate, "--YYY"),
        (O::PersistentSubscriptionDelete, "--YYY"),
        (O::PersistentSubscriptionReplayParked, "--YYY"),
        (O::PersistentSubscriptionRestartSubsystem, "--YYY"),
        (O::PersistentSubscriptionGetInfo, "-YYYY"),
        (O::PersistentSubscriptionList, "-YYYY"),
        (O::PersistentSubscriptionRead, "-YYYY"),
        (O::UserCreate, "---YY"),
        (O::UserUpdate, "---YY"),
        (O::UserDelete, "---YY"),
        (O::UserEnable, "---YY"),
        (O::UserDisable, "---YY"),
        (O::UserResetPassword, "---YY"),
        (O::UserList, "---YY"),
        (O::UserDetails, "-YYYY"),
        (O::UserChangePassword, "-YYYY"),
        (O::ProjectionCreate, "-YYYY"),
        (O::ProjectionUpdate, "-YYYY"),
        (O::ProjectionDelete, "--YYY"),
        (O::ProjectionStatistics, "-YYYY"),
        (O::ProjectionDisable, "-YYYY"),
        (O::ProjectionEnable, "-YYYY"),
        (O::ProjectionReset, "-YYYY"),
        (O::ProjectionState, "-YYYY"),
        (O::ProjectionResult, "-YYYY"),
        (O::ProjectionRestartSubsystem, "--YYY"),
        (O::ProjectionReadConfiguration, "--YYY"),
        (O::ProjectionUpdateConfiguration, "--YYY"),
    ]
};

fn decisions(operation: Operation, options: &AnonymousAccess) -> String {
    principals()
        .iter()
        .map(|p| match check_operation(p, operation, options) {
            Decision::Allow => 'Y',
            Decision::Deny => '-',
        })
        .collect()
}

#[test]
fn all_lists_every_operation_in_order() {
    // Operation::ALL holds each variant once, in declaration order, so tables over it
    // cover every operation.
    for (index, operation) in Operation::ALL.iter().enumerate() {
        assert_eq!(*operation as usize, index, "{operation:?}");
    }
    assert_eq!(
        Operation::ALL.last(),
        Some(&Operation::ProjectionUpdateConfiguration)
    );
}

#[test]
fn default_policy_table() {
    // With EventStoreDB's default options, each operation is open to exactly the principals
    // §4.2 names (columns: anonymous, user, $ops, $admins, system).
    assert_eq!(TABLE.len(), Operation::ALL.len());
    let options = AnonymousAccess::default();
    for ((operation, expected), listed) in TABLE.iter().zip(Operation::ALL) {
        assert_eq!(*operation, listed, "TABLE follows Operation::ALL");
        assert_eq!(decisions(*operation, &options), *expected, "{operation:?}");
    }
}

#[test]
fn anonymous_endpoint_access_opens_stats_metrics_options_and_gossip_only() {
    // AllowAnonymousEndpointAccess lets anonymous callers reach /stats, /metrics, OPTIONS
    // and gossip; nothing that needs an authenticated user or a group.
    let options = AnonymousAccess {
        allow_anonymous_endpoint_access: true,
        ..AnonymousAccess::default()
    };
    for (operation, expected) in TABLE {
        let endpoint = matches!(
            operation,
            Operation::Stats | Operation::Metrics | Operation::NodeOptionsRequest
        );
        let anonymous = check_operation(&Principal::Anonymous, operation, &options);
        let opened = expected.starts_with('Y') || endpoint;
        assert_eq!(anonymous.is_allowed(), opened, "{operation:?}");
    }
}

#[test]
fn gossip_needs_authentication_without_the_override() {
    // OverrideAnonymousEndpointAccessForGossip=false closes gossip to anonymous callers
    // unless AllowAnonymousEndpointAccess opens it again.
    let closed = AnonymousAccess {
        override_anonymous_endpoint_access_for_gossip: false,
        ..AnonymousAccess::default()
    };
    assert_eq!(decisions(Operation::GossipRead, &closed), "-YYYY");
    let reopened = AnonymousAccess {
        allow_anonymous_endpoint_access: true,
        ..closed
    };
    assert_eq!(decisions(Operation::GossipRead, &reopened), "YYYYY");
    assert_eq!(decisions(Operation::GossipUpdate, &reopened), "----Y");
}

#[test]
fn the_users_ops_and_admin_pass_by_name() {
    // The policy names the users `ops` and `admin` beside their groups: `ops` with no groups
    // may shut down but not create users; `admin` with no groups may do both.
    let options = AnonymousAccess::default();
    let ops = user(OPS_USER, &[]);
    let admin = user(ADMIN_USER, &[]);
    assert!(check_operation(&ops, Operation::Shutdown, &options).is_allowed());
    assert!(!check_operation(&ops, Operation::UserCreate, &options).is_allowed());
    assert!(check_operation(&admin, Operation::Shutdown, &options).is_allowed());
    assert!(check_operation(&admin, Operation::UserCreate, &options).is_allowed());
    assert!(!check_operation(&admin, Operation::GossipUpdate, &options).is_allowed());
}

#[test]
fn defaults_are_eventstoredbs() {
    // The anonymous-access options default to false, false, true (§4.3).
    assert_eq!(
        AnonymousAccess::default(),
        AnonymousAccess {
            allow_anonymous_endpoint_access: false,
            allow_anonymous_stream_access: false,
            override_anonymous_endpoint_access_for_gossip: true,
        }
    );
}
