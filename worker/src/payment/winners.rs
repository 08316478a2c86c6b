//! Winning tickets on disk until they are redeemed: one file per ticket in `DATA_DIR/winners/`, named by
//! the ticket's hash and written (temp file, fsync, rename, fsync of the directory) before the job that
//! paid with it is taken on. A crash loses none; after a restart every file is queued again. Redeeming
//! one twice is harmless: the ledger pays a ticket hash once and answers `AlreadyExists` after, and
//! the file goes when the ledger has answered for good.

use std::io::Write;
use std::path::{Path, PathBuf};

use dualrig_proto::ticket::{SignedTicket, TICKET_LEN, Ticket, WinningTicket};

/// Bytes of one record: the ticket, its signature, the recipient's random value.
const RECORD_LEN: usize = TICKET_LEN + 64 + 32;

#[derive(Debug)]
pub struct WinnerStore {
    dir: PathBuf,
}

impl WinnerStore {
    pub fn open(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    fn path(&self, winner: &WinningTicket) -> PathBuf {
        self.dir.join(hex::encode(winner.ticket.ticket_hash()))
    }

    /// Writes `winner` durably; it is on disk when this returns.
    pub fn save(&self, winner: &WinningTicket) -> std::io::Result<()> {
        let mut record = Vec::with_capacity(RECORD_LEN);
        record.extend_from_slice(&winner.ticket.ticket.bytes());
        record.extend_from_slice(&winner.ticket.sig);
        record.extend_from_slice(&winner.recipient_rand);
        let mut temp = tempfile::NamedTempFile::new_in(&self.dir)?;
        temp.write_all(&record)?;
        temp.as_file().sync_all()?;
        temp.persist(self.path(winner)).map_err(|e| e.error)?;
        sync_dir(&self.dir)
    }

    /// Forgets `winner` once the ledger has paid it or refused it for good.
    pub fn remove(&self, winner: &WinningTicket) -> std::io::Result<()> {
        match std::fs::remove_file(self.path(winner)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => sync_dir(&self.dir),
        }
    }

    /// Every winner on disk, oldest file name order; a file that is not a whole record (a crash before
    /// its rename leaves only temp files, which are skipped) is reported and left alone.
    pub fn load(&self) -> std::io::Result<Vec<WinningTicket>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n.len() == 64))
            .collect();
        names.sort();
        let mut winners = Vec::with_capacity(names.len());
        for path in names {
            match read_record(&path) {
                Some(winner) => winners.push(winner),
                None => {
                    tracing::warn!(file = %path.display(), "not a winning ticket record; left alone")
                }
            }
        }
        Ok(winners)
    }
}

fn read_record(path: &Path) -> Option<WinningTicket> {
    let bytes = std::fs::read(path).ok()?;
    if bytes.len() != RECORD_LEN {
        return None;
    }
    let ticket = Ticket::from_bytes(bytes[..TICKET_LEN].try_into().ok()?);
    let sig: [u8; 64] = bytes[TICKET_LEN..TICKET_LEN + 64].try_into().ok()?;
    let recipient_rand: [u8; 32] = bytes[TICKET_LEN + 64..].try_into().ok()?;
    let winner = WinningTicket {
        ticket: SignedTicket { ticket, sig },
        recipient_rand,
    };
    // The name is the hash of what the file holds, or the file is not what it claims.
    (path.file_name()?.to_str()? == hex::encode(winner.ticket.ticket_hash())).then_some(winner)
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}
