//! What templates see: JSON documents shared without copying (paths into them, and minijinja
//! views over them), the variables in scope at one point of a mapping, and the record's runtime
//! that `ref()` and `lookup()` reach.

use std::borrow::Cow;
use std::sync::{Arc, LazyLock, Mutex};

use minijinja::value::{Object, Value as MjValue};
use serde_json::Value;

use super::value::{Step, field, number, same};

/// What templates reach through `ref()` and `lookup()`: the bindings and API tables, resolved by
/// the engine (or given as fixtures in tests).
pub trait Resolver: Send + Sync {
    /// The target id bound to `entity` `key`, or `None` when that record has not been synced yet.
    fn reference(&self, entity: &str, key: &str) -> Option<Value>;
    /// The value of an API lookup table at `key`; `None` when the key is absent.
    fn lookup(&self, table: &str, key: &str) -> Option<Value>;
    /// For `bound()`: `Some(Some({ id, body }))` for a bound record, `Some(None)` for one known
    /// not to be bound, `None` when the resolver has not looked yet (the runtime reads the
    /// binding and renders again). By default a resolver knows: what `reference` gives is the id.
    fn bound(&self, entity: &str, key: &str) -> Option<Option<Value>> {
        Some(
            self.reference(entity, key)
                .map(|id| serde_json::json!({ "id": id })),
        )
    }
}

/// A static lookup table compiled from the mapping.
#[derive(Debug, Clone)]
pub struct StaticTable {
    /// In the mapping's order; small tables are searched in order, large ones by hash.
    pub entries: indexmap::IndexMap<String, Value>,
    pub default: Option<Value>,
}

/// Per-record state the template functions reach through the context.
pub struct RecordRt {
    pub resolver: Arc<dyn Resolver>,
    pub statics: Arc<Vec<(String, StaticTable)>>,
    /// References that were asked for but are not bound yet: the engine syncs them first.
    pub missing: Mutex<Vec<(String, String)>>,
    /// Bindings `bound()` asked for that the resolver has not looked up yet.
    pub unlooked: Mutex<Vec<(String, String)>>,
}

impl std::fmt::Debug for RecordRt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordRt")
    }
}

impl Object for RecordRt {}

impl RecordRt {
    /// Notes a reference that is not bound yet, once, so one pass finds every record that must
    /// be synced first.
    pub(crate) fn note_missing(&self, entity: &str, key: String) {
        if let Ok(mut m) = self.missing.lock() {
            let dep = (entity.to_string(), key);
            if !m.contains(&dep) {
                m.push(dep);
            }
        }
    }

    /// Notes a binding `bound()` needs read, once.
    pub(crate) fn note_unlooked(&self, entity: &str, key: String) {
        if let Ok(mut m) = self.unlooked.lock() {
            let b = (entity.to_string(), key);
            if !m.contains(&b) {
                m.push(b);
            }
        }
    }

    /// The bindings noted by [`Self::note_unlooked`].
    pub fn unlooked(&self) -> Vec<(String, String)> {
        self.unlooked.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The name the record's runtime has in a template context.
pub(crate) const RT: &str = "__rbtx_rt";

/// The value of lookup `table` at `key`: the mapping's static tables first (borrowed from the
/// plan), then the API ones.
pub fn lookup_in<'r>(rt: &'r RecordRt, table: &str, k: &str) -> Result<Cow<'r, Value>, String> {
    if let Some((_, t)) = rt.statics.iter().find(|(name, _)| same(name, table)) {
        // Most tables are a handful of entries: comparing them costs less than hashing `k`.
        let hit = if t.entries.len() <= 16 {
            t.entries.iter().find(|(e, _)| same(e, k)).map(|(_, v)| v)
        } else {
            t.entries.get(k)
        };
        return hit
            .or(t.default.as_ref())
            .map(Cow::Borrowed)
            .ok_or_else(|| format!("lookup `{table}` has no entry for `{k}` and no default"));
    }
    rt.resolver
        .lookup(table, k)
        .map(Cow::Owned)
        .ok_or_else(|| format!("lookup `{table}` has no entry for `{k}`"))
}

/// A path from a document's root, shared between siblings: each step is one node.
#[derive(Debug)]
pub struct PathNode {
    parent: Path,
    step: Step,
}

pub type Path = Option<Arc<PathNode>>;

fn extend(path: &Path, step: Step) -> Path {
    Some(Arc::new(PathNode {
        parent: path.clone(),
        step,
    }))
}

