//! The store's keys as bytes that sort as redb sorts the keys: how a table of the
//! redb file becomes rows of a store that only compares bytes (PostgreSQL's `bytea`,
//! which compares as memcmp does), so that a range of keys is the same range on
//! either store. Integers are big-endian; strings and byte strings have each 0x00
//! written as 0x00 0xFF and end with 0x00 0x00, so that a shorter one sorts first and
//! a tuple's parts stay apart; a tuple is its parts one after another.

/// A key of one of the store's tables, as sortable bytes.
pub trait SortKey: Sized {
    /// Appends the key's bytes to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// Reads a key from the front of `bytes`, leaving what follows it.
    fn decode(bytes: &mut &[u8]) -> Option<Self>;

    fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The key `bytes` hold, when they hold exactly one.
    fn from_bytes(mut bytes: &[u8]) -> Option<Self> {
        let key = Self::decode(&mut bytes)?;
        bytes.is_empty().then_some(key)
    }
}

macro_rules! big_endian {
    ($($t:ty),*) => {$(
        impl SortKey for $t {
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_be_bytes());
            }

            fn decode(bytes: &mut &[u8]) -> Option<Self> {
                const N: usize = std::mem::size_of::<$t>();
                let (head, rest) = bytes.split_first_chunk::<N>()?;
                *bytes = rest;
                Some(<$t>::from_be_bytes(*head))
            }
        }
    )*};
}
big_endian!(u32, u64, u128);

fn encode_bytes(data: &[u8], out: &mut Vec<u8>) {
    for &b in data {
        out.push(b);
        if b == 0 {
            out.push(0xFF);
        }
    }
    out.extend_from_slice(&[0, 0]);
}

fn decode_bytes(bytes: &mut &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        match (bytes.get(i)?, bytes.get(i + 1)) {
            (0, Some(0)) => {
                *bytes = &bytes[i + 2..];
                return Some(out);
            }
            (0, Some(0xFF)) => {
                out.push(0);
                i += 2;
            }
            (0, _) => return None,
            (&b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
}

impl SortKey for Vec<u8> {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_bytes(self, out);
    }

    fn decode(bytes: &mut &[u8]) -> Option<Self> {
        decode_bytes(bytes)
    }
}

impl SortKey for String {
    fn encode(&self, out: &mut Vec<u8>) {
        encode_bytes(self.as_bytes(), out);
    }

    fn decode(bytes: &mut &[u8]) -> Option<Self> {
        String::from_utf8(decode_bytes(bytes)?).ok()
    }
}

impl SortKey for () {
    fn encode(&self, _: &mut Vec<u8>) {}

    fn decode(_: &mut &[u8]) -> Option<Self> {
        Some(())
    }
}

impl<A: SortKey, B: SortKey> SortKey for (A, B) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
    }

    fn decode(bytes: &mut &[u8]) -> Option<Self> {
        Some((A::decode(bytes)?, B::decode(bytes)?))
    }
}

impl<A: SortKey, B: SortKey, C: SortKey> SortKey for (A, B, C) {
    fn encode(&self, out: &mut Vec<u8>) {
        self.0.encode(out);
        self.1.encode(out);
        self.2.encode(out);
    }

    fn decode(bytes: &mut &[u8]) -> Option<Self> {
        Some((A::decode(bytes)?, B::decode(bytes)?, C::decode(bytes)?))
    }
}

/// A key type of one of redb's tables, as sortable bytes and back: how the store's
/// tables, declared once as redb's, are read and written on PostgreSQL.
pub(crate) trait Sorted: redb::Key + 'static {
    fn sortable(key: &Self::SelfType<'_>) -> Vec<u8>;
    /// The key `sortable` bytes hold, as redb encodes it.
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>>;
}

/// redb's own encoding of a key.
fn redb_encoded<K: redb::Key>(key: &K::SelfType<'_>) -> Vec<u8> {
    K::as_bytes(key).as_ref().to_vec()
}

impl Sorted for &'static str {
    fn sortable(key: &&str) -> Vec<u8> {
        (*key).to_owned().to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        Some(String::from_bytes(sortable)?.into_bytes())
    }
}

impl Sorted for &'static [u8] {
    fn sortable(key: &&[u8]) -> Vec<u8> {
        key.to_vec().to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        Vec::<u8>::from_bytes(sortable)
    }
}

macro_rules! sorted_as_itself {
    ($($t:ty),*) => {$(
        impl Sorted for $t {
            fn sortable(key: &$t) -> Vec<u8> {
                key.to_bytes()
            }
            fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
                Some(redb_encoded::<$t>(&<$t>::from_bytes(sortable)?))
            }
        }
    )*};
}
sorted_as_itself!(u64, u128, (u128, u32));

impl Sorted for (&'static str, u64) {
    fn sortable(key: &(&str, u64)) -> Vec<u8> {
        (key.0.to_owned(), key.1).to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        let (a, b) = <(String, u64)>::from_bytes(sortable)?;
        Some(redb_encoded::<Self>(&(a.as_str(), b)))
    }
}

