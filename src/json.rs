//! Reading JSON text into `serde_json::Value`s, as `serde_json::from_str` does, with each object
//! and list allocated once at its final size.
//!
//! serde_json's own reader starts every object empty and grows it key by key: an object of 8
//! fields is allocated three times and its index rehashed twice, which is about a third of the
//! cost of reading a small record. Here the entries of an object are gathered on a scratch stack
//! first, then moved into a map of exactly their number. The values are the same.

use std::cell::Cell;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// Parses `text` as one JSON value, like `serde_json::from_str::<Value>` (same errors, same
/// values, keys in document order, the last of duplicate keys winning in the first one's place).
pub fn parse(text: &str) -> serde_json::Result<Value> {
    let mut scratch = Scratch::take();
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Seed(&mut scratch).deserialize(&mut de);
    let result = value.and_then(|v| de.end().map(|()| v));
    scratch.give_back();
    result
}

/// Entries and items of the objects and lists still open, innermost last. Kept per thread between
/// calls, so a warmed-up reader allocates nothing but the values themselves.
#[derive(Default)]
struct Scratch {
    entries: Vec<(String, Value)>,
    items: Vec<Value>,
}

thread_local! {
    static SCRATCH: Cell<Option<Box<Scratch>>> = const { Cell::new(None) };
}

impl Scratch {
    fn take() -> Box<Scratch> {
        SCRATCH.with(Cell::take).unwrap_or_default()
    }

    fn give_back(mut self: Box<Scratch>) {
        // After an error, what was gathered is dropped here; a huge document's room is not kept.
        self.entries.clear();
        self.items.clear();
        if self.entries.capacity() <= 4096 && self.items.capacity() <= 65536 {
            SCRATCH.with(|s| s.set(Some(self)));
        }
    }
}

struct Seed<'s>(&'s mut Scratch);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
        Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value, E> {
        Ok(Value::String(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Value, E> {
        Ok(Value::String(s))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.items.len();
        while let Some(v) = seq.next_element_seed(Seed(scratch))? {
            scratch.items.push(v);
        }
        Ok(Value::Array(scratch.items.drain(start..).collect()))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let scratch = self.0;
        let start = scratch.entries.len();
        while let Some(k) = map.next_key::<String>()? {
            let v = map.next_value_seed(Seed(scratch))?;
            scratch.entries.push((k, v));
        }
        let mut m = Map::with_capacity(scratch.entries.len() - start);
        m.extend(scratch.entries.drain(start..));
        Ok(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_serde_json_reads() {
        let texts = [
            r#"{"a": 1, "b": [1, 2.5, -3, "x", null, true, {}], "c": {"d": {"e": []}}}"#,
            r#"{"dup": 1, "other": 2, "dup": 3}"#,
            r#"[{"k": "\u00e6\n"}, 18446744073709551615, -9223372036854775808, 1.5e300]"#,
            r#"  "text"  "#,
            "0.1",
            "{}",
            "[]",
        ];
        for t in texts {
            let ours = parse(t).expect(t);
            let theirs: Value = serde_json::from_str(t).expect(t);
            assert_eq!(ours, theirs, "{t}");
            let keys = |v: &Value| v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>());
            assert_eq!(keys(&ours), keys(&theirs), "key order of {t}");
        }
    }

    #[test]
    fn fails_where_serde_json_fails_and_keeps_working() {
        for t in [
            r#"{"a": [1, 2"#,
            r#"{"a": 1} x"#,
            "",
            r#"{"a" 1}"#,
            "[1,]",
            "1e400",
        ] {
            let ours = parse(t).expect_err(t).to_string();
            let theirs = serde_json::from_str::<Value>(t).expect_err(t).to_string();
            assert_eq!(ours, theirs, "{t}");
        }
        // What the failed reads left on the scratch stack is not part of the next value.
        assert_eq!(
            parse(r#"{"b": [3]}"#).ok(),
            Some(serde_json::json!({"b": [3]}))
        );
    }
}
