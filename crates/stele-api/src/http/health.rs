//! `GET/HEAD /health/live`: whether the node serves clients. 204 when it does (or the code
//! given as `?liveCode=`), 503 when it does not, as EventStoreDB answers; load balancers
//! and orchestrators poll it.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;

use super::SharedNode;

pub(super) async fn live(State(node): State<SharedNode>, RawQuery(query): RawQuery) -> StatusCode {
    live_status(node.status().ready, query.as_deref())
}

/// The answer to `/health/live` for a node that is `ready` or not, given the request's query
/// string. A `liveCode` that is not a final HTTP status code (200–599) is ignored.
pub fn live_status(ready: bool, query: Option<&str>) -> StatusCode {
    if !ready {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    query.and_then(live_code).unwrap_or(StatusCode::NO_CONTENT)
}

fn live_code(query: &str) -> Option<StatusCode> {
    let (_, value) = query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| name.eq_ignore_ascii_case("liveCode"))?;
    let code: u16 = value.parse().ok()?;
    if (200..=599).contains(&code) {
        StatusCode::from_u16(code).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn live_code_overrides_only_the_success_code() {
        assert_eq!(live_status(true, None), StatusCode::NO_CONTENT);
        assert_eq!(live_status(true, Some("liveCode=200")), StatusCode::OK);
        assert_eq!(
            live_status(true, Some("a=b&livecode=202")),
            StatusCode::ACCEPTED
        );
        assert_eq!(
            live_status(false, Some("liveCode=200")),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(live_status(false, None), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn a_bad_live_code_is_ignored() {
        for query in [
            "liveCode=abc",
            "liveCode=99",
            "liveCode=600",
            "liveCode",
            "liveCode=",
        ] {
            assert_eq!(
                live_status(true, Some(query)),
                StatusCode::NO_CONTENT,
                "{query}"
            );
        }
    }
}
