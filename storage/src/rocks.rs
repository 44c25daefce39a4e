//! [`RocksStore`]: the durable chain store, one RocksDB database per federation data
//! directory (SPEC §7), with the fixed column families of [`crate::schema`].
//!
//! # Memory
//! A 10,000-member federation must open in bounded memory (SPEC §7). Members are key
//! prefixes, not column families, so memory does not grow with them; and the caches that
//! could grow with the data are capped:
//! - one LRU block cache of [`BLOCK_CACHE_BYTES`], shared by every column family, which
//!   also holds index and filter blocks (otherwise each open table file keeps its own);
//! - memtables of [`WRITE_BUFFER_BYTES`], at most [`MAX_WRITE_BUFFERS`] per column family,
//!   and [`DB_WRITE_BUFFER_BYTES`] for all of them together;
//! - at most [`MAX_OPEN_FILES`] open table files, and a WAL of at most
//!   [`MAX_TOTAL_WAL_BYTES`] before old memtables are flushed.
//!
//! `storage/MEMORY.md` records the measured peak.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use ieschain_core::genesis::Genesis;
use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DBCompressionType, Direction,
    IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions, DB,
};

use crate::engine::{Batch, Engine, EngineError, Entries, Op};
use crate::error::StoreError;
use crate::kv::{delegate_chain_store, KvStore};
use crate::schema::{Cf, FormatKey, FormatVersion, GenesisKey, GenesisRecord, StoreFormat};

/// Capacity of the LRU block cache shared by every column family.
pub const BLOCK_CACHE_BYTES: usize = 32 << 20;
/// Size of one memtable.
pub const WRITE_BUFFER_BYTES: usize = 4 << 20;
/// Memtables per column family, the active one included.
pub const MAX_WRITE_BUFFERS: i32 = 2;
/// All memtables of all column families together.
pub const DB_WRITE_BUFFER_BYTES: usize = 32 << 20;
/// Table files kept open at once.
pub const MAX_OPEN_FILES: i32 = 256;
/// WAL size beyond which the oldest memtables are flushed.
pub const MAX_TOTAL_WAL_BYTES: u64 = 64 << 20;

/// How a [`RocksStore`] writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RocksOptions {
    /// Whether every write is synced (WAL fsync) before it returns, as acknowledged appends
    /// must be (SPEC §7, §12 D4). Default true; simulations may turn it off.
    pub sync: bool,
}

impl Default for RocksOptions {
    fn default() -> Self {
        RocksOptions { sync: true }
    }
}

/// A RocksDB database and its shared block cache.
struct RocksEngine {
    db: DB,
    /// Kept so the cache visibly lives as long as the database that uses it.
    _cache: Cache,
}

impl std::fmt::Debug for RocksEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RocksEngine")
            .field("path", &self.db.path())
            .finish_non_exhaustive()
    }
}

impl RocksEngine {
    fn cf(&self, cf: Cf) -> Result<&ColumnFamily, EngineError> {
        self.db
            .cf_handle(cf.name())
            .ok_or(EngineError::MissingCf(cf.name()))
    }
}

/// The smallest key greater than every key starting with `prefix`, if there is one.
fn prefix_successor(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut out = prefix.to_vec();
    while let Some(last) = out.pop() {
        if last < u8::MAX {
            out.push(last + 1);
            return Some(out);
        }
    }
    None
}

impl Engine for RocksEngine {
    fn get(&self, cf: Cf, key: &[u8]) -> Result<Option<Vec<u8>>, EngineError> {
        Ok(self.db.get_cf(self.cf(cf)?, key)?)
    }

    fn scan(
        &self,
        cf: Cf,
        prefix: &[u8],
        from: &[u8],
        limit: usize,
    ) -> Result<Entries, EngineError> {
        let mut out = Vec::new();
        if limit == 0 {
            return Ok(out);
        }
        let mut read = ReadOptions::default();
        if let Some(upper) = prefix_successor(prefix) {
            read.set_iterate_upper_bound(upper);
        }
        let iter = self.db.iterator_cf_opt(
            self.cf(cf)?,
            read,
            IteratorMode::From(from, Direction::Forward),
        );
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key.into_vec(), value.into_vec()));
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    fn write(&self, batch: Batch, sync: bool) -> Result<(), EngineError> {
        let mut write = WriteBatch::default();
        for (cf, key, op) in batch.ops {
            let handle = self.cf(cf)?;
            match op {
                Op::Put(value) => write.put_cf(handle, key, value),
                Op::Delete => write.delete_cf(handle, key),
            }
        }
        let mut options = WriteOptions::default();
        options.set_sync(sync);
        Ok(self.db.write_opt(write, &options)?)
    }

    fn flush(&self) -> Result<(), EngineError> {
        self.db.flush_wal(true)?;
        for cf in Cf::ALL {
            self.db.flush_cf(self.cf(cf)?)?;
        }
        Ok(())
    }
}

