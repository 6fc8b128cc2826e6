//! [`Resolver`]: picks, for each option, the setting that wins (command line > environment >
//! config file > default), parses it, and notes the options that are set but not acted on.

use super::error::{ConfigError, Origin};
use super::source::{Layer, Setting};
use super::spec::{lookup, Status};
use super::table::OPTIONS;
use super::value::OptionValue;

pub(crate) struct Resolver {
    /// The winning setting of each option, by its row in `OPTIONS`.
    chosen: Vec<Option<Setting>>,
    /// Settings that name no option.
    pub unknown: Vec<Setting>,
    /// Options set to something other than their default that Stele does not act on yet.
    pub not_acted: Vec<(&'static str, Origin)>,
}

impl Resolver {
    /// Settings are given in the order they were written. Within the command line the last
    /// one wins, as is usual for flags; elsewhere one option set twice (through two of its
    /// names) is an error, since neither order nor intent is clear.
    pub fn new(settings: Vec<Setting>) -> Result<Resolver, ConfigError> {
        let mut chosen: Vec<Option<Setting>> = vec![None; OPTIONS.len()];
        let mut unknown = Vec::new();
        for setting in settings {
            let Some(option) = setting.option else {
                unknown.push(setting);
                continue;
            };
            let slot = &mut chosen[option.index()];
            match slot {
                Some(previous) if previous.layer > setting.layer => {}
                Some(previous)
                    if previous.layer == setting.layer && setting.layer != Layer::CommandLine =>
                {
                    return Err(ConfigError::SetTwice {
                        option: option.name,
                        first: previous.origin.clone(),
                        second: setting.origin,
                    });
                }
                _ => *slot = Some(setting),
            }
        }
        Ok(Resolver {
            chosen,
            unknown,
            not_acted: Vec::new(),
        })
    }

    /// The setting that won for an option, if any source set it.
    pub fn setting(&self, name: &str) -> Option<&Setting> {
        let option = lookup(name).expect("option names come from the table");
        self.chosen[option.index()].as_ref()
    }

    /// The typed value of an option: the winning setting's, or the default.
    pub fn value<T: OptionValue>(&mut self, name: &'static str) -> Result<T, ConfigError> {
        let option = lookup(name).expect("option names come from the table");
        let default = T::parse_option(option.default)
            .unwrap_or_else(|()| panic!("the default of {name} does not parse"));
        let Some(setting) = &self.chosen[option.index()] else {
            return Ok(default);
        };
        let text = setting.value.as_deref().unwrap_or("true");
        let value = T::parse_option(text).map_err(|()| ConfigError::BadValue {
            option: option.name,
            value: text.to_owned(),
            origin: setting.origin.clone(),
            expected: option.hint,
        })?;
        if option.status == Status::NotYet && value != default {
            self.not_acted.push((option.name, setting.origin.clone()));
        }
        Ok(value)
    }
}
