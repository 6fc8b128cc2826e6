//! The wire form of a `$all` filter (`ReadReq.Options.FilterOptions`, PROTOCOL.md §4.1) turned
//! into the services' [`EventFilter`]; the matching itself (and its bounded cost) is in
//! [`stele_services::filter`]. The window and checkpoint multiplier only shape
//! subscriptions, so reads ignore them.

use stele_proto::streams::read_req::options::filter_options::{Expression, Filter};
use stele_proto::streams::read_req::options::FilterOptions;
use stele_services::filter::{EventFilter, FilterField, FilterSpec};
use tonic::Status;

use super::status;

/// The filter a read or subscription asks for; a missing filter or a bad regular expression
/// is an invalid argument.
pub fn from_options(options: &FilterOptions) -> Result<EventFilter, Status> {
    let (on, expression) = match &options.filter {
        Some(Filter::StreamIdentifier(expression)) => (FilterField::StreamName, expression),
        Some(Filter::EventType(expression)) => (FilterField::EventType, expression),
        None => return Err(status::not_a_valid("None", "FilterOneofCase")),
    };
    EventFilter::from_spec(spec(on, expression)).map_err(status::invalid_argument)
}

/// The stored form of a filter expression.
pub fn spec(on: FilterField, expression: &Expression) -> FilterSpec {
    FilterSpec {
        on,
        regex: expression.regex.clone(),
        prefixes: expression.prefix.clone(),
    }
}

#[cfg(test)]
mod tests {
    use stele_proto::streams::read_req::options::filter_options::Window;
    use tonic::Code;

    use super::*;

    fn options(filter: Filter) -> FilterOptions {
        FilterOptions {
            filter: Some(filter),
            window: Some(Window::Max(30)),
            checkpoint_interval_multiplier: 5,
        }
    }

    #[test]
    fn bad_regex_and_missing_filter_are_invalid_arguments() {
        let bad = from_options(&options(Filter::EventType(Expression {
            regex: "(".to_owned(),
            prefix: Vec::new(),
        })));
        assert_eq!(bad.unwrap_err().code(), Code::InvalidArgument);
        let missing = from_options(&FilterOptions::default());
        assert_eq!(missing.unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn the_expression_becomes_the_spec_on_its_field() {
        let filter = from_options(&options(Filter::StreamIdentifier(Expression {
            regex: String::new(),
            prefix: vec!["ord".to_owned()],
        })))
        .unwrap();
        assert_eq!(filter.spec().on, FilterField::StreamName);
        assert_eq!(filter.spec().prefixes, vec!["ord".to_owned()]);
    }
}
