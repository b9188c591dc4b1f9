//! The usage spool: an append-only log on local disk that every usage record is written to before
//! its answer completes, and that the writer tails into the database.
//!
//! - A record is one line of JSON, appended with one `write` to a file opened with `O_APPEND`:
//!   once the call returns, the record is in the kernel and survives the process being killed.
//!   Concurrent appends from many request threads land whole, one after another.
//! - The log is a sequence of numbered segments (`000000000001.log`, ...). Each process start
//!   begins a new one, and a segment is closed once it passes [`SEGMENT_BYTES`], so a torn last
//!   line (power loss) can only ever be at the end of a closed segment, where the reader skips it.
//! - The writer reads from a [`Position`] (segment, offset) and commits the position it reached in
//!   the same database transaction as the records: a crash before the commit replays them, after
//!   it never does. Segments wholly behind the committed position are deleted.
//! - The bytes not yet committed are bounded by a setting: past it the spool says it is full, and
//!   the gateway refuses new calls (every answered call must have its record) until the writer
//!   catches up.
//! - One process per spool directory: the directory is locked while it is open.
//! - A write that fails (a full disk, an I/O error) leaves no fragment: the segment is cut back
//!   to its last whole line at once, and the spool says it is failing, so the gateway refuses
//!   calls (503) rather than answer one without its record, until a probe write succeeds again.
//! - Files are created `0600` in a `0700` directory. Durability on power loss is a setting
//!   ([`Sync`]): by default the writer syncs the segment every flush interval, so a power loss
//!   costs at most that interval's records; `every` syncs each record before its answer.

use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use super::record::UsageRecord;

/// A segment is closed and a new one started past this size.
pub const SEGMENT_BYTES: u64 = 64 * 1024 * 1024;

pub use crate::platform::config::SpoolSync as Sync;

/// Bytes a probe writes (and takes back) to find out whether the disk has room again.
const PROBE_BYTES: usize = 64 * 1024;

/// Where the writer has got to: the next byte to read, in a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Position {
    pub segment: u64,
    pub offset: u64,
}

/// A record read back from the spool, with its line as it was written.
#[derive(Debug, Clone)]
pub struct Line {
    pub record: UsageRecord,
    pub text: String,
}

/// Why the spool cannot take a record or be opened.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("the usage spool at {path} cannot be used: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("the usage spool at {0} is used by another Perpetuo process")]
    Locked(String),
    #[error("the usage spool is full ({0} bytes waiting for the database)")]
    Full(u64),
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io { path: path.display().to_string(), source }
}

struct Segment {
    number: u64,
    file: File,
    /// Bytes in the file (what this process appended, plus what was there).
    len: AtomicU64,
}

/// The appending side, shared by every request.
pub struct Spool {
    dir: PathBuf,
    instance: String,
    current: RwLock<Arc<Segment>>,
    /// Every byte ever appended to segments at or after `committed`, minus what was committed.
    pending: AtomicU64,
    max_pending: u64,
    /// Set while `pending` is over the bound (so the first refusal can be logged once).
    full: AtomicBool,
    /// Set when an append failed, until a probe write succeeds.
    failing: AtomicBool,
    sync: Sync,
    _lock: File,
    /// Removed with the spool (a spool for an in-memory database keeps nothing either).
    temporary: bool,
}

impl Drop for Spool {
    fn drop(&mut self) {
        if self.temporary {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("dir", &self.dir).field("pending", &self.pending_bytes()).finish_non_exhaustive()
    }
}

fn segment_path(dir: &Path, number: u64) -> PathBuf {
    dir.join(format!("{number:012}.log"))
}

/// The segment numbers present, in order.
fn segments(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut numbers: Vec<u64> = std::fs::read_dir(dir)
        .map_err(io(dir))?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".log")?.parse().ok())
        .collect();
    numbers.sort_unstable();
    Ok(numbers)
}

impl Spool {
    /// Opens (or creates) the spool in `dir`, starting a fresh segment; returns it with the
    /// instance id kept in the directory.
    pub fn open(dir: &Path, max_pending: u64) -> Result<(Self, String), SpoolError> {
        Self::open_with(dir, max_pending, Sync::default())
    }

