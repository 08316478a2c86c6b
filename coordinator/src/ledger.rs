//! The durable ledger: accounts, stake, deposits and reserves, ticket redemption (DESIGN §3, §4).
