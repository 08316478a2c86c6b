//! Scenario tests of the ledger through its public operations, with shared fixtures.

mod assignment;
mod auth;
mod broker;
mod collectives;
mod concurrency;
mod crash;
mod governance;
mod hosting;
mod props;
mod sip;
mod stake;
mod tickets;

use std::path::Path;

use dualrig_proto::identity::{Identity, PublicId};
use dualrig_proto::ticket::{SignedTicket, TicketError, TicketParams, TicketTerms, recipient_rand};

use super::*;
use crate::db::test_postgres;

pub(super) const CONFIG: LedgerConfig = LedgerConfig {
    unbonding_rounds: 3,
    unlock_rounds: 2,
    min_stake: 100,
    suspend_rounds: 2,
    download_fee_share_ppm: 100_000,
    hosting: HostingRules::NONE,
    sip: SipRules::NONE,
    governance: GOVERNANCE,
    capacity_bonus_per_byte: 0,
    capacity_bonus_per_session: 0,
};

/// Proposals in tests: a bond of 50, voting in the two rounds after the proposal's, 33 % quorum,
/// more than half approval.
pub(super) const GOVERNANCE: GovernanceRules = GovernanceRules {
    proposal_bond: 50,
    vote_delay_rounds: 1,
    vote_period_rounds: 2,
    quorum_ppm: 330_000,
    approval_ppm: 500_000,
};

/// [`CONFIG`] with hosting rewards: 1000 units minted a round; 50 % held for two rounds in a worker's
/// first four rounds, then nothing.
pub(super) const HOSTING_CONFIG: LedgerConfig = LedgerConfig {
    hosting: HostingRules {
        mint_per_round: 1_000,
        inflation_ppm: 0,
        held_back_ppm: [500_000, 0, 0, 0],
        held_back_step_rounds: 4,
        held_back_rounds: 2,
    },
    ..CONFIG
};

/// A fixed identity per small number, so runs repeat.
pub(super) fn actor(n: u8) -> Identity {
    Identity::from_secret([n; 32])
}

pub(super) fn genesis(balances: &[(&Identity, u64)]) -> Genesis {
    Genesis::new(
        balances
            .iter()
            .map(|(who, balance)| GenesisAccount {
                id: who.id(),
                balance: *balance,
            })
            .collect(),
    )
    .expect("genesis")
}

/// Where a test keeps a ledger that outlives one handle: a SQLite file in a fresh directory, or a
/// fresh schema on the test PostgreSQL server.
pub(super) struct Place {
    at: String,
    _dir: Option<tempfile::TempDir>,
}

impl Place {
    pub fn fresh() -> Self {
        match test_postgres() {
            Some(url) => Self {
                at: crate::db::postgres::fresh_schema(&url, "ledger").expect("test schema"),
                _dir: None,
            },
            None => {
                let dir = tempfile::tempdir().expect("tempdir");
                let path = dir.path().join("ledger.db");
                Self {
                    at: path.to_str().expect("utf-8 temp path").to_owned(),
                    _dir: Some(dir),
                }
            }
        }
    }

    /// The file's path or the schema's URL, as [`open_at`] takes it.
    pub fn at(&self) -> &str {
        &self.at
    }

    pub fn open(&self, config: LedgerConfig, genesis: &Genesis) -> Ledger {
        open_at(&self.at, config, genesis).expect("open")
    }
}

/// Opens the ledger at a SQLite path or a PostgreSQL URL.
pub(super) fn open_at(
    at: &str,
    config: LedgerConfig,
    genesis: &Genesis,
) -> Result<Ledger, LedgerError> {
    if at.starts_with("postgres://") || at.starts_with("postgresql://") {
        Ledger::open_postgres(at, config, genesis)
    } else {
        Ledger::open(Path::new(at), config, genesis)
    }
}

/// A ledger plus the signing chores: each action gets the account's next nonce.
pub(super) struct Harness {
    pub ledger: Ledger,
    _place: Option<Place>,
}

impl Harness {
    /// A ledger that outlives its handle: a SQLite file (or a PostgreSQL schema, see [`Place`]).
    pub fn on_disk(balances: &[(&Identity, u64)]) -> Self {
        let place = Place::fresh();
        Self {
            ledger: place.open(CONFIG, &genesis(balances)),
            _place: Some(place),
        }
    }

    /// A fresh ledger in the test backend: SQLite in memory, or a PostgreSQL schema.
    pub fn in_memory(balances: &[(&Identity, u64)]) -> Self {
        Self::in_memory_with(CONFIG, balances)
    }

