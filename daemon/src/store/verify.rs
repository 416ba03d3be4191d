//! Checking a database file page by page without changing it. redb's integrity check
//! reads every page and then commits (it rebuilds the allocator state), so it runs on
//! a copy-on-write view of the file: reads come from the file, opened read-only, and
//! writes stay in memory. A backup on read-only media can be checked, and the file a
//! check reads has the same bytes afterwards.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Mutex;

use redb::StorageBackend;

use super::StoreError;

/// The size of the blocks writes are kept in.
const BLOCK: u64 = 4096;

/// A file seen through the writes made to it, which are kept in memory.
#[derive(Debug)]
pub(super) struct CopyOnWrite {
    file: File,
    view: Mutex<View>,
}

#[derive(Debug)]
struct View {
    /// The length as redb last set it.
    len: u64,
    /// Bytes of the file at and beyond this offset read as zero unless written: the
    /// file as it is, cut where a `set_len` ever cut it.
    file_len: u64,
    /// Blocks written, by their index.
    written: BTreeMap<u64, Box<[u8]>>,
}

impl CopyOnWrite {
    pub(super) fn open(path: &Path) -> io::Result<Self> {
        let file = File::open(path)?;
        let len = file.metadata()?.len();
        Ok(Self {
            file,
            view: Mutex::new(View {
                len,
                file_len: len,
                written: BTreeMap::new(),
            }),
        })
    }

    fn view(&self) -> io::Result<std::sync::MutexGuard<'_, View>> {
        self.view
            .lock()
            .map_err(|_| io::Error::other("a check of the file panicked"))
    }
}

impl View {
    /// Block `index` as the view has it: written, or read from the file (zeros past
    /// what the file holds).
    fn block(&self, file: &File, index: u64) -> io::Result<Box<[u8]>> {
        if let Some(block) = self.written.get(&index) {
            return Ok(block.clone());
        }
        let mut block = vec![0u8; BLOCK as usize].into_boxed_slice();
        let start = index * BLOCK;
        if start < self.file_len {
            let n = (self.file_len - start).min(BLOCK) as usize;
            file.read_exact_at(&mut block[..n], start)?;
        }
        Ok(block)
    }
}

impl StorageBackend for CopyOnWrite {
    fn len(&self) -> Result<u64, io::Error> {
        Ok(self.view()?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        let view = self.view()?;
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|&end| end <= view.len)
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past the end"))?;
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            let from = (at - offset) as usize;
            match view.written.get(&index) {
                Some(block) => out[from..from + n].copy_from_slice(&block[within..within + n]),
                None => {
                    let block = view.block(&self.file, index)?;
                    out[from..from + n].copy_from_slice(&block[within..within + n]);
                }
            }
            at += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        let mut view = self.view()?;
        if len < view.len {
            view.file_len = view.file_len.min(len);
            // Bytes past the new end read as zero if the view grows again.
            let first_gone = len / BLOCK;
            let cut = (len % BLOCK) as usize;
            if cut > 0 {
                let mut block = view.block(&self.file, first_gone)?;
                block[cut..].fill(0);
                view.written.insert(first_gone, block);
                view.written.split_off(&(first_gone + 1));
            } else {
                view.written.split_off(&first_gone);
            }
        }
        view.len = len;
        Ok(())
    }

    fn sync_data(&self) -> Result<(), io::Error> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        let mut view = self.view()?;
        let end = offset + data.len() as u64;
        let mut at = offset;
        while at < end {
            let index = at / BLOCK;
            let within = (at % BLOCK) as usize;
            let n = ((BLOCK as usize) - within).min((end - at) as usize);
            let mut block = view.block(&self.file, index)?;
            let from = (at - offset) as usize;
            block[within..within + n].copy_from_slice(&data[from..from + n]);
            view.written.insert(index, block);
            at += n as u64;
        }
        view.len = view.len.max(end);
        Ok(())
    }
}

/// Whether a daemon (a writer) has the database open: a read-only open, which changes
/// nothing, is refused then. Held while the check runs, the read-only open keeps a
/// daemon from starting on the file meanwhile.
pub(super) fn not_in_use(path: &Path) -> Result<Option<redb::ReadOnlyDatabase>, StoreError> {
    match redb::ReadOnlyDatabase::open(path) {
        Ok(db) => Ok(Some(db)),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::InUse(path.to_owned())),
        // A file that needs a repair, or is damaged, is not open elsewhere; the check
        // says what is wrong with it.
        Err(_) => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_stay_in_memory_and_reads_see_them_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &original).unwrap();
        let cow = CopyOnWrite::open(&path).unwrap();
        let mut model = original.clone();

        fn apply(cow: &CopyOnWrite, model: &mut Vec<u8>, offset: u64, data: &[u8]) {
            cow.write(offset, data).unwrap();
            let end = offset as usize + data.len();
            if model.len() < end {
                model.resize(end, 0);
            }
            model[offset as usize..end].copy_from_slice(data);
        }
        apply(&cow, &mut model, 4090, &[7; 20]);
        apply(&cow, &mut model, 0, &[1, 2, 3]);
        apply(&cow, &mut model, 12_000, &[9; 5000]);
        cow.set_len(9000).unwrap();
        model.truncate(9000);
        cow.set_len(20_000).unwrap();
        model.resize(20_000, 0);
        apply(&cow, &mut model, 8190, &[5; 4]);

        assert_eq!(cow.len().unwrap(), model.len() as u64);
        let mut all = vec![0u8; model.len()];
        cow.read(0, &mut all).unwrap();
        assert_eq!(all, model, "the view is the file with its writes");
        let mut piece = vec![0u8; 300];
        cow.read(8100, &mut piece).unwrap();
        assert_eq!(piece, model[8100..8400]);
        assert!(cow.read(19_990, &mut [0u8; 20]).is_err(), "past the end");
        assert_eq!(
            std::fs::read(&path).unwrap(),
            original,
            "the file is untouched"
        );
    }
}
