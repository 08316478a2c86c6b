//! SIP governance over the real gRPC API: a proposal made, voted on and executed once by the
//! coordinator's own round clock, and a hostile key's bad requests refused with the ledger unchanged.

use std::path::Path;
use std::time::Duration;

use dualrig_client::{ClientError, DualrigClient};
use dualrig_coordinator::ledger::{
    MAX_REASON, Operation, ProposalKind, SignedRequest, SlashFraction, VoteChoice, request_message,
};
use dualrig_proto::identity::Identity;
use dualrig_proto::v1::ListProposalsRequest;
use tonic::Code;

use crate::support::{RunningCoordinator, write_genesis};

const TOKEN: u64 = 1_000_000;

/// A coordinator whose rounds only the test advances, voting for two rounds after a round's delay.
async fn coordinator(dir: &Path, accounts: &[(&Identity, u64)]) -> RunningCoordinator {
    let genesis = dir.join("genesis.toml");
    let accounts: Vec<_> = accounts.iter().map(|(who, b)| (who.id(), *b)).collect();
    write_genesis(&genesis, &accounts);
    RunningCoordinator::start_at(&dir.join("data"), |c| {
        c.genesis = Some(genesis.clone());
        c.round = Duration::from_secs(3600);
        c.governance.vote_period_rounds = 2;
    })
    .await
}

