//! What only the RocksDB store has to show: durability across reopen, the genesis check,
//! clear typed errors for directories that are not data directories, and corrupt values
//! reported with what was being read.

#![allow(clippy::unwrap_used)] // Tests may unwrap (STYLE "Gates").

use std::path::Path;

use ieschain_core::sample::SampleFederation;
use ieschain_core::{AnyBlock, ChainId};
use ieschain_storage::verify::verify;
use ieschain_storage::{ChainStore, RocksOptions, RocksStore, StoreError};

type TestResult = Result<(), Box<dyn std::error::Error>>;

fn federation() -> SampleFederation {
    SampleFederation::four_party(21, 3)
}

fn load(store: &RocksStore, appends: &[(ieschain_core::Address, AnyBlock)]) -> TestResult {
    for batch in appends.chunks(50) {
        store.append_many(batch)?;
    }
    Ok(())
}

/// How many (holder, chain) pairs `appends` write to.
fn chain_count(appends: &[(ieschain_core::Address, AnyBlock)]) -> usize {
    let mut set: Vec<_> = appends.iter().map(|(h, b)| (*h, b.chain())).collect();
    set.sort();
    set.dedup();
    set.len()
}

/// Closing and reopening recovers every head and every block, with or without fsync on
/// each write, through `open` and `open_existing` alike; and the reopened store verifies.
#[test]
fn reopen_recovers_heads_and_blocks() -> TestResult {
    let federation = federation();
    let ledger = federation.ledger(4);
    for sync in [true, false] {
        let dir = tempfile::tempdir()?;
        let (chains, blocks) = {
            let store = RocksStore::open(dir.path(), &federation.genesis, RocksOptions { sync })?;
            load(&store, &ledger.appends)?;
            let chains = store.chains()?;
            let mut blocks = Vec::new();
            for (holder, chain, _) in &chains {
                blocks.push(store.range(*holder, *chain, 1, usize::MAX)?);
            }
            (chains, blocks)
        };
        assert_eq!(chains.len(), chain_count(&ledger.appends));
        let reopened = RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default())?;
        assert_eq!(reopened.chains()?, chains, "sync={sync}: heads recovered");
        for ((holder, chain, _), expected) in chains.iter().zip(&blocks) {
            assert_eq!(&reopened.range(*holder, *chain, 1, usize::MAX)?, expected);
        }
        // Appending continues from the recovered head.
        let (holder, chain, head) = chains[0];
        let next = reopened.range(holder, chain, head.height, 1)?;
        assert!(matches!(
            reopened.append(holder, &next[0]),
            Err(StoreError::NotNext { .. })
        ));
        drop(reopened);

        let existing = RocksStore::open_existing(dir.path())?;
        assert_eq!(
            existing.genesis(),
            &federation.genesis,
            "genesis read from metadata"
        );
        assert_eq!(existing.chains()?, chains);
        assert_eq!(existing.path(), dir.path());
        let summary = verify(&existing)?;
        assert_eq!(summary.blocks, ledger.appends.len() as u64);
    }
    Ok(())
}

/// Reopening a directory with another federation's genesis is `GenesisMismatch`, naming
/// the directory and both hashes, and leaves the store as it was.
#[test]
fn reopen_with_another_genesis_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let ours = federation();
    let theirs = SampleFederation::four_party(22, 3);
    {
        let store = RocksStore::open(dir.path(), &ours.genesis, RocksOptions::default())?;
        load(&store, &ours.ledger(1).appends)?;
    }
    match RocksStore::open(dir.path(), &theirs.genesis, RocksOptions::default()) {
        Err(err @ StoreError::GenesisMismatch { .. }) => {
            let text = err.to_string();
            assert!(text.contains(&dir.path().display().to_string()), "{text}");
            assert!(text.contains(&ours.genesis.hash().to_string()), "{text}");
            assert!(text.contains(&theirs.genesis.hash().to_string()), "{text}");
        }
        other => panic!("expected GenesisMismatch, got {other:?}"),
    }
    let store = RocksStore::open(dir.path(), &ours.genesis, RocksOptions::default())?;
    assert!(!store.chains()?.is_empty());
    Ok(())
}

