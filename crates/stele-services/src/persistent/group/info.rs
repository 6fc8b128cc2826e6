//! What a group shows of itself (GetInfo, List, `/subscriptions`): its state, its
//! consumers and the rates at which messages went out.

use tokio::time::Instant;

use super::Group;
use crate::persistent::{ConnectionInfo, GroupInfo};

/// A count and its rate since the last look.
#[derive(Default)]
pub(super) struct Rate {
    pub total: u64,
    at_last_measurement: u64,
    measured_at: Option<Instant>,
}

impl Rate {
    /// `(per second, count since last measurement)`, and starts a new measurement.
    fn measure(&mut self) -> (f64, u64) {
        let now = Instant::now();
        let since = self.total - self.at_last_measurement;
        let rate = match self.measured_at {
            Some(at) if now > at => since as f64 / (now - at).as_secs_f64(),
            _ => 0.0,
        };
        self.at_last_measurement = self.total;
        self.measured_at = Some(now);
        (rate, since)
    }
}

impl Group {
    pub(super) fn info(&mut self) -> GroupInfo {
        let (average_per_second, count_since_last_measurement) = self.delivered.measure();
        let connections = self
            .flow
            .consumers_mut()
            .iter_mut()
            .map(|c| {
                let (rate, since) = c.link.stats.measure();
                let request = &c.link.request;
                ConnectionInfo {
                    from: request.from.clone(),
                    username: request.username.clone(),
                    connection_name: request.connection_name.clone(),
                    average_items_per_second: rate,
                    total_items: c.link.stats.total,
                    count_since_last_measurement: since,
                    available_slots: u64::from(c.free_slots()),
                    in_flight_messages: u64::from(c.in_flight),
                    extra_statistics: Vec::new(),
                }
            })
            .collect();
        let status = if self.failed.is_some() {
            "Failed"
        } else if self.replaying {
            "ReplayingParkedMessages"
        } else if self.live {
            "Live"
        } else {
            "CatchingUp"
        };
        let (read_buffer_count, live_buffer_count) = if self.live {
            (0, self.flow.buffer_len() as u64)
        } else {
            (self.flow.buffer_len() as u64, 0)
        };
        GroupInfo {
            definition: self.definition.clone(),
            status: status.to_owned(),
            connections,
            average_per_second,
            total_items: self.delivered.total,
            count_since_last_measurement,
            last_checkpointed_position: self.flow.window.last_checkpoint(),
            last_known_position: self.last_known,
            read_buffer_count,
            live_buffer_count,
            buffered_bytes: self.flow.buffer_bytes() as u64,
            retry_buffer_count: self.flow.retry_len() as u64,
            total_in_flight_messages: self.flow.in_flight_len() as u64,
            outstanding_messages_count: self.flow.in_flight_len() as u64,
            parked_message_count: self.parked,
        }
    }
}
