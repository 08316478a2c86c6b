//! Slashes and their evidence, as served to anyone who wants to check them again.

use dualrig_proto::v1::{ListSlashesRequest, ListSlashesResponse};
use tonic::Status;

use crate::ledger::Ledger;

/// Every slash the ledger recorded (or one worker's), with its evidence.
pub async fn list_slashes(
    _ledger: &std::sync::Arc<Ledger>,
    _request: ListSlashesRequest,
) -> Result<ListSlashesResponse, Status> {
    Err(Status::unimplemented("listing slashes is not served yet"))
}