fn resolve<'v>(root: &'v Value, path: &Path) -> &'v Value {
    match path {
        None => root,
        Some(n) => match (&n.step, resolve(root, &n.parent)) {
            (Step::Key(k), Value::Object(m)) => field(m, k).unwrap_or(&Value::Null),
            (Step::Index(i), Value::Array(a)) => a.get(*i).unwrap_or(&Value::Null),
            _ => &Value::Null,
        },
    }
}

/// A JSON value in scope: the shared document it belongs to, and where in it.
#[derive(Clone)]
pub struct Var<'a> {
    pub value: &'a Value,
    root: &'a Arc<Value>,
    path: Path,
}

static NULL_ROOT: LazyLock<Arc<Value>> = LazyLock::new(|| Arc::new(Value::Null));

/// A shared null document, for a variable that has no value (no target yet), without allocating.
pub fn null_root() -> &'static Arc<Value> {
    &NULL_ROOT
}

impl<'a> Var<'a> {
    /// A whole document.
    pub fn root(root: &'a Arc<Value>) -> Var<'a> {
        Var {
            value: root,
            root,
            path: None,
        }
    }

    /// A scalar that belongs to no document (a loop index).
    pub fn scalar(value: &'a Value) -> Var<'a> {
        Var {
            value,
            root: &NULL_ROOT,
            path: None,
        }
    }

    /// A value inside this one, `steps` below it.
    pub fn child(&self, value: &'a Value, steps: impl IntoIterator<Item = Step>) -> Var<'a> {
        let mut path = self.path.clone();
        for s in steps {
            path = extend(&path, s);
        }
        Var {
            value,
            root: self.root,
            path,
        }
    }

    fn view(&self) -> MjValue {
        view(self.value, self.root, &self.path)
    }
}

/// A JSON object or array seen from templates without copying it: the document is shared, and
/// attribute access walks `path` from its root.
#[derive(Debug)]
struct JsonView {
    root: Arc<Value>,
    path: Path,
}

impl JsonView {
    fn node(&self) -> &Value {
        resolve(&self.root, &self.path)
    }
}

/// A JSON value as a template value: scalars directly (whole floats as integers, since JSON does
/// not tell 25 from 25.0), objects and arrays as views.
fn view(v: &Value, root: &Arc<Value>, path: &Path) -> MjValue {
    match v {
        Value::Null => MjValue::from(()),
        Value::Bool(b) => MjValue::from(*b),
        Value::Number(n) => number(n),
        Value::String(s) => MjValue::from(s.as_str()),
        Value::Object(_) | Value::Array(_) => MjValue::from_object(JsonView {
            root: root.clone(),
            path: path.clone(),
        }),
    }
}

impl Object for JsonView {
    fn repr(self: &Arc<Self>) -> minijinja::value::ObjectRepr {
        match self.node() {
            Value::Array(_) => minijinja::value::ObjectRepr::Seq,
            _ => minijinja::value::ObjectRepr::Map,
        }
    }

    fn get_value(self: &Arc<Self>, key: &MjValue) -> Option<MjValue> {
        let (step, child) = match self.node() {
            Value::Object(m) => {
                let k = key.as_str()?;
                (Step::Key(k.to_string()), field(m, k)?)
            }
            Value::Array(a) => {
                let i = key.as_i64()?;
                let i = if i < 0 {
                    a.len().checked_sub(i.unsigned_abs() as usize)?
                } else {
                    i as usize
                };
                (Step::Index(i), a.get(i)?)
            }
            _ => return None,
        };
        if child.is_object() || child.is_array() {
            return Some(MjValue::from_object(JsonView {
                root: self.root.clone(),
                path: extend(&self.path, step),
            }));
        }
        Some(view(child, &self.root, &self.path))
    }

    fn enumerate(self: &Arc<Self>) -> minijinja::value::Enumerator {
        match self.node() {
            Value::Object(m) => minijinja::value::Enumerator::Values(
                m.keys().map(|k| MjValue::from(k.as_str())).collect(),
            ),
            Value::Array(a) => minijinja::value::Enumerator::Seq(a.len()),
            _ => minijinja::value::Enumerator::Empty,
        }
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        match self.node() {
            Value::Object(m) => Some(m.len()),
            Value::Array(a) => Some(a.len()),
            _ => Some(0),
        }
    }
}

/// `$['lines'][0]` (a normalized path) → steps. Unknown syntax gives no steps for that part.
pub(crate) fn parse_normalized_path(p: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut chars = p.trim_start_matches('$').chars().peekable();
    while let Some(c) = chars.next() {
        if c != '[' {
            continue;
        }
        if chars.peek() == Some(&'\'') {
            chars.next();
            let mut name = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\'' => break,
                    '\\' => match chars.next() {
                        Some('b') => name.push('\u{8}'),
                        Some('f') => name.push('\u{c}'),
                        Some('n') => name.push('\n'),
                        Some('r') => name.push('\r'),
                        Some('t') => name.push('\t'),
                        Some('u') => {
                            let hex: String = chars.by_ref().take(4).collect();
                            if let Some(ch) =
                                u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32)
                            {
                                name.push(ch);
                            }
                        }
                        Some(other) => name.push(other),
                        None => {}
                    },
                    other => name.push(other),
                }
            }
            steps.push(Step::Key(name));
        } else {
            let digits: String = chars.by_ref().take_while(|c| *c != ']').collect();
            if let Ok(i) = digits.parse() {
                steps.push(Step::Index(i));
            }
            continue;
        }
        // Skip to the closing bracket.
        for c in chars.by_ref() {
            if c == ']' {
                break;
            }
        }
    }
    steps
}

