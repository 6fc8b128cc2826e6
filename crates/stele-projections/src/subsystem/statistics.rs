//! `Statistics`: what the subsystem reports of each projection (PROTOCOL-OPS.md §1.3).

use super::{Idle, Managed, Projections};
use crate::api::{Selector, Statistics};
use crate::definition::Mode;
use crate::error::ProjectionError;
use crate::processor::CoreStatus;

impl Projections {
    pub async fn statistics(&self, selector: Selector) -> Result<Vec<Statistics>, ProjectionError> {
        let mut state = self.running().await?;
        let running = state.as_mut().expect("running() checked");
        if let Selector::Name(name) = &selector {
            let managed = running
                .projections
                .get(name)
                .ok_or_else(|| ProjectionError::NotFound(name.clone()))?;
            return Ok(vec![statistics(managed)]);
        }
        Ok(running
            .projections
            .values()
            .filter(|m| match selector {
                Selector::All | Selector::Name(_) => true,
                Selector::Continuous => m.definition.mode == Mode::Continuous,
                Selector::OneTime => m.definition.mode == Mode::OneTime,
                Selector::Transient => m.definition.mode == Mode::Transient,
            })
            .map(statistics)
            .collect())
    }
}

fn statistics(managed: &Managed) -> Statistics {
    let definition = &managed.definition;
    let mut s = Statistics {
        version: definition.version as i64,
        epoch: definition.epoch as i64,
        effective_name: definition.name.clone(),
        name: definition.name.clone(),
        mode: definition.mode.as_str().to_owned(),
        progress: -1.0,
        ..Statistics::default()
    };
    let (status, reason) = match &managed.run {
        Some(run) => {
            let stats = run.stats();
            s.core_processing_time = stats.processing_time_ms;
            s.writes_in_progress = stats.writes_in_progress;
            s.partitions_cached = stats.partitions_cached;
            s.position = stats.position.clone();
            s.progress = stats.progress;
            s.last_checkpoint = stats.last_checkpoint.clone();
            s.events_processed_after_restart = stats.events_processed;
            s.checkpoint_status = stats.checkpoint_status.clone();
            match stats.core {
                CoreStatus::Starting => ("Preparing".to_owned(), String::new()),
                CoreStatus::Running => ("Running".to_owned(), String::new()),
                CoreStatus::Completed => ("Completed".to_owned(), String::new()),
                CoreStatus::Faulted(reason) => ("Faulted".to_owned(), reason),
                CoreStatus::Stopped => match &managed.stopped {
                    Idle::Aborted => ("Aborted".to_owned(), String::new()),
                    _ => ("Stopped".to_owned(), String::new()),
                },
            }
        }
        None => match &managed.stopped {
            Idle::Stopped => ("Stopped".to_owned(), String::new()),
            Idle::Aborted => ("Aborted".to_owned(), String::new()),
            Idle::Faulted(reason) => ("Faulted".to_owned(), reason.clone()),
        },
    };
    s.status = status;
    s.state_reason = reason;
    if definition.enabled && matches!(s.status.as_str(), "Stopped" | "Faulted") {
        s.status.push_str(" (Enabled)");
    }
    s
}
