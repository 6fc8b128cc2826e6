//! Who may read, write or delete a stream and its metadata (PROTOCOL-OPS.md §4.1): the stream's
//! own `$acl`, then the `$settings` default for its class, then the built-in default, checked
//! per permission. Pure: the caller fetches the ACL of the stream the check is made on (see
//! [`access_target`]) and the current settings.

use super::{Decision, Principal, StreamAcl, SystemSettings, ADMINS_GROUP, ALL_ROLE};
use crate::stream::METADATA_PREFIX;

/// The name of the stream of every event, `$all`.
pub const ALL_STREAM: &str = "$all";

/// What a stream operation needs, as the five ACL permissions name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamAccess {
    /// `$r`: read events (including subscriptions).
    Read,
    /// `$w`: append events.
    Write,
    /// `$d`: delete (soft or hard) the stream.
    Delete,
    /// `$mr`: read the stream's metadata (`$$stream`).
    MetaRead,
    /// `$mw`: write the stream's metadata (`$$stream`).
    MetaWrite,
}

impl StreamAccess {
    /// Every permission, in the order of [`StreamAcl::KEYS`].
    pub const ALL: [StreamAccess; 5] = [
        StreamAccess::Read,
        StreamAccess::Write,
        StreamAccess::Delete,
        StreamAccess::MetaRead,
        StreamAccess::MetaWrite,
    ];
}

/// Whether a stream belongs to the system (its name starts with `$`): its defaults are
/// `$systemStreamAcl`, else `$userStreamAcl`.
pub fn is_system_stream(stream: &str) -> bool {
    stream.starts_with('$')
}

/// The role every permission of a stream class has when neither the stream nor `$settings`
/// sets one: `$admins` for system streams, `$all` for user streams (`SystemSettings.Default`).
pub fn built_in_role(system_stream: bool) -> &'static str {
    if system_stream {
        ADMINS_GROUP
    } else {
        ALL_ROLE
    }
}

/// The stream and permission a request on `stream` is checked as. A metadata stream `$$x` is
/// checked on `x`: reading it needs `$mr`, writing it `$mw`. Deleting a metadata stream is
/// checked as `$mw` (it changes the metadata; EventStoreDB has no rule of its own for it).
/// Other streams are checked as they are. `$$` is stripped once, as EventStoreDB does.
pub fn access_target(stream: &str, access: StreamAccess) -> (&str, StreamAccess) {
    match stream.strip_prefix(METADATA_PREFIX) {
        Some(original) => {
            let access = match access {
                StreamAccess::Read | StreamAccess::MetaRead => StreamAccess::MetaRead,
                StreamAccess::Write | StreamAccess::Delete | StreamAccess::MetaWrite => {
                    StreamAccess::MetaWrite
                }
            };
            (original, access)
        }
        None => (stream, access),
    }
}

/// The roles that hold one permission on one stream, as resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles<'a> {
    /// Listed by the stream's `$acl` or by `$settings`.
    Listed(&'a [String]),
    /// The built-in default ([`built_in_role`]).
    BuiltIn(&'static str),
}

impl Roles<'_> {
    /// Whether one of these roles names `principal` (its name, a group, or `$all`).
    pub fn permit(&self, principal: &Principal) -> bool {
        match self {
            Roles::Listed(roles) => roles.iter().any(|role| principal.has_role(role)),
            Roles::BuiltIn(role) => principal.has_role(role),
        }
    }
}

/// The roles holding `access` on `stream` (already mapped by [`access_target`]): the
/// stream's own `acl` entry, else the `$settings` entry for its class, else the built-in one.
/// A stream that sets only `$w` keeps the default `$r`.
pub fn effective_roles<'a>(
    stream: &str,
    access: StreamAccess,
    acl: Option<&'a StreamAcl>,
    settings: &'a SystemSettings,
) -> Roles<'a> {
    let system = is_system_stream(stream);
    acl.and_then(|acl| acl.roles(access))
        .or_else(|| settings.acl_for(system).and_then(|acl| acl.roles(access)))
        .map_or(Roles::BuiltIn(built_in_role(system)), Roles::Listed)
}