impl Sorted for (u64, &'static str) {
    fn sortable(key: &(u64, &str)) -> Vec<u8> {
        (key.0, key.1.to_owned()).to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        let (a, b) = <(u64, String)>::from_bytes(sortable)?;
        Some(redb_encoded::<Self>(&(a, b.as_str())))
    }
}

impl Sorted for (&'static str, u128) {
    fn sortable(key: &(&str, u128)) -> Vec<u8> {
        (key.0.to_owned(), key.1).to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        let (a, b) = <(String, u128)>::from_bytes(sortable)?;
        Some(redb_encoded::<Self>(&(a.as_str(), b)))
    }
}

impl Sorted for (&'static str, &'static str) {
    fn sortable(key: &(&str, &str)) -> Vec<u8> {
        (key.0.to_owned(), key.1.to_owned()).to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        let (a, b) = <(String, String)>::from_bytes(sortable)?;
        Some(redb_encoded::<Self>(&(a.as_str(), b.as_str())))
    }
}

impl Sorted for (&'static str, &'static str, &'static str) {
    fn sortable(key: &(&str, &str, &str)) -> Vec<u8> {
        (key.0.to_owned(), key.1.to_owned(), key.2.to_owned()).to_bytes()
    }
    fn redb_bytes(sortable: &[u8]) -> Option<Vec<u8>> {
        let (a, b, c) = <(String, String, String)>::from_bytes(sortable)?;
        Some(redb_encoded::<Self>(&(a.as_str(), b.as_str(), c.as_str())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use redb::Key;
    use std::cmp::Ordering;

    /// How redb orders two keys of type `K`, as it stores them.
    fn redb_order<K: Key>(a: &K::SelfType<'_>, b: &K::SelfType<'_>) -> Ordering
    where
        for<'x> K::SelfType<'x>: Sized,
    {
        K::compare(K::as_bytes(a).as_ref(), K::as_bytes(b).as_ref())
    }

    fn same_order<S: SortKey + PartialEq + std::fmt::Debug>(a: &S, b: &S, redb: Ordering) {
        let (x, y) = (a.to_bytes(), b.to_bytes());
        assert_eq!(x.cmp(&y), redb, "{a:?} against {b:?}");
        assert_eq!(S::from_bytes(&x).as_ref(), Some(a), "{a:?} comes back");
    }

    fn text() -> impl Strategy<Value = String> {
        // NULs, and strings that are prefixes of others, are where encodings go wrong.
        prop_oneof![
            "[a\\x00b/]{0,6}",
            "\\PC{0,12}",
            Just(String::new()),
            Just("a".to_owned()),
            Just("a\0".to_owned()),
        ]
    }

    proptest! {
        #[test]
        fn integers_sort_as_redb_sorts_them(a: u128, b: u128, c: u64, d: u64, e: u32, f: u32) {
            same_order(&a, &b, redb_order::<u128>(&a, &b));
            same_order(&c, &d, redb_order::<u64>(&c, &d));
            same_order(&e, &f, redb_order::<u32>(&e, &f));
        }

        #[test]
        fn strings_and_bytes_sort_as_redb_sorts_them(a in text(), b in text()) {
            same_order(&a, &b, redb_order::<&str>(&a.as_str(), &b.as_str()));
            let (x, y) = (a.clone().into_bytes(), b.clone().into_bytes());
            same_order(&x, &y, redb_order::<&[u8]>(&x.as_slice(), &y.as_slice()));
        }

        #[test]
        fn tuples_sort_as_redb_sorts_them(
            a in text(), b in text(), n: u128, m: u128, p: u32, q: u32, c in text(), d in text(),
        ) {
            same_order(
                &(n, p),
                &(m, q),
                redb_order::<(u128, u32)>(&(n, p), &(m, q)),
            );
            same_order(
                &(a.clone(), n),
                &(b.clone(), m),
                redb_order::<(&str, u128)>(&(a.as_str(), n), &(b.as_str(), m)),
            );
            same_order(
                &(a.clone(), c.clone(), b.clone()),
                &(b.clone(), d.clone(), a.clone()),
                redb_order::<(&str, &str, &str)>(
                    &(a.as_str(), c.as_str(), b.as_str()),
                    &(b.as_str(), d.as_str(), a.as_str()),
                ),
            );
            let (k, l) = (n as u64, m as u64);
            same_order(
                &(k, a.clone()),
                &(l, b.clone()),
                redb_order::<(u64, &str)>(&(k, a.as_str()), &(l, b.as_str())),
            );
        }
    }

    #[test]
    fn a_key_with_bytes_left_over_is_no_key() {
        let mut bytes = 7u32.to_bytes();
        bytes.push(1);
        assert_eq!(u32::from_bytes(&bytes), None);
        assert_eq!(String::from_bytes(&[b'a', 0, 7]), None, "a bad escape");
        assert_eq!(String::from_bytes(b"a"), None, "no end");
    }
}
