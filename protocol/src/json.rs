//! JSON objects read strictly. Serde's derived structs already refuse a field given
//! twice; maps keep the last value silently, so `{"k":"a","k":"b"}` would be stored as
//! something its sender did not see. These refuse it.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{Deserialize, Deserializer, Error, MapAccess, Visitor};

/// The entries of an object, in order, refused when a key comes twice.
pub(crate) struct UniqueEntries<V>(pub Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for UniqueEntries<V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Entries<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for Entries<V> {
            type Value = UniqueEntries<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut entries: Vec<(String, V)> = Vec::new();
                let mut seen = std::collections::HashSet::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(A::Error::custom(format_args!(
                            "the key `{key}` is given twice"
                        )));
                    }
                    entries.push((key, map.next_value()?));
                }
                Ok(UniqueEntries(entries))
            }
        }

        d.deserialize_map(Entries(PhantomData))
    }
}

/// For `#[serde(deserialize_with)]`: a string map whose keys are each given once.
pub(crate) fn unique_map<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    Ok(UniqueEntries::deserialize(d)?.0.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use crate::{ProjectEntry, ProjectSpec, Report};

    #[test]
    fn a_key_given_twice_is_refused_wherever_it_is() {
        let report = r#"{"project":"acme/app","state":"passed","metadata":{"k":"a","k":"b"}}"#;
        let e = serde_json::from_str::<Report>(report).unwrap_err();
        assert!(e.to_string().contains("the key `k` is given twice"), "{e}");
        let twice = r#"{"project":"acme/app","state":"passed","state":"failed"}"#;
        assert!(serde_json::from_str::<Report>(twice).is_err());
        let spec = r#"{"name":"a","name":"b"}"#;
        assert!(serde_json::from_str::<ProjectSpec>(spec).is_err());
        let trigger = r#"{"name":"a","trigger":{"kind":"webhook","url":"https://a.example/","url":"https://b.example/"}}"#;
        assert!(serde_json::from_str::<ProjectSpec>(trigger).is_err());
        let entry = r#"{"id":"acme/a","id":"acme/b","name":"a"}"#;
        let e = serde_json::from_str::<ProjectEntry>(entry).unwrap_err();
        assert!(e.to_string().contains("the key `id` is given twice"), "{e}");
        let entry_field = r#"{"id":"acme/a","name":"a","name":"b"}"#;
        assert!(serde_json::from_str::<ProjectEntry>(entry_field).is_err());
        let once = r#"{"project":"acme/app","state":"passed","metadata":{"k":"a","j":"b"}}"#;
        assert_eq!(
            serde_json::from_str::<Report>(once).unwrap().metadata.len(),
            2
        );
    }
}