fn status(result: Result<impl std::fmt::Debug, ClientError>) -> tonic::Status {
    match result {
        Err(ClientError::Status(s)) => s,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Sends `op` signed by `who`, expects `code`, and checks the ledger did not change.
async fn refused(
    running: &RunningCoordinator,
    client: &DualrigClient,
    who: &Identity,
    op: Operation,
    code: Code,
) -> String {
    let before = running.ledger.snapshot().expect("snapshot");
    let s = status(client.execute(who, op).await);
    assert_eq!(s.code(), code, "{}", s.message());
    assert_eq!(running.ledger.snapshot().expect("snapshot"), before);
    s.message().to_owned()
}

#[tokio::test]
async fn a_proposal_voted_through_grpc_executes_once_and_bad_requests_change_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (proposer, staker, delegator, filler, payee, stranger) = (
        Identity::from_secret([41; 32]),
        Identity::from_secret([42; 32]),
        Identity::from_secret([43; 32]),
        Identity::from_secret([44; 32]),
        Identity::from_secret([45; 32]),
        Identity::from_secret([46; 32]),
    );
    let running = coordinator(
        dir.path(),
        &[
            (&proposer, 100 * TOKEN),
            (&staker, 10 * TOKEN),
            (&delegator, 10 * TOKEN),
            (&filler, 5 * TOKEN),
        ],
    )
    .await;
    let client = running.client().await;
    client
        .execute(&staker, Operation::Bond { amount: 3 * TOKEN })
        .await
        .expect("bond");
    client
        .execute(
            &delegator,
            Operation::Delegate {
                worker: staker.id(),
                amount: TOKEN,
            },
        )
        .await
        .expect("delegate");
    // The SIP holds a slashed worker's five tokens.
    client
        .execute(&filler, Operation::Bond { amount: 5 * TOKEN })
        .await
        .expect("bond");
    running
        .ledger
        .slash(&filler.id(), SlashFraction::WHOLE, b"fills the SIP")
        .expect("slash");
    running.ledger.advance_round().expect("round 1");

    let pay = Operation::Propose {
        kind: ProposalKind::Pay {
            to: payee.id(),
            amount: 2 * TOKEN,
        },
        reason: "runs a relay for the network".into(),
    };
    let receipt = client
        .execute(&proposer, pay.clone())
        .await
        .expect("propose");
    let id = receipt.proposal;
    assert_eq!((id, receipt.round), (1, 1));
    assert_eq!(
        client
            .account(proposer.id())
            .await
            .expect("account")
            .balance,
        90 * TOKEN,
        "the default bond of 10 tokens is locked"
    );

    // A throwaway key with nothing: its proposal cannot lock a bond, its votes weigh nothing.
    let message = refused(&running, &client, &stranger, pay, Code::FailedPrecondition).await;
    assert!(message.contains("bond"), "{message}");
    let message = refused(
        &running,
        &client,
        &stranger,
        Operation::Vote {
            proposal: 9,
            choice: VoteChoice::Yes,
        },
        Code::NotFound,
    )
    .await;
    assert!(message.contains("sip proposals"), "{message}");
    let early = Operation::Vote {
        proposal: id,
        choice: VoteChoice::Yes,
    };
    let message = refused(&running, &client, &staker, early, Code::FailedPrecondition).await;
    assert!(message.contains("opens at round 2"), "{message}");
    let long = Operation::Propose {
        kind: ProposalKind::Pay {
            to: payee.id(),
            amount: 1,
        },
        reason: "y".repeat(MAX_REASON + 1),
    };
    refused(&running, &client, &proposer, long, Code::InvalidArgument).await;
    let message = refused(
        &running,
        &client,
        &staker,
        Operation::SetRedirect {
            share_ppm: 1_000_001,
        },
        Code::InvalidArgument,
    )
    .await;
    assert!(message.contains("100 %"), "{message}");

    running.ledger.advance_round().expect("round 2");
    let late = Identity::from_secret([47; 32]);
    client
        .execute(
            &proposer,
            Operation::Transfer {
                to: late.id(),
                amount: 5 * TOKEN,
            },
        )
        .await
        .expect("transfer");
    client
        .execute(&late, Operation::Bond { amount: 5 * TOKEN })
        .await
        .expect("bond after the snapshot");
    let message = refused(
        &running,
        &client,
        &late,
        Operation::Vote {
            proposal: id,
            choice: VoteChoice::No,
        },
        Code::FailedPrecondition,
    )
    .await;
    assert!(message.contains("snapshot"), "{message}");

    // A choice outside yes, no and abstain, signed as the wire carries it.
    let mut bytes = Operation::Vote {
        proposal: id,
        choice: VoteChoice::Yes,
    }
    .encode();
    *bytes.last_mut().expect("choice") = 7;
    let nonce = client.account(staker.id()).await.expect("account").nonce + 1;
    let sig = staker.sign(&request_message(&staker.id(), nonce, &bytes));
    let before = running.ledger.snapshot().expect("snapshot");
    let s = status(
        client
            .execute_signed(&SignedRequest {
                account: staker.id(),
                nonce,
                operation: bytes,
                sig,
            })
            .await,
    );
    assert_eq!(s.code(), Code::InvalidArgument, "{}", s.message());
    assert!(s.message().contains("yes"), "{}", s.message());
    assert_eq!(running.ledger.snapshot().expect("snapshot"), before);

    let receipt = client
        .execute(
            &staker,
            Operation::Vote {
                proposal: id,
                choice: VoteChoice::Yes,
            },
        )
        .await
        .expect("vote");
    assert_eq!(receipt.vote_weight, 3 * TOKEN);
    let again = Operation::Vote {
        proposal: id,
        choice: VoteChoice::No,
    };
    let message = refused(&running, &client, &staker, again, Code::AlreadyExists).await;
    assert!(message.contains("already voted yes"), "{message}");
    let receipt = client
        .execute(
            &delegator,
            Operation::Vote {
                proposal: id,
                choice: VoteChoice::Abstain,
            },
        )
        .await
        .expect("vote");
    assert_eq!(receipt.vote_weight, TOKEN);

    let voting = client.proposal(id).await.expect("proposal");
    assert_eq!(
        (voting.state.as_str(), voting.yes, voting.abstain),
        ("voting", 3 * TOKEN, TOKEN)
    );
    running.ledger.advance_round().expect("round 3");
    running.ledger.advance_round().expect("round 4");
    let done = client.proposal(id).await.expect("proposal");
    assert_eq!(done.state, "executed", "{}", done.outcome);
    assert_eq!(
        (done.paid, done.tallied_round, done.bond_locked),
        (2 * TOKEN, 4, 0)
    );
    assert_eq!(done.payments.len(), 1);
    assert_eq!(done.payments[0].payee, payee.id().as_bytes().to_vec());
    assert_eq!(
        client.account(payee.id()).await.expect("account").balance,
        2 * TOKEN
    );
    assert_eq!(
        client
            .account(proposer.id())
            .await
            .expect("account")
            .balance,
        95 * TOKEN,
        "the bond came back at quorum (five tokens went to the late staker)"
    );

    for _ in 0..6 {
        running.ledger.advance_round().expect("advance");
    }
    let (all, figures) = client.list_proposals().await.expect("list");
    assert_eq!(all.len(), 1);
    assert_eq!(all[0], done);
    assert_eq!(figures.sip, 3 * TOKEN);
    assert_eq!(
        client.account(payee.id()).await.expect("account").balance,
        2 * TOKEN
    );

    // The page token is checked like every list's.
    let mut api = client.api();
    let s = api
        .list_proposals(ListProposalsRequest {
            id: 0,
            page_token: vec![0; 33],
            page_size: 0,
        })
        .await
        .expect_err("long token");
    assert_eq!(s.code(), Code::InvalidArgument);
    let s = status(client.proposal(2).await);
    assert_eq!(s.code(), Code::NotFound, "{}", s.message());

    // A redirect set now is in force from the next round, and the account says so.
    client
        .execute(&staker, Operation::SetRedirect { share_ppm: 500_000 })
        .await
        .expect("redirect");
    let info = client.account(staker.id()).await.expect("account");
    assert_eq!((info.redirect_ppm, info.redirect_next_ppm), (0, 500_000));
    running.ledger.advance_round().expect("advance");
    let info = client.account(staker.id()).await.expect("account");
    assert_eq!(
        (info.redirect_ppm, info.redirect_next_ppm),
        (500_000, 500_000)
    );
    running.stop().await;
}
