//! The append-only journal of durable state: revocations and consumed refresh tokens.
//!
//! Each record is framed as `[len: u32 LE][crc32: u32 LE][bincode payload]` and is
//! fsynced before [`Journal::append`] returns, so an acknowledged revocation survives a
//! crash. On open, a torn tail (a crash mid-write) is cut off, and a complete record
//! that fails its checksum is skipped while the records after it are kept. A failed
//! append (disk full) is rolled back so later appends never land behind garbage.
//! [`Journal::compact`] rewrites the file with only the live records.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{sync_dir, write_atomic};
use crate::keys::PublicKeyRecord;
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
        /// When the record can be forgotten, Unix ms: the family's end plus the life of
        /// its last access token (`Handles::family_retention_ms`).
        expires_ms: u64,
        /// Node id of the node that accepted the refresh; two spenders of one
        /// generation are a fork.
        spender: String,
    },
    /// A peer's published signing keys, as last heard. Only the latest per peer is live.
    PeerKeys {
        /// The peer's node id.
        node_id: String,
        /// Its live public keys.
        keys: Vec<PublicKeyRecord>,
    },
    /// A revocation this node originated: after a restart it is gossiped again, since
    /// a crash may have come before gossip carried it.
    RevokeOwn(Revocation),
}

impl Record {
    /// The revocation a record carries, whoever originated it.
    pub fn revocation(&self) -> Option<&Revocation> {
        match self {
            Self::Revoke(r) | Self::RevokeOwn(r) => Some(r),
            _ => None,
        }
    }

    /// When the record stops mattering. A peer's key set matters while any of its keys
    /// may still verify; a key without a scheduled end keeps it forever.
    pub fn expires_ms(&self) -> u64 {
        match self {
            Self::Revoke(r) | Self::RevokeOwn(r) => r.expires_ms,
            Self::RefreshUsed { expires_ms, .. } => *expires_ms,
            Self::PeerKeys { keys, .. } => keys
                .iter()
                .map(|k| k.expire_ms.unwrap_or(u64::MAX))
                .max()
                .unwrap_or(0),
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
        let (records, good_len, skipped) = decode_all(&bytes)?;
        if skipped > 0 {
            tracing::error!(
                path = %path.display(),
                skipped,
                "journal has corrupt records (bad checksum or encoding); they were skipped"
            );
        }
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

    /// Every intact record in the file, read afresh from disk (for compaction, so that
    /// nobody has to keep a copy of the whole journal in memory).
    pub fn records(&self) -> io::Result<Vec<Record>> {
        let bytes = std::fs::read(&self.path)?;
        let (records, _, _) = decode_all(&bytes[..(self.len as usize).min(bytes.len())])?;
        Ok(records)
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

/// What is wrong with the bytes at some offset of the journal.
enum Damage {
    /// A record is complete (its length fits in the file) but fails its checksum or
    /// does not decode: bit rot. It is skipped; the records after it are intact.
    Corrupt(usize),
    /// The file ends inside a record: a write torn by a crash. Never acknowledged.
    Torn,
}

/// Decodes every intact record. Returns them, the length up to which the file is sound
/// (anything after is a torn tail), and how many corrupt records were skipped. A bad
/// length field with more than one record's worth of data after it cannot be a torn
/// write; that is refused rather than truncated.
fn decode_all(bytes: &[u8]) -> io::Result<(Vec<Record>, usize, usize)> {
    let (mut records, mut pos, mut skipped) = (Vec::new(), 0, 0);
    while pos < bytes.len() {
        match decode_one(&bytes[pos..]) {
            Ok((record, used)) => {
                records.push(record);
                pos += used;
            }
            Err(Damage::Corrupt(used)) => {
                skipped += 1;
                pos += used;
            }
            Err(Damage::Torn) if bytes.len() - pos <= HEADER + MAX_RECORD => break,
            Err(Damage::Torn) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                    "journal is damaged at byte {pos} with data after it; restore it from backup"
                ),
                ))
            }
        }
    }
    Ok((records, pos, skipped))
}

fn decode_one(bytes: &[u8]) -> Result<(Record, usize), Damage> {
    let header = bytes.get(..HEADER).ok_or(Damage::Torn)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_RECORD {
        return Err(Damage::Torn);
    }
    let payload = bytes.get(HEADER..HEADER + len).ok_or(Damage::Torn)?;
    let used = HEADER + len;
    if crc32fast::hash(payload) != crc {
        return Err(Damage::Corrupt(used));
    }
    let config = bincode::config::standard().with_limit::<MAX_RECORD>();
    match bincode::serde::decode_from_slice(payload, config) {
        Ok((record, read)) if read == len => Ok((record, used)),
        _ => Err(Damage::Corrupt(used)),
    }
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
    fn a_corrupt_record_in_the_middle_is_skipped_and_the_rest_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path()).expect("open");
        journal
            .append(&[revoke("a"), revoke("b"), revoke("c")])
            .expect("append");
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let mut one = Vec::new();
        encode_into(&revoke("a"), &mut one);
        bytes[one.len() + HEADER + 2] ^= 0x01;
        std::fs::write(&path, &bytes).expect("write");
        let (_, records) = Journal::open(dir.path()).expect("reopen");
        assert_eq!(records, [revoke("a"), revoke("c")]);
        assert_eq!(
            std::fs::read(&path).expect("read").len(),
            bytes.len(),
            "nothing truncated"
        );
    }

    #[test]
    fn a_damaged_length_with_data_after_it_is_refused_not_truncated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut journal, _) = Journal::open(dir.path()).expect("open");
        let many: Vec<Record> = (0..4000).map(|i| revoke(&format!("jti-{i}"))).collect();
        journal.append(&many).expect("append");
        drop(journal);
        let path = dir.path().join(JOURNAL_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        bytes[3] = 0xff;
        std::fs::write(&path, &bytes).expect("write");
        assert!(Journal::open(dir.path()).is_err());
        assert_eq!(std::fs::read(&path).expect("read").len(), bytes.len());
    }

    #[test]
    fn a_flipped_bit_in_the_last_record_loses_only_that_record() {
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