    pub fn in_memory_with(config: LedgerConfig, balances: &[(&Identity, u64)]) -> Self {
        if test_postgres().is_some() {
            let place = Place::fresh();
            return Self {
                ledger: place.open(config, &genesis(balances)),
                _place: Some(place),
            };
        }
        Self {
            ledger: Ledger::open_in_memory(config, &genesis(balances)).expect("open"),
            _place: None,
        }
    }

    pub fn request(&self, who: &Identity, op: Operation) -> SignedRequest {
        let nonce = self.ledger.last_nonce(&who.id()).expect("nonce") + 1;
        SignedRequest::sign(who, nonce, &op)
    }

    pub fn act(&self, who: &Identity, op: Operation) -> Result<Receipt, LedgerError> {
        self.ledger.execute(&self.request(who, op))
    }

    pub fn ok(&self, who: &Identity, op: Operation) -> Receipt {
        let shown = format!("{op:?}");
        self.act(who, op)
            .unwrap_or_else(|e| panic!("{shown} by {} refused: {e}", who.id().short()))
    }

    /// Runs `op`, expects a refusal, and checks the refusal changed nothing.
    pub fn refused(&self, who: &Identity, op: Operation) -> LedgerError {
        let before = self.ledger.snapshot().expect("snapshot");
        let shown = format!("{op:?}");
        let err = match self.act(who, op) {
            Ok(r) => panic!("{shown} was accepted: {r:?}"),
            Err(e) => e,
        };
        assert_eq!(
            self.ledger.snapshot().expect("snapshot"),
            before,
            "refused {shown} changed the ledger"
        );
        err
    }

    pub fn balance(&self, who: &Identity) -> u64 {
        self.ledger.balance(&who.id()).expect("balance")
    }

    pub fn advance(&self, rounds: u64) {
        for _ in 0..rounds {
            self.ledger.advance_round().expect("advance");
        }
    }
}

/// The recipient secret the fixtures' workers derive `recipient_rand` from.
pub(super) const WORKER_SECRET: [u8; 32] = [0xA5; 32];

/// A ticket from `client` to `worker` that wins (win_prob is `u64::MAX`), with its `recipient_rand`.
/// `tag` picks the seed and the nonce, so distinct tags give distinct tickets.
pub(super) fn winning_ticket(
    client: &Identity,
    worker: &PublicId,
    face_value: u64,
    expiration_round: u64,
    tag: u64,
) -> (SignedTicket, [u8; 32]) {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&tag.to_le_bytes());
    let params = TicketParams::derive(
        *worker,
        &WORKER_SECRET,
        seed,
        TicketTerms {
            face_value,
            win_prob: u64::MAX,
            expiration_round,
            price_per_unit: 0,
            price_per_byte: 0,
        },
    );
    let ticket = SignedTicket::sign(params.ticket(client.id(), tag), client);
    assert!(
        ticket.wins(&recipient_rand(&WORKER_SECRET, &seed)),
        "a ticket with win_prob u64::MAX loses once in 2^64"
    );
    (ticket, recipient_rand(&WORKER_SECRET, &seed))
}

pub(super) fn redeem_op(ticket: SignedTicket, recipient_rand: [u8; 32]) -> Operation {
    Operation::RedeemTicket {
        ticket,
        recipient_rand,
    }
}

pub(super) fn open_again(at: &str) -> Ledger {
    open_at(at, CONFIG, &Genesis::empty()).expect("reopen")
}

/// A ledger file at `path` as version 2 left it: its tables, the slash evidence columns, the `meta`
/// values `meta` (the schema version is set) and the accounts `balances`.
pub(super) fn version_2_ledger(path: &Path, meta: &[(&str, u64)], balances: &[(&Identity, u64)]) {
    let conn = rusqlite::Connection::open(path).expect("open");
    let tx = conn.unchecked_transaction().expect("tx");
    tx.execute_batch(super::schema::TABLES_V1_FOR_TESTS)
        .expect("v1 tables");
    tx.execute_batch(super::schema::SLASH_EVIDENCE_BY_HASH_FOR_TESTS)
        .expect("v2 columns");
    tx.execute("INSERT INTO meta (key, value) VALUES ('schema', 2)", [])
        .expect("version");
    for (key, value) in meta {
        tx.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)",
            rusqlite::params![key, i64::try_from(*value).expect("fits")],
        )
        .expect("meta");
    }
    for (who, balance) in balances {
        tx.execute(
            "INSERT INTO accounts (id, balance) VALUES (?1, ?2)",
            rusqlite::params![
                who.id().as_bytes().to_vec(),
                i64::try_from(*balance).expect("fits")
            ],
        )
        .expect("account");
    }
    tx.commit().expect("commit");
}
