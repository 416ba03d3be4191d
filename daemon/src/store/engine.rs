//! The one face the store's reads and writes have on either engine: a read or write
//! transaction, the tables it opens (declared once, as redb's), and what they
//! answer: values as redb encodes them, ranges in redb's order. The readers and
//! [`super::WriteTx`] are written against this face, so they do not know whether the
//! redb file or PostgreSQL ([`super::postgres::tables`]) is underneath.

use std::borrow::Borrow;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use redb::{AccessGuard, ReadableTable, ReadableTableMetadata, TableDefinition, Value};

use super::keys::Sorted;
use super::postgres::tables::{PgRows, PgTable, PgTxn};
use super::StoreError;

/// A read transaction: every table it opens shows the store as it was when it began.
pub(crate) enum ReadTxn {
    Redb(redb::ReadTransaction),
    Pg(PgTxn),
}

/// The writer's transaction: nothing it writes is seen by anyone else until
/// [`WriteTxn::commit`], and then all of it is.
// One is made per batch and never moved about: its size does not matter.
#[allow(clippy::large_enum_variant)]
pub(crate) enum WriteTxn {
    Redb(redb::WriteTransaction),
    /// With the fence of the writer's lease it began under.
    Pg(PgTxn, i64),
}

impl ReadTxn {
    pub fn open_table<K: Sorted, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<ReadTable<'_, K, V>, StoreError> {
        Ok(match self {
            ReadTxn::Redb(txn) => ReadTable::Redb(txn.open_table(def)?),
            ReadTxn::Pg(txn) => ReadTable::Pg(PgTable::open(txn, redb::TableHandle::name(&def))?),
        })
    }
}

impl WriteTxn {
    pub fn open_table<K: Sorted, V: Value + 'static>(
        &self,
        def: TableDefinition<K, V>,
    ) -> Result<Table<'_, K, V>, StoreError> {
        Ok(match self {
            WriteTxn::Redb(txn) => Table::Redb(txn.open_table(def)?),
            WriteTxn::Pg(txn, _) => Table::Pg(PgTable::open(txn, redb::TableHandle::name(&def))?),
        })
    }

    /// See `[store] quick_repair`; the redb file's alone.
    pub fn set_quick_repair(&mut self, on: bool) {
        if let WriteTxn::Redb(txn) = self {
            txn.set_quick_repair(on);
        }
    }

    pub fn commit(self) -> Result<(), StoreError> {
        match self {
            WriteTxn::Redb(txn) => Ok(txn.commit()?),
            WriteTxn::Pg(txn, fence) => Ok(txn.commit(fence)?),
        }
    }
}

