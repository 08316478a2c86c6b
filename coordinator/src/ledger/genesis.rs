//! The starting balances of a new ledger, read from a TOML file and applied on first run only.
//!
//! ```toml
//! [[accounts]]
//! id = "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c"
//! balance = 1_000_000_000
//! ```

use std::path::Path;

use dualrig_proto::identity::PublicId;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("cannot read genesis file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("genesis file {path}: {source}")]
    Parse {
        path: String,
        source: toml::de::Error,
    },
    #[error("genesis account {id:?} is not 64 hex digits of an ed25519 public key")]
    BadId { id: String },
    #[error("genesis lists account {id} twice")]
    Duplicate { id: PublicId },
    #[error("genesis balances add up to more than {max} units, the most the ledger holds")]
    SupplyTooLarge { max: i64 },
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFile {
    #[serde(default)]
    accounts: Vec<GenesisFileAccount>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisFileAccount {
    id: String,
    balance: u64,
}

/// One starting balance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GenesisAccount {
    pub id: PublicId,
    pub balance: u64,
}

/// Validated starting balances: distinct valid ids whose total fits the ledger.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Genesis {
    accounts: Vec<GenesisAccount>,
}

impl Genesis {
    /// An empty genesis (a ledger that starts with nothing).
    pub fn empty() -> Self {
        Self::default()
    }

    pub fn new(accounts: Vec<GenesisAccount>) -> Result<Self, GenesisError> {
        let mut seen = std::collections::HashSet::new();
        let mut total: u64 = 0;
        for a in &accounts {
            if !seen.insert(a.id) {
                return Err(GenesisError::Duplicate { id: a.id });
            }
            total = total
                .checked_add(a.balance)
                .filter(|t| i64::try_from(*t).is_ok())
                .ok_or(GenesisError::SupplyTooLarge { max: i64::MAX })?;
        }
        Ok(Self { accounts })
    }

    pub fn from_toml_str(text: &str, path: &str) -> Result<Self, GenesisError> {
        let file: GenesisFile = toml::from_str(text).map_err(|source| GenesisError::Parse {
            path: path.to_owned(),
            source,
        })?;
        let accounts = file
            .accounts
            .into_iter()
            .map(|a| {
                let bad = || GenesisError::BadId { id: a.id.clone() };
                let bytes = hex::decode(&a.id).map_err(|_| bad())?;
                let id = PublicId::from_slice("genesis account", &bytes).map_err(|_| bad())?;
                Ok(GenesisAccount {
                    id,
                    balance: a.balance,
                })
            })
            .collect::<Result<Vec<_>, GenesisError>>()?;
        Self::new(accounts)
    }

    pub fn load(path: &Path) -> Result<Self, GenesisError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| GenesisError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::from_toml_str(&text, &shown)
    }

    pub fn accounts(&self) -> &[GenesisAccount] {
        &self.accounts
    }

    /// Sum of the starting balances (it fits an i64 by construction).
    pub fn supply(&self) -> u64 {
        self.accounts.iter().map(|a| a.balance).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dualrig_proto::identity::Identity;

    #[test]
    fn toml_genesis_is_parsed_and_checked() {
        let a = Identity::from_secret([1; 32]).id();
        let b = Identity::from_secret([2; 32]).id();
        let text = format!(
            "[[accounts]]\nid = \"{a}\"\nbalance = 5\n[[accounts]]\nid = \"{b}\"\nbalance = 7\n"
        );
        let g = Genesis::from_toml_str(&text, "g.toml").expect("parse");
        assert_eq!(g.supply(), 12);
        assert_eq!(g.accounts()[1], GenesisAccount { id: b, balance: 7 });

        let twice = format!("{text}[[accounts]]\nid = \"{a}\"\nbalance = 1\n");
        assert!(matches!(
            Genesis::from_toml_str(&twice, "g.toml"),
            Err(GenesisError::Duplicate { .. })
        ));
        let bad = "[[accounts]]\nid = \"zz\"\nbalance = 1\n";
        assert!(matches!(
            Genesis::from_toml_str(bad, "g.toml"),
            Err(GenesisError::BadId { .. })
        ));
        let huge = format!(
            "[[accounts]]\nid = \"{a}\"\nbalance = {}\n[[accounts]]\nid = \"{b}\"\nbalance = 1\n",
            i64::MAX
        );
        assert!(matches!(
            Genesis::from_toml_str(&huge, "g.toml"),
            Err(GenesisError::SupplyTooLarge { .. })
        ));
        assert!(matches!(
            Genesis::from_toml_str("accounts = 3", "g.toml"),
            Err(GenesisError::Parse { .. })
        ));
    }
}
