//! The append-only journal of durable state: revocations and consumed refresh tokens.
//!
//! Each record is framed as `[len: u32 LE][crc32: u32 LE][bincode payload]` and is
//! fsynced before [`Journal::append`] returns, so an acknowledged revocation survives a
//! crash. On open, a torn or corrupt tail (a crash mid-write) is cut off. A failed
//! append (disk full) is rolled back so later appends never land behind garbage.
//! [`Journal::compact`] rewrites the file with only the live records.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{sync_dir, write_atomic};
use crate::revocation::Revocation;

/// File name of the journal inside the data directory.
pub const JOURNAL_FILE: &str = "journal.log";
/// Largest record accepted; anything larger in the file is treated as corruption.
const MAX_RECORD: usize = 64 * 1024;
const HEADER: usize = 8;

/// One durable fact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Record {
    /// A revocation was made or learned.
    Revoke(Revocation),
    /// Refresh token `generation` of `family` was consumed.
    RefreshUsed {
        /// The refresh family.
        family: String,
        /// The generation that was spent.
        generation: u32,
        /// When the family expires, Unix milliseconds.
        expires_ms: u64,
    },
}

impl Record {
    /// When the record stops mattering.
    pub fn expires_ms(&self) -> u64 {
        match self {
            Self::Revoke(r) => r.expires_ms,
            Self::RefreshUsed { expires_ms, .. } => *expires_ms,
        }
    }
}

/// An open journal file positioned at its end.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    len: u64,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and returns every intact record in it.
    pub fn open(dir: &Path) -> io::Result<(Self, Vec<Record>)> {
        let path = dir.join(JOURNAL_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (records, good_len) = decode_all(&bytes);
        if good_len < bytes.len() {
            tracing::warn!(
                path = %path.display(),
                dropped_bytes = bytes.len() - good_len,
                "journal has a torn or corrupt tail; truncating it"
            );
            file.set_len(good_len as u64)?;
            file.sync_all()?;
        }
        file.seek(SeekFrom::End(0))?;
        sync_dir(&path)?;
        Ok((
            Self {
                file,
                path,
                len: good_len as u64,
            },
            records,
        ))
    }

    /// Appends `records` and fsyncs. On failure the file is cut back to where it was.
    pub fn append(&mut self, records: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for record in records {
            encode_into(record, &mut buf);
        }
        let result = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += buf.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.len);
                let _ = self.file.seek(SeekFrom::Start(self.len));
                Err(e)
            }
        }
    }

    /// Replaces the journal with exactly `live`, atomically.
    pub fn compact(&mut self, live: &[Record]) -> io::Result<()> {
        let mut buf = Vec::new();
        for record in live {
            encode_into(record, &mut buf);
        }
        write_atomic(&self.path, &buf, 0o600)?;
        let mut file = OpenOptions::new().read(true).write(true).open(&self.path)?;
        file.seek(SeekFrom::End(0))?;
        self.file = file;
        self.len = buf.len() as u64;
        Ok(())
    }

    /// Current size of the file in bytes.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether the journal holds no records.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn encode_into(record: &Record, buf: &mut Vec<u8>) {
    let payload = bincode::serde::encode_to_vec(record, bincode::config::standard())
        .expect("journal records always encode");
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
}

/// Decodes records until the first damaged one; returns them and the intact length.
fn decode_all(bytes: &[u8]) -> (Vec<Record>, usize) {
    let mut records = Vec::new();
    let mut pos = 0;
    while let Some((record, used)) = decode_one(&bytes[pos..]) {
        records.push(record);
        pos += used;
    }
    (records, pos)
}

fn decode_one(bytes: &[u8]) -> Option<(Record, usize)> {
    let header = bytes.get(..HEADER)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    if len > MAX_RECORD {
        return None;
    }
    let payload = bytes.get(HEADER..HEADER + len)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let config = bincode::config::standard().with_limit::<MAX_RECORD>();
    let (record, used) = bincode::serde::decode_from_slice(payload, config).ok()?;
    (used == len).then_some((record, HEADER + len))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocation::{Reason, Target};

    fn revoke(jti: &str) -> Record {
        Record::Revoke(Revocation {
            target: Target::Token { jti: jti.into() },
            reason: Reason::Admin,
            created_ms: 1,
            expires_ms: 2,
        })
    }

    #[test]
    fn records_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, records) = Journal::open(dir.path()).expect("open");
        assert!(records.is_empty());
        journal.append(&[revoke("a"), revoke("b")]).expect("append");
        drop(journal);
        let (_, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, [revoke("a"), revoke("b")]);
    }

    #[test]
    fn a_torn_tail_is_cut_and_later_appends_are_readable() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path()).expect("open");
        journal.append(&[revoke("a")]).expect("append");
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let mut torn = Vec::new();
        encode_into(&revoke("half"), &mut torn);
        bytes.extend_from_slice(&torn[..torn.len() - 3]);
        std::fs::write(&path, &bytes).expect("write");

        let (mut journal, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, [revoke("a")]);
        journal.append(&[revoke("c")]).expect("append after repair");
        drop(journal);
        let (_, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, [revoke("a"), revoke("c")]);
    }

    #[test]
    fn a_flipped_bit_stops_the_replay_there() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path()).expect("open");
        journal.append(&[revoke("a"), revoke("b")]).expect("append");
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x40;
        std::fs::write(&path, &bytes).expect("write");
        let (_, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, [revoke("a")]);
    }

    #[test]
    fn compaction_keeps_exactly_the_live_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path()).expect("open");
        journal
            .append(&[revoke("a"), revoke("b"), revoke("c")])
            .expect("append");
        let before = journal.len();
        journal.compact(&[revoke("b")]).expect("compact");
        assert!(journal.len() < before);
        journal
            .append(&[revoke("d")])
            .expect("append after compaction");
        drop(journal);
        let (_, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, [revoke("b"), revoke("d")]);
    }
}