/// Options for the database and for each column family, all sharing `cache`.
fn tuned(cache: &Cache, create: bool) -> (Options, impl Fn() -> Options) {
    let mut db = Options::default();
    db.create_if_missing(create);
    db.create_missing_column_families(create);
    db.set_db_write_buffer_size(DB_WRITE_BUFFER_BYTES);
    db.set_max_open_files(MAX_OPEN_FILES);
    db.set_max_total_wal_size(MAX_TOTAL_WAL_BYTES);
    db.set_max_background_jobs(2);
    db.set_keep_log_file_num(2);
    db.set_max_log_file_size(1 << 20);
    db.set_bytes_per_sync(1 << 20);
    let cache = cache.clone();
    let column_family = move || {
        let mut table = BlockBasedOptions::default();
        table.set_block_cache(&cache);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        table.set_bloom_filter(10.0, false);
        let mut cf = Options::default();
        cf.set_block_based_table_factory(&table);
        cf.set_write_buffer_size(WRITE_BUFFER_BYTES);
        cf.set_max_write_buffer_number(MAX_WRITE_BUFFERS);
        cf.set_compression_type(DBCompressionType::Lz4);
        cf
    };
    (db, column_family)
}

/// How a data directory is opened.
#[derive(Clone, Copy, Debug)]
enum Access<'a> {
    /// Read-write, creating the database if missing.
    Create,
    /// Read-write, the database must exist.
    Primary,
    /// Read-only beside the primary, with its own files in the given directory.
    Secondary(&'a Path),
}

/// A chain store in a RocksDB database.
#[derive(Debug)]
pub struct RocksStore {
    path: PathBuf,
    inner: KvStore<RocksEngine>,
}

fn io_error(doing: String, source: std::io::Error) -> StoreError {
    StoreError::Io {
        doing,
        source: Arc::new(source),
    }
}