/// The variables of one evaluation, plus the record's runtime. One scope serves every field at one
/// level (the record, or one loop item), so its template context is built once.
pub struct Scope<'a> {
    vars: &'a [(&'a str, Var<'a>)],
    parent: Option<&'a Scope<'a>>,
    rt: &'a Arc<RecordRt>,
    ctx: std::sync::OnceLock<MjValue>,
    /// The enclosing loop's values that are the same for every item (see `Fast::Memo`).
    memo: &'a [Memo],
}

/// One loop-invariant value, computed once per loop; `None` inside is an undefined value.
pub type Memo = std::cell::OnceCell<Option<Value>>;

impl<'a> Scope<'a> {
    pub fn new(vars: &'a [(&'a str, Var<'a>)], rt: &'a Arc<RecordRt>) -> Scope<'a> {
        Scope {
            vars,
            parent: None,
            rt,
            ctx: std::sync::OnceLock::new(),
            memo: &[],
        }
    }

    /// This scope plus more variables (a loop item), with that loop's memo.
    pub fn with<'b>(&'b self, extra: &'b [(&'b str, Var<'b>)], memo: &'b [Memo]) -> Scope<'b> {
        Scope {
            vars: extra,
            parent: Some(self),
            rt: self.rt,
            ctx: std::sync::OnceLock::new(),
            memo,
        }
    }

    pub fn rt(&self) -> &'a Arc<RecordRt> {
        self.rt
    }

    pub(crate) fn memo(&self, slot: usize) -> Option<&'a Memo> {
        self.memo.get(slot)
    }

    pub fn var(&self, name: &str) -> Option<&Var<'a>> {
        match self.vars.iter().rev().find(|(n, _)| same(n, name)) {
            Some((_, v)) => Some(v),
            None => self.parent?.var(name),
        }
    }

    fn all_vars(&self, out: &mut std::collections::BTreeMap<&'a str, MjValue>) {
        if let Some(p) = self.parent {
            p.all_vars(out);
        }
        for (n, v) in self.vars {
            out.insert(n, v.view());
        }
    }

    pub(crate) fn context(&self) -> MjValue {
        self.ctx
            .get_or_init(|| {
                let mut m = std::collections::BTreeMap::new();
                self.all_vars(&mut m);
                m.insert(RT, MjValue::from_dyn_object(self.rt.clone()));
                MjValue::from(m)
            })
            .clone()
    }
}

/// The value at `var` and `steps` below it; `None` when it is not there.
pub(crate) fn lookup_path<'a>(scope: &Scope<'a>, var: &str, steps: &[Step]) -> Option<&'a Value> {
    let mut cur: &'a Value = scope.var(var)?.value;
    for s in steps {
        cur = match (s, cur) {
            (Step::Key(k), Value::Object(m)) => field(m, k)?,
            (Step::Index(i), Value::Array(a)) => a.get(*i)?,
            _ => return None,
        };
    }
    Some(cur)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_paths_parse() {
        let steps = parse_normalized_path("$['lines'][12]['it\\'s']");
        assert!(
            matches!(&steps[..], [Step::Key(a), Step::Index(12), Step::Key(b)] if a == "lines" && b == "it's")
        );
    }
}
