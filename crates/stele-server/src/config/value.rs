//! How one option's text becomes a typed value: the [`OptionValue`] trait, its implementations
//! for the Rust types the option table uses, and the small value types of our own
//! ([`HostPort`], [`RunProjections`], [`LogLevel`]).
//!
//! Every source (command line, environment, YAML file) hands over text, so one parser per type
//! serves all three, and a bad value gets the same message whichever source it came from.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;

/// A type an option can have. `parse` returns what was expected when the text is not valid.
pub trait OptionValue: Sized + PartialEq {
    /// How `--help` shows the value, and what a bad-value error says was expected.
    const HINT: &'static str;
    /// How `--help` shows the value.
    const PLACEHOLDER: &'static str = Self::HINT;
    /// Whether a bare `--flag` (no value) means `true`.
    const IS_FLAG: bool = false;

    fn parse_option(text: &str) -> Result<Self, ()>;
}

impl OptionValue for bool {
    const HINT: &'static str = "true|false";
    const IS_FLAG: bool = true;

    fn parse_option(text: &str) -> Result<Self, ()> {
        parse_bool(text).ok_or(())
    }
}

/// `true`/`false` in any case, as EventStoreDB accepts them.
pub(crate) fn parse_bool(text: &str) -> Option<bool> {
    let text = text.trim();
    if text.eq_ignore_ascii_case("true") {
        Some(true)
    } else if text.eq_ignore_ascii_case("false") {
        Some(false)
    } else {
        None
    }
}

macro_rules! integer_value {
    ($($ty:ty => $hint:literal),* $(,)?) => {$(
        impl OptionValue for $ty {
            const HINT: &'static str = $hint;
            const PLACEHOLDER: &'static str = "N";

            fn parse_option(text: &str) -> Result<Self, ()> {
                text.trim().parse().map_err(|_| ())
            }
        }
    )*};
}

integer_value! {
    u16 => "an integer from 0 to 65535",
    u32 => "an integer from 0 to 4294967295",
    u64 => "a non-negative integer",
    i32 => "an integer from -2147483648 to 2147483647",
    i64 => "an integer",
}

impl OptionValue for f64 {
    const HINT: &'static str = "a number";
    const PLACEHOLDER: &'static str = "NUMBER";

    fn parse_option(text: &str) -> Result<Self, ()> {
        match text.trim().parse::<f64>() {
            Ok(value) if value.is_finite() => Ok(value),
            _ => Err(()),
        }
    }
}

impl OptionValue for String {
    const HINT: &'static str = "text";
    const PLACEHOLDER: &'static str = "TEXT";

    fn parse_option(text: &str) -> Result<Self, ()> {
        Ok(text.to_owned())
    }
}

impl OptionValue for PathBuf {
    const HINT: &'static str = "a path";
    const PLACEHOLDER: &'static str = "PATH";

    fn parse_option(text: &str) -> Result<Self, ()> {
        if text.trim().is_empty() {
            Err(())
        } else {
            Ok(PathBuf::from(text))
        }
    }
}

impl OptionValue for IpAddr {
    const HINT: &'static str = "an IP address";
    const PLACEHOLDER: &'static str = "IP";

    fn parse_option(text: &str) -> Result<Self, ()> {
        text.trim().parse().map_err(|_| ())
    }
}

/// Optional values: empty text means "not set". For ports, EventStoreDB writes 0 for "not
/// set" (`AdvertiseHttpPortToClientAs: 0`), so 0 is `None` as well.
impl OptionValue for Option<u16> {
    const HINT: &'static str = "a port (0 for none)";
    const PLACEHOLDER: &'static str = "PORT";

    fn parse_option(text: &str) -> Result<Self, ()> {
        match text.trim() {
            "" => Ok(None),
            text => match u16::parse_option(text)? {
                0 => Ok(None),
                port => Ok(Some(port)),
            },
        }
    }
}

macro_rules! optional_integer_value {
    ($($ty:ty),*) => {$(
        /// Empty text means "not set".
        impl OptionValue for Option<$ty> {
            const HINT: &'static str = <$ty>::HINT;
            const PLACEHOLDER: &'static str = "N";

            fn parse_option(text: &str) -> Result<Self, ()> {
                match text.trim() {
                    "" => Ok(None),
                    text => <$ty>::parse_option(text).map(Some),
                }
            }
        }
    )*};
}

optional_integer_value!(i32, i64);

impl OptionValue for Option<String> {
    const HINT: &'static str = "text";
    const PLACEHOLDER: &'static str = "TEXT";

    fn parse_option(text: &str) -> Result<Self, ()> {
        Ok((!text.is_empty()).then(|| text.to_owned()))
    }
}