impl RocksStore {
    /// Opens the store in `dir`, creating the directory and the database if missing. The
    /// first open writes `genesis` into the metadata; a later open with another genesis is
    /// [`StoreError::GenesisMismatch`] (SPEC §12 D2). A RocksDB database that ieschain did
    /// not create is [`StoreError::NotADataDir`], and is left untouched.
    pub fn open(
        dir: &Path,
        genesis: &Genesis,
        options: RocksOptions,
    ) -> Result<RocksStore, StoreError> {
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => {
                return Err(StoreError::NotADirectory {
                    path: dir.to_path_buf(),
                })
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(dir).map_err(|e| {
                    io_error(format!("creating data directory {}", dir.display()), e)
                })?;
            }
            Err(e) => {
                return Err(io_error(
                    format!("reading data directory {}", dir.display()),
                    e,
                ))
            }
        }
        // A database that is not ours is refused, not extended with our column families.
        if dir.join("CURRENT").is_file() {
            let existing = Self::list_cf(dir)?;
            if !existing.iter().any(|name| name == Cf::Meta.name()) {
                return Err(StoreError::NotADataDir {
                    path: dir.to_path_buf(),
                    why: format!(
                        "it holds a database without a {} column family, which ieschain did \
                         not create; refusing to write into it",
                        Cf::Meta.name()
                    ),
                });
            }
        }
        let engine = Self::open_engine(dir, true)?;
        let stored = KvStore::get::<GenesisRecord>(&engine, &GenesisKey, || {
            format!(
                "reading the genesis record of data directory {}",
                dir.display()
            )
        })?;
        match stored {
            Some(stored) => {
                Self::check_format(&engine, dir)?;
                if stored.hash() != genesis.hash() {
                    return Err(StoreError::GenesisMismatch {
                        path: dir.to_path_buf(),
                        stored: stored.hash(),
                        given: genesis.hash(),
                    });
                }
            }
            None => {
                engine
                    .write(KvStore::<RocksEngine>::genesis_batch(genesis), true)
                    .map_err(|e| {
                        e.during(|| {
                            format!(
                                "writing the genesis record of data directory {}",
                                dir.display()
                            )
                        })
                    })?;
            }
        }
        Ok(RocksStore {
            path: dir.to_path_buf(),
            inner: KvStore::new(engine, genesis.clone(), options.sync),
        })
    }

    /// Opens the store in an existing data directory, reading the genesis record from its
    /// metadata, for `verify` and `inspect`. Never creates anything: a missing path, a file
    /// in the directory's place, and a directory without an ieschain store are
    /// [`StoreError::MissingDir`], [`StoreError::NotADirectory`] and
    /// [`StoreError::NotADataDir`]. Writes are synced.
    pub fn open_existing(dir: &Path) -> Result<RocksStore, StoreError> {
        Self::open_existing_as(dir, Access::Primary)
    }

    /// Opens the store in an existing data directory as a RocksDB *secondary instance*:
    /// read-only, beside the process that holds the directory (a running federation), with
    /// the view of the moment it opens. It never writes into `dir`; its own files (RocksDB's
    /// info log) go to `scratch`, which must outlive the store. Writes through it fail. The
    /// same checks as [`RocksStore::open_existing`] apply.
    pub fn open_secondary(dir: &Path, scratch: &Path) -> Result<RocksStore, StoreError> {
        Self::open_existing_as(dir, Access::Secondary(scratch))
    }

    fn open_existing_as(dir: &Path, access: Access<'_>) -> Result<RocksStore, StoreError> {
        let path = dir.to_path_buf();
        match std::fs::metadata(dir) {
            Ok(meta) if !meta.is_dir() => return Err(StoreError::NotADirectory { path }),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::MissingDir { path })
            }
            Err(e) => {
                return Err(io_error(
                    format!("reading data directory {}", dir.display()),
                    e,
                ))
            }
        }
        // Checked before RocksDB is called: it would create its log file even when told not
        // to create the database.
        if !dir.join("CURRENT").is_file() {
            return Err(StoreError::NotADataDir {
                path,
                why: "it holds no database (no CURRENT file)".to_string(),
            });
        }
        let existing = Self::list_cf(dir)?;
        let missing: Vec<&str> = Cf::ALL
            .iter()
            .map(|cf| cf.name())
            .filter(|name| !existing.iter().any(|e| e == name))
            .collect();
        if !missing.is_empty() {
            return Err(StoreError::NotADataDir {
                path,
                why: format!(
                    "its database lacks the column families {}",
                    missing.join(", ")
                ),
            });
        }
        let engine = Self::open_engine_as(dir, access)?;
        let genesis = KvStore::get::<GenesisRecord>(&engine, &GenesisKey, || {
            format!(
                "reading the genesis record of data directory {}",
                dir.display()
            )
        })?
        .ok_or_else(|| StoreError::NotADataDir {
            path: path.clone(),
            why: "its database holds no genesis record".to_string(),
        })?;
        Self::check_format(&engine, dir)?;
        Ok(RocksStore {
            path,
            inner: KvStore::new(engine, genesis, RocksOptions::default().sync),
        })
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn open_engine(dir: &Path, create: bool) -> Result<RocksEngine, StoreError> {
        Self::open_engine_as(
            dir,
            if create {
                Access::Create
            } else {
                Access::Primary
            },
        )
    }

    fn open_engine_as(dir: &Path, access: Access<'_>) -> Result<RocksEngine, StoreError> {
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        let (mut db_options, cf_options) = tuned(&cache, matches!(access, Access::Create));
        // Column families a later version may add are opened too, so that RocksDB agrees to
        // open the database.
        let mut names: Vec<String> = Cf::ALL.iter().map(|cf| cf.name().to_string()).collect();
        if dir.join("CURRENT").is_file() {
            for name in Self::list_cf(dir)? {
                if !names.contains(&name) && name != "default" {
                    names.push(name);
                }
            }
        }
        let descriptors = names
            .into_iter()
            .map(|name| ColumnFamilyDescriptor::new(name, cf_options()));
        let opened = match access {
            Access::Create | Access::Primary => {
                DB::open_cf_descriptors(&db_options, dir, descriptors)
            }
            Access::Secondary(scratch) => {
                // A secondary instance keeps every table file open (RocksDB requires it).
                db_options.set_max_open_files(-1);
                DB::open_cf_descriptors_as_secondary(&db_options, dir, scratch, descriptors)
            }
        };
        let db = opened.map_err(|source| StoreError::Rocks {
            doing: format!(
                "opening data directory {}{}",
                dir.display(),
                match access {
                    Access::Secondary(_) => " as a secondary instance",
                    _ => "",
                }
            ),
            source,
        })?;
        Ok(RocksEngine { db, _cache: cache })
    }

    fn list_cf(dir: &Path) -> Result<Vec<String>, StoreError> {
        DB::list_cf(&Options::default(), dir).map_err(|source| StoreError::Rocks {
            doing: format!("listing the column families of {}", dir.display()),
            source,
        })
    }

    fn check_format(engine: &RocksEngine, dir: &Path) -> Result<(), StoreError> {
        let format = KvStore::get::<StoreFormat>(engine, &FormatKey, || {
            format!(
                "reading the store format of data directory {}",
                dir.display()
            )
        })?;
        match format {
            Some(FormatVersion::CURRENT) => Ok(()),
            Some(FormatVersion(found)) => Err(StoreError::UnsupportedFormat {
                path: dir.to_path_buf(),
                found,
                supported: FormatVersion::CURRENT.0,
            }),
            None => Err(StoreError::NotADataDir {
                path: dir.to_path_buf(),
                why: "its database holds a genesis record but no store format".to_string(),
            }),
        }
    }
}

delegate_chain_store!(RocksStore, inner);

#[cfg(test)]
mod tests {
    use super::prefix_successor;

    #[test]
    fn prefix_successor_bounds_the_prefix() {
        assert_eq!(prefix_successor(b"ab"), Some(b"ac".to_vec()));
        assert_eq!(prefix_successor(&[1, 0xff]), Some(vec![2]));
        assert_eq!(prefix_successor(&[0xff, 0xff]), None);
        assert_eq!(prefix_successor(&[]), None);
    }
}
