//! Pages of the list RPCs (PROTOCOL §10): each list answers in a stable order, at most a page at a
//! time, and names where the next page starts with an opaque token (the last key it served).

use crate::error::CoordinatorError;

/// Entries a page holds when the request names no size.
pub const DEFAULT_PAGE: usize = 256;
/// The most entries any page holds, whatever the request asks.
pub const MAX_PAGE: usize = 1000;
/// The longest token any list hands out (a 32-byte key).
const MAX_TOKEN: usize = 32;

/// Where a page starts and how many entries it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    /// Serve entries after this key; `None` from the start.
    pub after: Option<Vec<u8>>,
    pub size: usize,
}

impl Page {
    /// The page a request asks for: `token` from the previous answer (empty for the first page),
    /// `size` 0 for the default.
    pub fn requested(
        list: &'static str,
        token: &[u8],
        size: u32,
    ) -> Result<Self, CoordinatorError> {
        if token.len() > MAX_TOKEN {
            return Err(CoordinatorError::BadPageToken {
                list,
                len: token.len(),
            });
        }
        let size = match size as usize {
            0 => DEFAULT_PAGE,
            n => n.min(MAX_PAGE),
        };
        Ok(Self {
            after: (!token.is_empty()).then(|| token.to_vec()),
            size,
        })
    }

    /// The start key as a fixed-size key, as lists keyed by 32-byte ids and 8-byte numbers hand out.
    pub fn after_key<const N: usize>(
        &self,
        list: &'static str,
    ) -> Result<Option<[u8; N]>, CoordinatorError> {
        self.after
            .as_deref()
            .map(|token| {
                <[u8; N]>::try_from(token).map_err(|_| CoordinatorError::BadPageToken {
                    list,
                    len: token.len(),
                })
            })
            .transpose()
    }

    /// Cuts `items` (fetched with one more than the page size, in key order) to the page, and returns
    /// the token of the next page: the last served key, or empty when nothing follows.
    pub fn finish<T>(&self, mut items: Vec<T>, key: impl Fn(&T) -> Vec<u8>) -> (Vec<T>, Vec<u8>) {
        if items.len() <= self.size {
            return (items, Vec::new());
        }
        items.truncate(self.size);
        let token = items.last().map(key).unwrap_or_default();
        (items, token)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_bounded_and_a_token_names_the_last_key_served() {
        let page = Page::requested("workers", &[], 0).expect("first page");
        assert_eq!(
            page,
            Page {
                after: None,
                size: DEFAULT_PAGE
            }
        );
        assert_eq!(
            Page::requested("workers", &[7], 1 << 30)
                .expect("huge")
                .size,
            MAX_PAGE
        );
        let err = Page::requested("blobs", &[0; 33], 10).expect_err("long token");
        assert!(err.to_string().contains("blobs"), "{err}");

        let page = Page::requested("blobs", &[], 2).expect("page");
        let (items, next) = page.finish(vec![1u8, 2, 3], |i| vec![*i]);
        assert_eq!((items, next), (vec![1, 2], vec![2]));
        let (items, next) = page.finish(vec![1u8, 2], |i| vec![*i]);
        assert_eq!((items, next), (vec![1, 2], Vec::new()));
        let page = Page::requested("slashes", &[0, 0, 0, 0, 0, 0, 1, 2], 2).expect("page");
        assert_eq!(
            page.after_key::<8>("slashes").expect("key"),
            Some([0, 0, 0, 0, 0, 0, 1, 2])
        );
        assert!(page.after_key::<32>("blobs").is_err());
    }
}