impl OptionValue for Option<PathBuf> {
    const HINT: &'static str = "a path";
    const PLACEHOLDER: &'static str = "PATH";

    fn parse_option(text: &str) -> Result<Self, ()> {
        Ok((!text.trim().is_empty()).then(|| PathBuf::from(text)))
    }
}

/// A `host:port` endpoint, as `GossipSeed` lists them. The host is a name or an IP address
/// (IPv6 in brackets: `[::1]:2113`); it is resolved when it is dialled, not here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    pub host: String,
    pub port: u16,
}

impl HostPort {
    /// Parses `host:port`; the port is required, as in EventStoreDB.
    pub fn parse(text: &str) -> Option<HostPort> {
        let (host, port) = text.trim().rsplit_once(':')?;
        let port = port.parse().ok()?;
        let host = match host.strip_prefix('[') {
            Some(inner) => inner.strip_suffix(']')?,
            // An IPv6 address must be in brackets, or its last group reads as the port.
            None if host.contains(':') => return None,
            None => host,
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return None;
        }
        Some(HostPort {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A comma-separated list of endpoints; empty text is an empty list.
impl OptionValue for Vec<HostPort> {
    const HINT: &'static str = "host:port[,host:port...]";
    const PLACEHOLDER: &'static str = "HOST:PORT,...";

    fn parse_option(text: &str) -> Result<Self, ()> {
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| HostPort::parse(item).ok_or(()))
            .collect()
    }
}

/// Declares an enum whose values are matched without regard to case, as EventStoreDB's
/// enum options are.
macro_rules! choice_value {
    ($(#[$meta:meta])* $vis:vis enum $name:ident ($hint:literal) { $($(#[doc = $doc:literal])* $variant:ident),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        $vis enum $name { $($(#[doc = $doc])* $variant),+ }

        impl $name {
            /// The spelling EventStoreDB uses.
            pub fn name(self) -> &'static str {
                match self { $($name::$variant => stringify!($variant)),+ }
            }
        }

        impl OptionValue for $name {
            const HINT: &'static str = $hint;

            fn parse_option(text: &str) -> Result<Self, ()> {
                let text = text.trim();
                $(if text.eq_ignore_ascii_case(stringify!($variant)) {
                    return Ok($name::$variant);
                })+
                Err(())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

choice_value! {
    /// Which projections run (`RunProjections`).
    pub enum RunProjections ("None|System|All") {
        None,
        /// The built-in system projections only.
        System,
        /// System and user projections.
        All,
    }
}

choice_value! {
    /// EventStoreDB's log levels (`LogLevel`), mapped onto `tracing` levels by the binary.
    pub enum LogLevel ("Default|Verbose|Debug|Information|Warning|Error|Fatal") {
        Default,
        Verbose,
        Debug,
        Information,
        Warning,
        Error,
        Fatal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_ignore_case_and_nothing_else_is_a_boolean() {
        assert_eq!(bool::parse_option("TRUE"), Ok(true));
        assert_eq!(bool::parse_option("False"), Ok(false));
        assert_eq!(bool::parse_option("yes"), Err(()));
        assert_eq!(bool::parse_option("1"), Err(()));
    }

    #[test]
    fn host_ports_parse_names_ipv4_and_bracketed_ipv6() {
        let seeds =
            Vec::<HostPort>::parse_option("127.0.0.2:2113, node3.example:2114,[::1]:2115").unwrap();
        let shown: Vec<String> = seeds.iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            ["127.0.0.2:2113", "node3.example:2114", "[::1]:2115"]
        );
        assert_eq!(Vec::<HostPort>::parse_option(""), Ok(vec![]));
        for bad in ["127.0.0.2", "host:notaport", ":2113", "::1:2113", "a:70000"] {
            assert!(HostPort::parse(bad).is_none(), "{bad} parsed");
        }
    }

    #[test]
    fn optional_ports_treat_zero_and_empty_as_none() {
        assert_eq!(Option::<u16>::parse_option("0"), Ok(None));
        assert_eq!(Option::<u16>::parse_option(""), Ok(None));
        assert_eq!(Option::<u16>::parse_option("2113"), Ok(Some(2113)));
        assert_eq!(Option::<u16>::parse_option("-1"), Err(()));
    }

    #[test]
    fn choices_ignore_case() {
        assert_eq!(RunProjections::parse_option("all"), Ok(RunProjections::All));
        assert_eq!(LogLevel::parse_option("WARNING"), Ok(LogLevel::Warning));
        assert_eq!(RunProjections::parse_option("some"), Err(()));
    }
}