/// Whether `principal` may have `access` to `stream` (PROTOCOL-OPS.md §4.1).
///
/// `stream` is the name as requested (`$$x` is mapped to `$mr`/`$mw` on `x` here, by
/// [`access_target`]); `acl_of_target` must be the ACL of the stream [`access_target`] names
/// (from `x`'s metadata for `$$x`, from `$$$all` for `$all`), `None` if it has none.
///
/// In order: writing or deleting `$all` is denied to everyone; an anonymous principal is
/// denied unless `allow_anonymous_stream_access` (then the ACL decides, where `$all` names
/// it); the system and `$admins` members are allowed; everyone else needs a role in the
/// effective roles. `$ops` members get no bypass.
pub fn check_stream(
    principal: &Principal,
    stream: &str,
    access: StreamAccess,
    acl_of_target: Option<&StreamAcl>,
    settings: &SystemSettings,
    allow_anonymous_stream_access: bool,
) -> Decision {
    let (target, access) = access_target(stream, access);
    if target == ALL_STREAM && matches!(access, StreamAccess::Write | StreamAccess::Delete) {
        return Decision::Deny;
    }
    if !principal.is_authenticated() && !allow_anonymous_stream_access {
        return Decision::Deny;
    }
    if principal.is_admin() {
        return Decision::Allow;
    }
    Decision::from_allowed(
        effective_roles(target, access, acl_of_target, settings).permit(principal),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::OPS_GROUP;
    use proptest::prelude::*;

    fn user(name: &str, groups: &[&str]) -> Principal {
        Principal::User {
            name: name.to_owned(),
            groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        }
    }

    fn acl(json: &str) -> StreamAcl {
        let (acl, ignored) =
            StreamAcl::from_metadata_json(format!(r#"{{"$acl":{json}}}"#).as_bytes());
        assert!(ignored.is_empty(), "{ignored:?}");
        acl.unwrap()
    }

    fn allowed(
        principal: &Principal,
        stream: &str,
        access: StreamAccess,
        acl: Option<&StreamAcl>,
        settings: &SystemSettings,
    ) -> bool {
        check_stream(principal, stream, access, acl, settings, false).is_allowed()
    }

    #[test]
    fn built_in_defaults_open_user_streams_and_close_system_streams() {
        // Without ACLs or settings, user streams are everyone's and system streams admins'.
        let plain = user("bob", &[]);
        let none = SystemSettings::default();
        for access in StreamAccess::ALL {
            assert!(allowed(&plain, "orders", access, None, &none));
            assert!(!allowed(&plain, "$orders", access, None, &none));
            assert!(allowed(
                &user("root", &[ADMINS_GROUP]),
                "$orders",
                access,
                None,
                &none
            ));
        }
    }

    #[test]
    fn setting_only_write_keeps_the_default_read() {
        // Resolution is per permission: a stream ACL setting only `$w` keeps the default `$r`.
        let only_w = acl(r#"{"$w":"alice"}"#);
        let none = SystemSettings::default();
        let bob = user("bob", &[]);
        assert!(allowed(
            &bob,
            "orders",
            StreamAccess::Read,
            Some(&only_w),
            &none
        ));
        assert!(!allowed(
            &bob,
            "orders",
            StreamAccess::Write,
            Some(&only_w),
            &none
        ));
        let alice = user("alice", &[]);
        assert!(allowed(
            &alice,
            "orders",
            StreamAccess::Write,
            Some(&only_w),
            &none
        ));
    }

    #[test]
    fn settings_come_between_the_stream_acl_and_the_built_in_default() {
        // `$settings` entries apply to streams of their class that set nothing themselves; a
        // permission `$settings` leaves unset falls back to the built-in default.
        let (settings, _) = SystemSettings::from_json(
            br#"{"$userStreamAcl":{"$r":"readers"},"$systemStreamAcl":{"$r":"$all"}}"#,
        );
        let bob = user("bob", &[]);
        let reader = user("carol", &["readers"]);
        assert!(!allowed(
            &bob,
            "orders",
            StreamAccess::Read,
            None,
            &settings
        ));
        assert!(allowed(
            &reader,
            "orders",
            StreamAccess::Read,
            None,
            &settings
        ));
        assert!(allowed(
            &bob,
            "orders",
            StreamAccess::Write,
            None,
            &settings
        ));
        assert!(allowed(&bob, "$stats", StreamAccess::Read, None, &settings));
        assert!(!allowed(
            &bob,
            "$stats",
            StreamAccess::Write,
            None,
            &settings
        ));
        let own = acl(r#"{"$r":["bob"]}"#);
        assert!(allowed(
            &bob,
            "orders",
            StreamAccess::Read,
            Some(&own),
            &settings
        ));
        assert!(!allowed(
            &reader,
            "orders",
            StreamAccess::Read,
            Some(&own),
            &settings
        ));
    }

    #[test]
    fn an_empty_list_denies_everyone_but_admins() {
        // `[]` means nobody: non-admins (even `$ops`) are denied, admins and the system pass.
        let nobody = acl(r#"{"$r":[]}"#);
        let none = SystemSettings::default();
        for who in [user("bob", &[]), user("ops", &[OPS_GROUP])] {
            assert!(!allowed(
                &who,
                "orders",
                StreamAccess::Read,
                Some(&nobody),
                &none
            ));
        }
        assert!(allowed(
            &Principal::System,
            "orders",
            StreamAccess::Read,
            Some(&nobody),
            &none
        ));
    }

    #[test]
    fn ops_members_do_not_bypass_acls() {
        // `$ops` is no admin for streams: system streams stay closed to it by default.
        let ops = user("ops", &[OPS_GROUP]);
        let none = SystemSettings::default();
        assert!(!allowed(&ops, "$settings", StreamAccess::Read, None, &none));
        assert!(!allowed(&ops, ALL_STREAM, StreamAccess::Read, None, &none));
    }

    #[test]
    fn metastreams_are_checked_as_metadata_access_on_the_stream() {
        // `$$x` is checked as `$mr`/`$mw` on `x` with `x`'s ACL and class, not as a system
        // stream of its own.
        assert_eq!(
            access_target("$$orders", StreamAccess::Read),
            ("orders", StreamAccess::MetaRead)
        );
        assert_eq!(
            access_target("$$orders", StreamAccess::Write),
            ("orders", StreamAccess::MetaWrite)
        );
        assert_eq!(
            access_target("$$orders", StreamAccess::Delete),
            ("orders", StreamAccess::MetaWrite)
        );
        assert_eq!(
            access_target("$$$all", StreamAccess::Read),
            (ALL_STREAM, StreamAccess::MetaRead)
        );
        assert_eq!(
            access_target("orders", StreamAccess::Delete),
            ("orders", StreamAccess::Delete)
        );
        let meta_closed = acl(r#"{"$mr":"alice","$r":"$all"}"#);
        let none = SystemSettings::default();
        let bob = user("bob", &[]);
        assert!(allowed(
            &bob,
            "orders",
            StreamAccess::Read,
            Some(&meta_closed),
            &none
        ));
        assert!(!allowed(
            &bob,
            "$$orders",
            StreamAccess::Read,
            Some(&meta_closed),
            &none
        ));
        assert!(allowed(
            &bob,
            "$$orders",
            StreamAccess::Write,
            Some(&meta_closed),
            &none
        ));
        assert!(allowed(
            &user("alice", &[]),
            "$$orders",
            StreamAccess::Read,
            Some(&meta_closed),
            &none
        ));
    }

    #[test]
    fn all_is_admins_only_by_default_and_never_written() {
        // Reading `$all` needs `$admins` unless `$$$all` widens it; writing or deleting it is
        // denied even to the system.
        let none = SystemSettings::default();
        let bob = user("bob", &[]);
        assert!(!allowed(&bob, ALL_STREAM, StreamAccess::Read, None, &none));
        let wide = acl(r#"{"$r":"$all"}"#);
        assert!(allowed(
            &bob,
            ALL_STREAM,
            StreamAccess::Read,
            Some(&wide),
            &none
        ));
        for access in [StreamAccess::Write, StreamAccess::Delete] {
            assert!(!allowed(
                &Principal::System,
                ALL_STREAM,
                access,
                None,
                &none
            ));
            assert!(!allowed(
                &bob,
                ALL_STREAM,
                access,
                Some(&acl(r#"{"$w":"$all","$d":"$all"}"#)),
                &none
            ));
        }
        assert!(allowed(
            &Principal::System,
            "$$$all",
            StreamAccess::Write,
            None,
            &none
        ));
    }

    #[test]
    fn anonymous_needs_the_option_and_then_the_acl() {
        // Anonymous principals are denied stream operations unless
        // AllowAnonymousStreamAccess; then `$all` in the ACL names them, nothing else does.
        let none = SystemSettings::default();
        let anon = Principal::Anonymous;
        let check = |stream: &str, acl: Option<&StreamAcl>, allow: bool| {
            check_stream(&anon, stream, StreamAccess::Read, acl, &none, allow).is_allowed()
        };
        assert!(!check("orders", None, false));
        assert!(check("orders", None, true));
        assert!(!check("$orders", None, true));
        assert!(!check("orders", Some(&acl(r#"{"$r":"anonymous"}"#)), true));
        assert!(check("$orders", Some(&acl(r#"{"$r":"$all"}"#)), true));
    }

    fn principal() -> impl Strategy<Value = Principal> {
        let name = prop_oneof![
            Just("alice".to_owned()),
            Just("ops".to_owned()),
            "[a-z]{1,3}"
        ];
        let group = prop_oneof![
            Just(ADMINS_GROUP.to_owned()),
            Just(OPS_GROUP.to_owned()),
            Just("readers".to_owned()),
        ];
        prop_oneof![
            Just(Principal::Anonymous),
            Just(Principal::System),
            (name, prop::collection::vec(group, 0..3))
                .prop_map(|(name, groups)| Principal::User { name, groups }),
        ]
    }

    fn role_list() -> impl Strategy<Value = Option<Vec<String>>> {
        let role = prop_oneof![
            Just(ALL_ROLE.to_owned()),
            Just(ADMINS_GROUP.to_owned()),
            Just(OPS_GROUP.to_owned()),
            Just("alice".to_owned()),
            Just("readers".to_owned()),
        ];
        prop::option::of(prop::collection::vec(role, 0..3))
    }

    fn stream_acl() -> impl Strategy<Value = StreamAcl> {
        (
            role_list(),
            role_list(),
            role_list(),
            role_list(),
            role_list(),
        )
            .prop_map(|(read, write, delete, meta_read, meta_write)| StreamAcl {
                read,
                write,
                delete,
                meta_read,
                meta_write,
            })
    }

    fn stream_name() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(ALL_STREAM.to_owned()),
            Just("$$$all".to_owned()),
            Just("$$".to_owned()),
            "\\$?\\$?[a-z$]{0,4}",
        ]
    }

    fn access() -> impl Strategy<Value = StreamAccess> {
        prop::sample::select(StreamAccess::ALL.to_vec())
    }

    proptest! {
        #[test]
        fn admins_pass_everything_but_writing_all(
            admin in prop_oneof![
                Just(Principal::System),
                Just(Principal::User { name: "x".into(), groups: vec![ADMINS_GROUP.into()] }),
            ],
            stream in stream_name(),
            access in access(),
            acl in prop::option::of(stream_acl()),
            user_acl in prop::option::of(stream_acl()),
            system_acl in prop::option::of(stream_acl()),
            anonymous in any::<bool>(),
        ) {
            // The system and `$admins` members are allowed every stream operation whatever
            // the ACLs say, except writing or deleting `$all`.
            let settings = SystemSettings { user_stream_acl: user_acl, system_stream_acl: system_acl };
            let decision = check_stream(&admin, &stream, access, acl.as_ref(), &settings, anonymous);
            let writes_all = stream == ALL_STREAM
                && matches!(access, StreamAccess::Write | StreamAccess::Delete);
            prop_assert_eq!(decision.is_allowed(), !writes_all);
        }

        #[test]
        fn the_decision_follows_the_first_list_that_is_set(
            who in principal(),
            stream in stream_name(),
            access in access(),
            acl in prop::option::of(stream_acl()),
            user_acl in prop::option::of(stream_acl()),
            system_acl in prop::option::of(stream_acl()),
            anonymous in any::<bool>(),
        ) {
            // A model of §4.1 written independently: the decision never panics and equals
            // "not `$all` write, (authenticated or option), and (admin or a role in the first
            // list set among stream, settings, built-in)".
            let settings = SystemSettings { user_stream_acl: user_acl, system_stream_acl: system_acl };
            let decision = check_stream(&who, &stream, access, acl.as_ref(), &settings, anonymous);
            let (target, access) = access_target(&stream, access);
            let defaults = if target.starts_with('$') { &settings.system_stream_acl } else { &settings.user_stream_acl };
            let builtin = vec![if target.starts_with('$') { "$admins".to_owned() } else { "$all".to_owned() }];
            let list = acl.as_ref().and_then(|a| a.roles(access))
                .or(defaults.as_ref().and_then(|a| a.roles(access)))
                .unwrap_or(&builtin);
            let model = !(target == "$all" && matches!(access, StreamAccess::Write | StreamAccess::Delete))
                && (who != Principal::Anonymous || anonymous)
                && (who.is_admin() || list.iter().any(|r| who.has_role(r)));
            prop_assert_eq!(decision.is_allowed(), model);
            if !anonymous && who == Principal::Anonymous {
                prop_assert_eq!(decision, Decision::Deny);
            }
        }
    }
}