    /// Opens the spool with a durability setting.
    pub fn open_with(dir: &Path, max_pending: u64, sync: Sync) -> Result<(Self, String), SpoolError> {
        std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(io(dir))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(io(dir))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => return Err(SpoolError::Locked(dir.display().to_string())),
            Err(std::fs::TryLockError::Error(e)) => return Err(io(dir)(e)),
        }
        let instance_path = dir.join("instance");
        let instance = match std::fs::read_to_string(&instance_path) {
            Ok(id) if !id.trim().is_empty() => id.trim().to_owned(),
            _ => {
                let id = crate::platform::db::new_id();
                std::fs::write(&instance_path, &id).map_err(io(dir))?;
                id
            }
        };
        let next = segments(dir)?.last().copied().unwrap_or(0) + 1;
        let segment = Self::create_segment(dir, next)?;
        let spool = Self {
            dir: dir.to_owned(),
            instance: instance.clone(),
            current: RwLock::new(Arc::new(segment)),
            pending: AtomicU64::new(0),
            max_pending,
            full: AtomicBool::new(false),
            failing: AtomicBool::new(false),
            sync,
            _lock: lock,
            temporary: false,
        };
        // A torn line left by a crash during a write is cut off before anything is appended.
        spool.repair();
        Ok((spool, instance))
    }

    /// A spool in a fresh directory of its own that is removed when the spool is dropped (for an
    /// in-memory database, whose records die with the process anyway).
    pub fn temporary(max_pending: u64) -> Result<Self, SpoolError> {
        let dir = std::env::temp_dir().join(format!(
            "perpetuo-spool-{}-{}",
            std::process::id(),
            crate::platform::db::new_id()
        ));
        let (mut spool, _) = Self::open(&dir, max_pending)?;
        spool.temporary = true;
        Ok(spool)
    }

    fn create_segment(dir: &Path, number: u64) -> Result<Segment, SpoolError> {
        let path = segment_path(dir, number);
        let file = OpenOptions::new().create(true).append(true).mode(0o600).open(&path).map_err(io(&path))?;
        let len = file.metadata().map_err(io(&path))?.len();
        Ok(Segment { number, file, len: AtomicU64::new(len) })
    }

    /// The directory this instance's records wait in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// This instance's id (its checkpoint's key in the database).
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// Counts what earlier runs left behind `from` as pending (the writer reads it first). The
    /// segment this process appends to is counted by its appends.
    pub fn account_backlog(&self, from: Position) -> Result<(), SpoolError> {
        let mut backlog = 0;
        let current = self.current_number();
        for number in segments(&self.dir)? {
            if number < from.segment || number >= current {
                continue;
            }
            let len = std::fs::metadata(segment_path(&self.dir, number)).map(|m| m.len()).unwrap_or(0);
            backlog += if number == from.segment { len.saturating_sub(from.offset) } else { len };
        }
        self.pending.fetch_add(backlog, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes appended and not yet committed to the database.
    pub fn pending_bytes(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Whether new calls must wait: the records not yet in the database reached the bound.
    pub fn is_full(&self) -> bool {
        self.pending_bytes() >= self.max_pending
    }

    /// The bound, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_pending
    }

    /// Whether appends are failing (the disk is full or broken): no call can be recorded.
    pub fn is_failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Appends one record. Returns once the record is in the kernel (it survives the process), or
    /// on the disk too with [`Sync::Every`]. A failed append leaves nothing behind and marks the
    /// spool failing.
    pub fn append(&self, record: &UsageRecord) -> Result<(), SpoolError> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| SpoolError::Io { path: self.dir.display().to_string(), source: e.into() })?;
        line.push(b'\n');
        // Held while writing: a repair (which takes it exclusively) never cuts a line in flight.
        let current = match self.current.read() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        let segment = Arc::clone(&current);
        // Counted before the write: once the line is in the file the writer may commit it (and
        // subtract it) at any moment, and a subtraction before the addition would leave the
        // counter off for good.
        let pending = self.pending.fetch_add(line.len() as u64, Ordering::Relaxed) + line.len() as u64;
        let written = (&segment.file)
            .write_all(&line)
            .and_then(|()| if self.sync == Sync::Every { segment.file.sync_data() } else { Ok(()) });
        if let Err(e) = written {
            self.pending.fetch_sub(line.len() as u64, Ordering::Relaxed);
            drop(current);
            if !self.failing.swap(true, Ordering::Relaxed) {
                tracing::error!(error = %e, "the usage spool cannot be written: gateway calls are refused until it can");
            }
            // A partial write (ENOSPC midway) must not leave a fragment the next line joins.
            self.repair();
            return Err(io(&self.dir)(e));
        }
        let len = segment.len.fetch_add(line.len() as u64, Ordering::Relaxed) + line.len() as u64;
        drop(current);
        if pending >= self.max_pending && !self.full.swap(true, Ordering::Relaxed) {
            tracing::error!(
                pending_bytes = pending,
                max_bytes = self.max_pending,
                "the usage spool is full: new gateway calls are refused until the database catches up"
            );
        }
        if len >= SEGMENT_BYTES {
            self.rotate(segment.number)?;
        }
        Ok(())
    }

    /// Cuts the current segment back to its last whole line (no append runs meanwhile).
    fn repair(&self) {
        let current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        let path = segment_path(&self.dir, current.number);
        match whole_length(&path) {
            Ok(whole) => {
                let len = current.file.metadata().map(|m| m.len()).unwrap_or(whole);
                if len != whole {
                    if let Err(e) = current.file.set_len(whole) {
                        tracing::error!(error = %e, "the usage spool's torn tail could not be cut off");
                        return;
                    }
                    tracing::warn!(bytes = len - whole, "a torn record at the end of the usage spool was cut off");
                }
                current.len.store(whole, Ordering::Relaxed);
            }
            Err(e) => tracing::error!(error = %e, "the usage spool's segment could not be read back"),
        }
    }

    /// While failing: whether the disk takes writes again (a probe of [`PROBE_BYTES`], taken back
    /// at once); the spool accepts records again when it does.
    pub fn probe(&self) -> bool {
        if !self.is_failing() {
            return true;
        }
        let current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        let before = current.len.load(Ordering::Relaxed);
        let mut padding = vec![b' '; PROBE_BYTES];
        padding.push(b'\n');
        let wrote = (&current.file).write_all(&padding).and_then(|()| current.file.sync_data());
        let cut = current.file.set_len(before);
        drop(current);
        match (wrote, cut) {
            (Ok(()), Ok(())) => {
                self.failing.store(false, Ordering::Relaxed);
                tracing::info!("the usage spool can be written again: gateway calls are accepted");
                true
            }
            _ => {
                self.repair();
                false
            }
        }
    }

    /// Syncs the segment being written to the disk ([`Sync::Interval`], by the writer).
    pub fn sync_now(&self) {
        if self.sync != Sync::Interval {
            return;
        }
        let segment = match self.current.read() {
            Ok(current) => Arc::clone(&current),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        if let Err(e) = segment.file.sync_data() {
            tracing::warn!(error = %e, "the usage spool could not be synced to disk");
        }
    }

    /// Starts the next segment after `number`, unless another append already did.
    fn rotate(&self, number: u64) -> Result<(), SpoolError> {
        let mut current = match self.current.write() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if current.number == number {
            *current = Arc::new(Self::create_segment(&self.dir, number + 1)?);
        }
        Ok(())
    }

    /// The writer committed everything up to `to`: those bytes no longer count, and segments
    /// wholly behind it are deleted.
    pub fn committed(&self, bytes: u64, to: Position) {
        let before = self
            .pending
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |p| Some(p.saturating_sub(bytes)))
            .unwrap_or_else(|p| p);
        if before.saturating_sub(bytes) < self.max_pending && self.full.swap(false, Ordering::Relaxed) {
            tracing::info!("the usage spool has room again: gateway calls are accepted");
        }
        if let Ok(numbers) = segments(&self.dir) {
            for number in numbers.into_iter().filter(|n| *n < to.segment) {
                let _ = std::fs::remove_file(segment_path(&self.dir, number));
            }
        }
    }

    /// The segment being appended to now.
    fn current_number(&self) -> u64 {
        match self.current.read() {
            Ok(current) => current.number,
            Err(poisoned) => poisoned.into_inner().number,
        }
    }

    /// Reads complete records from `from` on, at most `max` of them; returns them with the
    /// position after the last one read and the bytes they took. Lines that are not records (a
    /// torn tail after power loss) are skipped and logged.
    pub fn read(&self, from: Position, max: usize) -> Result<(Vec<Line>, Position, u64), SpoolError> {
        let mut records = Vec::new();
        let mut at = from;
        let mut bytes = 0u64;
        let current = self.current_number();
        let numbers = segments(&self.dir)?;
        for number in numbers.into_iter().filter(|n| *n >= from.segment) {
            if number > at.segment {
                at = Position { segment: number, offset: 0 };
            }
            let path = segment_path(&self.dir, number);
            let mut file = File::open(&path).map_err(io(&path))?;
            file.seek(SeekFrom::Start(at.offset)).map_err(io(&path))?;
            let mut buffer = Vec::new();
            let wanted = (max.saturating_sub(records.len()) * 1024).clamp(64 * 1024, 16 * 1024 * 1024);
            (&mut file).take(wanted as u64).read_to_end(&mut buffer).map_err(io(&path))?;
            let mut consumed = 0usize;
            while records.len() < max {
                let Some(end) = buffer[consumed..].iter().position(|b| *b == b'\n') else { break };
                let line = &buffer[consumed..consumed + end];
                consumed += end + 1;
                // Padding a probe could not take back (a crash in between) is not a record.
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let parsed = std::str::from_utf8(line)
                    .ok()
                    .and_then(|text| Some((serde_json::from_str::<UsageRecord>(text).ok()?, text)));
                match parsed {
                    Some((record, text)) => records.push(Line { record, text: text.to_owned() }),
                    None => tracing::error!(segment = number, "an unreadable line in the usage spool was skipped"),
                }
            }
            at.offset += consumed as u64;
            bytes += consumed as u64;
            if records.len() >= max {
                break;
            }
            let rest = buffer.len() - consumed;
            let file_len = file.metadata().map(|m| m.len()).unwrap_or(0);
            let at_end = at.offset + rest as u64 >= file_len;
            if number == current || !at_end {
                // The segment being written, or more to read here next time.
                break;
            }
            if rest > 0 {
                // A closed segment that ends without a newline: a torn write, never completed.
                tracing::error!(
                    segment = number,
                    bytes = rest,
                    "a torn record at the end of a usage spool segment was skipped"
                );
                bytes += rest as u64;
                at.offset += rest as u64;
            }
        }
        Ok((records, at, bytes))
    }
}

