//! How a refused ticket reads as a gRPC status, for every side that checks tickets at its edge.

use tonic::{Code, Status};

use super::TicketError;

impl TicketError {
    /// The gRPC code a peer should act on: fix the request, wait, or ask for new params.
    pub fn code(&self) -> Code {
        match self {
            Self::ForgedSignature { .. } => Code::Unauthenticated,
            Self::ReplayedNonce { .. } => Code::AlreadyExists,
            Self::Expired { .. }
            | Self::RetiredParams { .. }
            | Self::UnknownParams { .. }
            | Self::EvShort { .. }
            | Self::NoTickets { .. } => Code::FailedPrecondition,
            Self::WrongRecipient { .. }
            | Self::TermsMismatch { .. }
            | Self::TooManyTickets { .. }
            | Self::Overflow { .. }
            | Self::RandMismatch
            | Self::NotWinning
            | Self::ZeroExpectedValue { .. }
            | Self::ReusedSeed { .. }
            | Self::InvalidId { .. }
            | Self::Malformed { .. } => Code::InvalidArgument,
        }
    }
}

impl From<TicketError> for Status {
    fn from(e: TicketError) -> Self {
        Status::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_map_to_codes_a_payer_can_act_on() {
        let short: Status = TicketError::EvShort {
            offered: 1,
            owed: 2,
        }
        .into();
        assert_eq!(short.code(), Code::FailedPrecondition);
        assert!(short.message().contains("owes 2"), "{}", short.message());
        assert_eq!(TicketError::RandMismatch.code(), Code::InvalidArgument);
    }
}