/// A table opened by a read transaction.
pub(crate) enum ReadTable<'t, K: Sorted, V: Value + 'static> {
    Redb(redb::ReadOnlyTable<K, V>),
    Pg(PgTable<'t, K, V>),
}

/// A table opened by the writer's transaction.
pub(crate) enum Table<'t, K: Sorted, V: Value + 'static> {
    Redb(redb::Table<'t, K, V>),
    Pg(PgTable<'t, K, V>),
}

/// A key or value read from a table, as redb's guards give it.
pub(crate) enum Got<'a, V: Value + 'static> {
    Redb(AccessGuard<'a, V>),
    Owned(Vec<u8>, PhantomData<V>),
}

impl<V: Value + 'static> Got<'_, V> {
    fn owned(bytes: Vec<u8>) -> Self {
        Got::Owned(bytes, PhantomData)
    }

    pub fn value(&self) -> V::SelfType<'_> {
        match self {
            Got::Redb(g) => g.value(),
            Got::Owned(bytes, _) => V::from_bytes(bytes),
        }
    }
}

/// The rows of a range, first to last (or, after [`Rows::rev`], last to first).
pub(crate) enum Rows<'a, K: Sorted, V: Value + 'static> {
    Redb {
        range: redb::Range<'a, K, V>,
        reversed: bool,
    },
    Pg(PgRows<'a, K, V>),
}

impl<K: Sorted, V: Value + 'static> Rows<'_, K, V> {
    /// The same rows, last first; before any is read.
    pub fn rev(self) -> Self {
        match self {
            Rows::Redb { range, reversed } => Rows::Redb {
                range,
                reversed: !reversed,
            },
            Rows::Pg(rows) => Rows::Pg(rows.rev()),
        }
    }
}

impl<'a, K: Sorted, V: Value + 'static> Iterator for Rows<'a, K, V> {
    type Item = Result<(Got<'a, K>, Got<'a, V>), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        match self {
            Rows::Redb { range, reversed } => {
                let row = if *reversed {
                    range.next_back()
                } else {
                    range.next()
                };
                Some(
                    row?.map(|(k, v)| (Got::Redb(k), Got::Redb(v)))
                        .map_err(Into::into),
                )
            }
            Rows::Pg(rows) => Some(
                rows.next()?
                    .map(|(k, v)| (Got::owned(k), Got::owned(v)))
                    .map_err(Into::into),
            ),
        }
    }
}

/// The bounds of `range` as references to its keys.
fn bounds<'r, 'a, K: Sorted, KR: Borrow<K::SelfType<'a>> + 'r>(
    range: &'r impl RangeBounds<KR>,
) -> (Bound<&'r K::SelfType<'a>>, Bound<&'r K::SelfType<'a>>) {
    let side = |b: Bound<&'r KR>| match b {
        Bound::Included(k) => Bound::Included(k.borrow()),
        Bound::Excluded(k) => Bound::Excluded(k.borrow()),
        Bound::Unbounded => Bound::Unbounded,
    };
    (side(range.start_bound()), side(range.end_bound()))
}

/// The reads both kinds of table answer, on either engine (redb's `ReadableTable`).
pub(crate) trait Readable<K: Sorted, V: Value + 'static> {
    fn get<'a>(&self, key: impl Borrow<K::SelfType<'a>>) -> Result<Option<Got<'_, V>>, StoreError>;

    fn range<'a, KR: Borrow<K::SelfType<'a>> + 'a>(
        &self,
        range: impl RangeBounds<KR> + 'a,
    ) -> Result<Rows<'_, K, V>, StoreError>;

    fn iter(&self) -> Result<Rows<'_, K, V>, StoreError>;

    fn len(&self) -> Result<u64, StoreError>;

    #[allow(clippy::type_complexity)]
    fn first(&self) -> Result<Option<(Got<'_, K>, Got<'_, V>)>, StoreError> {
        self.iter()?.next().transpose()
    }
}

macro_rules! readable {
    ($table:ident) => {
        impl<K: Sorted, V: Value + 'static> Readable<K, V> for $table<'_, K, V> {
            fn get<'a>(
                &self,
                key: impl Borrow<K::SelfType<'a>>,
            ) -> Result<Option<Got<'_, V>>, StoreError> {
                Ok(match self {
                    $table::Redb(t) => t.get(key)?.map(Got::Redb),
                    $table::Pg(t) => t.get(key.borrow())?.map(Got::owned),
                })
            }

            fn range<'a, KR: Borrow<K::SelfType<'a>> + 'a>(
                &self,
                range: impl RangeBounds<KR> + 'a,
            ) -> Result<Rows<'_, K, V>, StoreError> {
                Ok(match self {
                    $table::Redb(t) => Rows::Redb {
                        range: t.range(range)?,
                        reversed: false,
                    },
                    $table::Pg(t) => {
                        let (low, high) = bounds::<K, KR>(&range);
                        Rows::Pg(t.range(low, high))
                    }
                })
            }

            fn iter(&self) -> Result<Rows<'_, K, V>, StoreError> {
                Ok(match self {
                    $table::Redb(t) => Rows::Redb {
                        range: t.iter()?,
                        reversed: false,
                    },
                    $table::Pg(t) => Rows::Pg(t.range(Bound::Unbounded, Bound::Unbounded)),
                })
            }

            fn len(&self) -> Result<u64, StoreError> {
                Ok(match self {
                    $table::Redb(t) => t.len()?,
                    $table::Pg(t) => t.len()?,
                })
            }
        }
    };
}
readable!(ReadTable);
readable!(Table);

impl<K: Sorted, V: Value + 'static> Table<'_, K, V> {
    pub fn insert<'k, 'v>(
        &mut self,
        key: impl Borrow<K::SelfType<'k>>,
        value: impl Borrow<V::SelfType<'v>>,
    ) -> Result<(), StoreError> {
        match self {
            Table::Redb(t) => {
                t.insert(key, value)?;
            }
            Table::Pg(t) => t.insert(key.borrow(), value.borrow())?,
        }
        Ok(())
    }

    /// Removes `key`'s row, answering what it held.
    pub fn remove<'a>(
        &mut self,
        key: impl Borrow<K::SelfType<'a>>,
    ) -> Result<Option<Got<'_, V>>, StoreError> {
        Ok(match self {
            Table::Redb(t) => t.remove(key)?.map(Got::Redb),
            Table::Pg(t) => t.remove(key.borrow())?.map(Got::owned),
        })
    }
}
