//! `ListCoordinators` (PROTOCOL §8.3): the coordinators sharing this one's database, from the
//! registry their heartbeats keep, and which of them holds the round clock.

use std::sync::Arc;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::{CoordinatorInfo, ListCoordinatorsResponse};
use tonic::Status;

use crate::ledger::Ledger;

pub async fn list_coordinators(
    ledger: &Arc<Ledger>,
    me: PublicId,
    silent_after: u64,
) -> Result<ListCoordinatorsResponse, Status> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (live, holder) = ledger
        .call(move |l| {
            Ok((
                l.live_coordinators(now, silent_after)?,
                l.round_clock_holder()?,
            ))
        })
        .await?;
    // A holder whose lease ran out holds nothing until it ticks again.
    let holding = holder
        .filter(|&(_, expires)| expires > now)
        .map(|(id, _)| id);
    Ok(ListCoordinatorsResponse {
        coordinators: live
            .into_iter()
            .map(|c| CoordinatorInfo {
                round_clock: holding == Some(c.id),
                id: c.id.as_bytes().to_vec(),
                advertise_addr: c.advertise_addr,
                started_unix: c.started_unix,
                last_seen_unix: c.last_seen_unix,
            })
            .collect(),
        answered_by: me.as_bytes().to_vec(),
        round_clock_holder: holder
            .map(|(id, _)| id.as_bytes().to_vec())
            .unwrap_or_default(),
        round_clock_expires_unix: holder.map_or(0, |(_, expires)| expires),
        silent_after_secs: silent_after,
    })
}