/// The length of a file up to and including its last newline (0 when it has none).
fn whole_length(path: &Path) -> std::io::Result<u64> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut end = len;
    let mut buffer = vec![0u8; 64 * 1024];
    while end > 0 {
        let start = end.saturating_sub(buffer.len() as u64);
        let chunk = &mut buffer[..usize::try_from(end - start).unwrap_or(0)];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|b| *b == b'\n') {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::super::record::tests::record;
    use super::*;

    fn dir() -> PathBuf {
        std::env::temp_dir().join(format!("perpetuo-spool-test-{}", crate::platform::db::new_id()))
    }

    fn numbered(i: usize) -> UsageRecord {
        let mut r = record("w1", "m", true);
        r.request_id = format!("req_{i}");
        r
    }

    fn ids(lines: &[Line]) -> Vec<String> {
        lines.iter().map(|l| l.record.request_id.clone()).collect()
    }

    #[test]
    fn records_come_back_in_order_with_their_lines_and_positions() {
        let dir = dir();
        let (spool, instance) = Spool::open(&dir, 1 << 30).unwrap();
        assert!(!instance.is_empty());
        for i in 0..5 {
            spool.append(&numbered(i)).unwrap();
        }
        let (lines, at, bytes) = spool.read(Position::default(), 3).unwrap();
        assert_eq!(ids(&lines), ["req_0", "req_1", "req_2"]);
        assert_eq!(serde_json::from_str::<UsageRecord>(&lines[0].text).ok(), Some(numbered(0)));
        let (rest, end, more) = spool.read(at, 100).unwrap();
        assert_eq!(ids(&rest), ["req_3", "req_4"]);
        assert_eq!(spool.pending_bytes(), bytes + more);
        spool.committed(bytes + more, end);
        assert_eq!(spool.pending_bytes(), 0);
        assert!(spool.read(end, 100).unwrap().0.is_empty());
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_pending_count_is_exact_when_the_writer_commits_during_appends() {
        let dir = dir();
        let (spool, _) = Spool::open(&dir, 1 << 30).unwrap();
        let spool = std::sync::Arc::new(spool);
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (spool, done) = (std::sync::Arc::clone(&spool), std::sync::Arc::clone(&done));
            std::thread::spawn(move || {
                let mut at = Position::default();
                let mut read = 0;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let (lines, end, bytes) = spool.read(at, 500).unwrap();
                    read += lines.len();
                    spool.committed(bytes, end);
                    at = end;
                    if finished && lines.is_empty() {
                        return read;
                    }
                }
            })
        };
        let appenders: Vec<_> = (0..4)
            .map(|t| {
                let spool = std::sync::Arc::clone(&spool);
                std::thread::spawn(move || {
                    for i in 0..5_000 {
                        spool.append(&numbered(t * 10_000 + i)).unwrap();
                    }
                })
            })
            .collect();
        for appender in appenders {
            appender.join().unwrap();
        }
        done.store(true, Ordering::SeqCst);
        assert_eq!(writer.join().unwrap(), 20_000);
        assert_eq!(spool.pending_bytes(), 0, "every committed byte was counted once, added and taken away");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_restart_reads_on_from_the_checkpoint_into_a_new_segment() {
        let dir = dir();
        let (spool, first) = Spool::open(&dir, 1 << 30).unwrap();
        for i in 0..4 {
            spool.append(&numbered(i)).unwrap();
        }
        let (_, checkpoint, _) = spool.read(Position::default(), 2).unwrap();
        drop(spool);
        let (spool, again) = Spool::open(&dir, 1 << 30).unwrap();
        assert_eq!(first, again, "the instance keeps its id");
        spool.append(&numbered(4)).unwrap();
        spool.account_backlog(checkpoint).unwrap();
        let (lines, _, bytes) = spool.read(checkpoint, 100).unwrap();
        assert_eq!(ids(&lines), ["req_2", "req_3", "req_4"], "the rest of the old segment, then the new one");
        assert_eq!(spool.pending_bytes(), bytes);
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_torn_last_line_of_a_closed_segment_is_skipped() {
        let dir = dir();
        let (spool, _) = Spool::open(&dir, 1 << 30).unwrap();
        spool.append(&numbered(0)).unwrap();
        drop(spool);
        // A write cut short by a power loss: half a line, no newline.
        let mut file = OpenOptions::new().append(true).open(segment_path(&dir, 1)).unwrap();
        file.write_all(br#"{"ts":1700000000000,"workspa"#).unwrap();
        drop(file);
        let (spool, _) = Spool::open(&dir, 1 << 30).unwrap();
        spool.append(&numbered(1)).unwrap();
        let (lines, _, _) = spool.read(Position::default(), 100).unwrap();
        assert_eq!(ids(&lines), ["req_0", "req_1"]);
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_bound_says_full_and_commits_make_room_and_delete_old_segments() {
        let dir = dir();
        let line_len = serde_json::to_vec(&numbered(0)).unwrap().len() as u64 + 1;
        let (spool, _) = Spool::open(&dir, line_len * 3).unwrap();
        for i in 0..3 {
            assert!(!spool.is_full());
            spool.append(&numbered(i)).unwrap();
        }
        assert!(spool.is_full());
        let (_, to, bytes) = spool.read(Position::default(), 2).unwrap();
        spool.committed(bytes, to);
        assert!(!spool.is_full());
        drop(spool);
        let (spool, _) = Spool::open(&dir, line_len * 3).unwrap();
        let (_, end, bytes) = spool.read(to, 100).unwrap();
        assert_eq!(end.segment, 2, "read through to the new segment");
        spool.committed(bytes, end);
        assert!(!segment_path(&dir, 1).exists(), "a segment wholly behind the checkpoint is deleted");
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn files_are_private_and_a_torn_tail_is_cut_before_appending() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = dir();
        let (spool, _) = Spool::open(&dir, 1 << 30).unwrap();
        spool.append(&numbered(0)).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&segment_path(&dir, 1)), 0o600);
        // A fragment in the segment being written (as a crash mid-write leaves it).
        let mut file = OpenOptions::new().append(true).open(segment_path(&dir, 1)).unwrap();
        file.write_all(br#"{"ts":17000"#).unwrap();
        drop(file);
        spool.repair();
        spool.append(&numbered(1)).unwrap();
        let (lines, _, _) = spool.read(Position::default(), 100).unwrap();
        assert_eq!(ids(&lines), ["req_0", "req_1"], "the next record did not join the fragment");
        assert!(spool.probe(), "not failing: nothing to probe");
        drop(spool);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn sync_settings_parse() {
        assert_eq!(Sync::parse("every"), Some(Sync::Every));
        assert_eq!(Sync::parse(" Interval "), Some(Sync::Interval));
        assert_eq!(Sync::parse("off"), Some(Sync::Off));
        assert_eq!(Sync::parse("sometimes"), None);
    }

    #[test]
    fn one_process_per_spool() {
        let dir = dir();
        let (spool, _) = Spool::open(&dir, 1 << 30).unwrap();
        assert!(matches!(Spool::open(&dir, 1 << 30), Err(SpoolError::Locked(_))));
        drop(spool);
        assert!(Spool::open(&dir, 1 << 30).is_ok(), "free again once closed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_temporary_spool_leaves_nothing() {
        let spool = Spool::temporary(1 << 30).unwrap();
        let dir = spool.dir().to_owned();
        spool.append(&numbered(0)).unwrap();
        assert!(dir.exists());
        drop(spool);
        assert!(!dir.exists());
    }
}