fn assert_names(err: &StoreError, path: &Path) {
    let text = err.to_string();
    assert!(
        text.contains(&path.display().to_string()),
        "must name {}: {text}",
        path.display()
    );
    assert_eq!(text.lines().count(), 1, "one line: {text}");
}

/// `open_existing` never creates anything, and gives a distinct typed error for a missing
/// directory, a file in its place, an empty directory and a RocksDB that is not ours;
/// `open` refuses the file and the foreign database too.
#[test]
fn open_existing_refuses_what_is_not_a_data_directory() -> TestResult {
    let root = tempfile::tempdir()?;

    let missing = root.path().join("missing");
    let err = RocksStore::open_existing(&missing).unwrap_err();
    assert!(matches!(err, StoreError::MissingDir { .. }), "{err:?}");
    assert_names(&err, &missing);
    assert!(!missing.exists(), "nothing is created");

    let garbage = root.path().join("garbage");
    std::fs::write(&garbage, b"not a database")?;
    let err = RocksStore::open_existing(&garbage).unwrap_err();
    assert!(matches!(err, StoreError::NotADirectory { .. }), "{err:?}");
    assert_names(&err, &garbage);
    let err =
        RocksStore::open(&garbage, &federation().genesis, RocksOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::NotADirectory { .. }),
        "open too: {err:?}"
    );
    assert_eq!(std::fs::read(&garbage)?, b"not a database");

    let empty = root.path().join("empty");
    std::fs::create_dir(&empty)?;
    let err = RocksStore::open_existing(&empty).unwrap_err();
    assert!(matches!(err, StoreError::NotADataDir { .. }), "{err:?}");
    assert_names(&err, &empty);
    assert_eq!(
        std::fs::read_dir(&empty)?.count(),
        0,
        "the directory stays empty"
    );

    let foreign = root.path().join("foreign");
    {
        let mut options = rocksdb::Options::default();
        options.create_if_missing(true);
        let db = rocksdb::DB::open(&options, &foreign)?;
        db.put(b"key", b"value")?;
    }
    let err = RocksStore::open_existing(&foreign).unwrap_err();
    assert!(matches!(err, StoreError::NotADataDir { .. }), "{err:?}");
    assert_names(&err, &foreign);
    let err =
        RocksStore::open(&foreign, &federation().genesis, RocksOptions::default()).unwrap_err();
    assert!(
        matches!(err, StoreError::NotADataDir { .. }),
        "open too: {err:?}"
    );
    assert_names(&err, &foreign);
    assert_eq!(
        rocksdb::DB::list_cf(&rocksdb::Options::default(), &foreign)?,
        ["default"],
        "a foreign database gets no column families"
    );
    Ok(())
}

/// Opening a directory that another handle holds open is a RocksDB error naming it.
#[test]
fn open_while_open_elsewhere_is_an_error() -> TestResult {
    let dir = tempfile::tempdir()?;
    let federation = federation();
    let _first = RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default())?;
    let err = RocksStore::open_existing(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Rocks { .. }), "{err:?}");
    assert_names(&err, dir.path());
    Ok(())
}

/// Opens the raw database with every column family, to write what the store API cannot.
fn raw_db(dir: &Path) -> Result<rocksdb::DB, rocksdb::Error> {
    let names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir)?;
    rocksdb::DB::open_cf(&rocksdb::Options::default(), dir, names)
}

