//! Cuts a byte stream into hashing windows and refuses to hash a stream whose length is not what it
//! claimed to be.

use std::io::{ErrorKind, Read};

use super::{HashError, UNNAMED_INPUT};

/// One window's worth of input, as far as the stream allowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Filled {
    /// Bytes written at the start of the buffer.
    pub len: usize,
    /// True when nothing follows: this window ends the input.
    pub last: bool,
}

/// Reads an input window by window, always knowing whether the window just read is the last one (the
/// hasher must know before it decides whether a compression gets the ROOT flag).
pub(crate) struct WindowSource<'r> {
    reader: &'r mut dyn Read,
    expected: Option<u64>,
    consumed: u64,
    /// A byte read past a full window to learn whether the input goes on.
    lookahead: Option<u8>,
    finished: bool,
}

impl<'r> WindowSource<'r> {
    pub fn new(reader: &'r mut dyn Read, expected: Option<u64>) -> Self {
        WindowSource {
            reader,
            expected,
            consumed: 0,
            lookahead: None,
            finished: false,
        }
    }

    /// Bytes handed out so far.
    pub fn consumed(&self) -> u64 {
        self.consumed
    }

    /// Fills `buf` with the next window. Once a window came back with `last`, every later call
    /// returns an empty last window.
    pub fn fill(&mut self, buf: &mut [u8]) -> Result<Filled, HashError> {
        if self.finished {
            return Ok(Filled { len: 0, last: true });
        }
        let filled = match self.expected {
            Some(expected) => self.fill_exact(buf, expected)?,
            None => self.fill_open_ended(buf)?,
        };
        self.consumed += filled.len as u64;
        self.finished = filled.last;
        Ok(filled)
    }

    fn fill_exact(&mut self, buf: &mut [u8], expected: u64) -> Result<Filled, HashError> {
        let remaining = expected - self.consumed;
        let want = usize::try_from(remaining).map_or(buf.len(), |r| r.min(buf.len()));
        let got = read_full(self.reader, &mut buf[..want])?;
        if got < want {
            return Err(HashError::Truncated {
                name: UNNAMED_INPUT.to_owned(),
                expected,
                got: self.consumed + got as u64,
            });
        }
        let last = want as u64 == remaining;
        if last && read_full(self.reader, &mut [0u8])? != 0 {
            return Err(HashError::Grew {
                name: UNNAMED_INPUT.to_owned(),
                expected,
            });
        }
        Ok(Filled { len: want, last })
    }

    fn fill_open_ended(&mut self, buf: &mut [u8]) -> Result<Filled, HashError> {
        let mut len = 0;
        if let Some(byte) = self.lookahead.take() {
            buf[0] = byte;
            len = 1;
        }
        len += read_full(self.reader, &mut buf[len..])?;
        if len < buf.len() {
            return Ok(Filled { len, last: true });
        }
        let mut next = [0u8];
        let last = read_full(self.reader, &mut next)? == 0;
        if !last {
            self.lookahead = Some(next[0]);
        }
        Ok(Filled { len, last })
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(reader: &mut dyn Read, buf: &mut [u8]) -> Result<usize, HashError> {
    let mut at = 0;
    while at < buf.len() {
        match reader.read(&mut buf[at..]) {
            Ok(0) => break,
            Ok(n) => at += n,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(HashError::Io {
                    name: UNNAMED_INPUT.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn windows(
        data: &[u8],
        expected: Option<u64>,
        window: usize,
    ) -> Result<Vec<(Vec<u8>, bool)>, HashError> {
        let mut reader = data;
        let mut source = WindowSource::new(&mut reader, expected);
        let mut out = Vec::new();
        loop {
            let mut buf = vec![0u8; window];
            let f = source.fill(&mut buf)?;
            buf.truncate(f.len);
            out.push((buf, f.last));
            if f.last {
                return Ok(out);
            }
        }
    }

    #[test]
    fn open_ended_exact_multiple_ends_with_the_full_window() {
        let w = windows(&[7u8; 8], None, 4).expect("reads");
        assert_eq!(w, vec![(vec![7; 4], false), (vec![7; 4], true)]);
    }

    #[test]
    fn open_ended_empty_is_one_empty_last_window() {
        assert_eq!(windows(&[], None, 4).expect("reads"), vec![(vec![], true)]);
    }

    #[test]
    fn lookahead_byte_starts_the_next_window() {
        let data: Vec<u8> = (0..10).collect();
        let w = windows(&data, None, 4).expect("reads");
        let joined: Vec<u8> = w.iter().flat_map(|(b, _)| b.clone()).collect();
        assert_eq!(joined, data);
        assert_eq!(w.last().map(|x| x.1), Some(true));
    }

    #[test]
    fn short_stream_is_truncated() {
        let err = windows(&[1u8; 5], Some(9), 4).expect_err("shrank");
        assert!(
            matches!(
                err,
                HashError::Truncated {
                    expected: 9,
                    got: 5,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn long_stream_grew() {
        let err = windows(&[1u8; 10], Some(8), 4).expect_err("grew");
        assert!(matches!(err, HashError::Grew { expected: 8, .. }), "{err}");
    }
}
