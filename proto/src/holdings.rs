//! A worker's `Holdings` report read as claims (PROTOCOL §6.3): what it says it added and removed, with
//! every root that is not 32 bytes dropped. A claim is never a copy; the coordinator's index decides
//! what each claim is worth.

use crate::v1;

/// The claims of one `Holdings` report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Claims {
    /// Blobs the worker says it now holds, with the sizes it says they have.
    pub added: Vec<([u8; 32], u64)>,
    /// Blobs the worker says it no longer holds.
    pub removed: Vec<[u8; 32]>,
}

impl Claims {
    pub fn from_report(report: &v1::Holdings) -> Self {
        Self {
            added: report
                .added
                .iter()
                .filter_map(|b| Some((b.root.as_slice().try_into().ok()?, b.size)))
                .collect(),
            removed: report
                .removed
                .iter()
                .filter_map(|r| r.as_slice().try_into().ok())
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roots_that_are_not_32_bytes_are_dropped() {
        let report = v1::Holdings {
            added: vec![
                v1::BlobRef {
                    root: vec![1; 32],
                    size: 5,
                },
                v1::BlobRef {
                    root: vec![2; 31],
                    size: 5,
                },
            ],
            removed: vec![vec![3; 32], vec![4; 33], Vec::new()],
            ..v1::Holdings::default()
        };
        assert_eq!(
            Claims::from_report(&report),
            Claims {
                added: vec![([1; 32], 5)],
                removed: vec![[3; 32]],
            }
        );
    }
}