/// Corrupt stored values are `Corrupt` errors naming what was being read: a block (also
/// after reopen), a head, and the genesis record.
#[test]
fn corrupt_values_name_what_was_read() -> TestResult {
    let dir = tempfile::tempdir()?;
    let federation = federation();
    let member = &federation.members[0];
    let holder = member.entry.address;
    let chain = ChainId::Private(holder);
    let ledger = federation.ledger(3);
    {
        let store = RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default())?;
        load(&store, &ledger.appends)?;
        store.overwrite_unchecked(holder, chain, 2, &[0xff; 7])?;
        store.flush()?;
    }
    let store = RocksStore::open_existing(dir.path())?;
    let err = store.block(holder, chain, 2).unwrap_err();
    match &err {
        StoreError::Corrupt { what, .. } => assert_eq!(
            what,
            &format!(
                "reading block {chain} height 2 of holder {}",
                holder.short()
            )
        ),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(store.block(holder, chain, 1)?.is_some());
    drop(store);

    // A head value cut short.
    {
        let db = raw_db(dir.path())?;
        let meta = db.cf_handle("meta").ok_or("no meta column family")?;
        let mut key = vec![b'H'];
        key.extend_from_slice(&holder.0);
        key.push(b'p');
        key.extend_from_slice(&holder.0);
        assert!(
            db.get_cf(meta, &key)?.is_some(),
            "the head key follows the documented layout"
        );
        db.put_cf(meta, &key, [0u8; 5])?;
    }
    let store = RocksStore::open_existing(dir.path())?;
    let err = store.chains().unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    assert!(
        err.to_string().contains(&format!("head of {chain}")),
        "{err}"
    );
    let err = store.head(holder, chain).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    drop(store);

    // A genesis record that does not decode.
    {
        let db = raw_db(dir.path())?;
        let meta = db.cf_handle("meta").ok_or("no meta column family")?;
        db.put_cf(meta, b"G", b"\x01\x02")?;
    }
    let err = RocksStore::open_existing(dir.path()).unwrap_err();
    assert!(err.is_corrupt(), "{err:?}");
    assert!(err.to_string().contains("genesis record"), "{err}");
    assert_names(&err, dir.path());
    Ok(())
}

/// Every column family is one of the fixed set: members never add column families.
#[test]
fn column_families_are_a_fixed_set() -> TestResult {
    let dir = tempfile::tempdir()?;
    let federation = federation();
    {
        let store = RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default())?;
        load(&store, &federation.ledger(2).appends)?;
    }
    let mut names = rocksdb::DB::list_cf(&rocksdb::Options::default(), dir.path())?;
    names.sort();
    assert_eq!(
        names,
        [
            "consortium",
            "default",
            "index",
            "meta",
            "negotiation",
            "private",
            "relay"
        ]
    );
    Ok(())
}

/// A directory held by a running process (RocksDB's lock) opens as a secondary instance:
/// it sees what the primary wrote, verifies, refuses writes, and creates nothing in the
/// data directory; a second primary open is refused while the first holds the lock.
#[test]
fn a_held_directory_opens_as_a_secondary_instance() -> TestResult {
    let federation = federation();
    let ledger = federation.ledger(3);
    let dir = tempfile::tempdir()?;
    let primary = RocksStore::open(dir.path(), &federation.genesis, RocksOptions::default())?;
    load(&primary, &ledger.appends)?;
    assert!(matches!(
        RocksStore::open_existing(dir.path()),
        Err(StoreError::Rocks { .. })
    ));
    let files = |path: &Path| -> Result<Vec<String>, std::io::Error> {
        let mut names = std::fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        names.sort();
        Ok(names)
    };
    let before = files(dir.path())?;
    let scratch = tempfile::tempdir()?;
    let secondary = RocksStore::open_secondary(dir.path(), scratch.path())?;
    assert_eq!(secondary.genesis(), &federation.genesis);
    assert_eq!(secondary.chains()?, primary.chains()?);
    assert_eq!(verify(&secondary)?.blocks, ledger.appends.len() as u64);
    let (holder, block) = &ledger.appends[0];
    assert!(
        secondary.append(*holder, block).is_err(),
        "a secondary writes nothing"
    );
    drop(secondary);
    assert_eq!(
        files(dir.path())?,
        before,
        "nothing created in the data directory"
    );
    // And the primary still serves every chain.
    assert_eq!(primary.chains()?.len(), chain_count(&ledger.appends));
    Ok(())
}
