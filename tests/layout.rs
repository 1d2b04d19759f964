//! The layout rules of ARCHITECTURE.md ("Cross-cutting rules"), checked on the source itself:
//! imports between files of a crate run one way (no cycle), `src/main.rs` stays a thin CLI, and no
//! file outside the sandboxes grows past what one can read in a sitting.
//!
//! File A imports file B when A names an item defined in B, through `use` or a path. `mod b;` is
//! not an import, and a `pub use` that only forwards is followed to the file that defines the item.
//! The reading is lexical (comments and strings stripped, paths resolved against the module tree),
//! which is all this needs: the code is ours and `cargo fmt`-formatted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

const MAX_LINES: usize = 900;
const MAX_MAIN_LINES: usize = 250;

#[test]
fn imports_between_files_run_one_way() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for krate in crates(root) {
        problems.extend(krate.cycles());
    }
    assert!(
        problems.is_empty(),
        "import cycles between files:\n{}",
        problems.join("\n")
    );
}

#[test]
fn files_stay_readable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut problems = Vec::new();
    for krate in crates(root) {
        for file in &krate.files {
            let rel = rel(root, &file.path);
            let lines = file.text.lines().count();
            let sandbox = rel.starts_with("crates/sandbox/") || rel.starts_with("src/sandbox/");
            if rel == "src/main.rs" && lines >= MAX_MAIN_LINES {
                problems.push(format!(
                    "{rel}: {lines} lines; the CLI's entry point stays under {MAX_MAIN_LINES} (subcommands live in src/cli/)"
                ));
            } else if !sandbox && lines > MAX_LINES {
                problems.push(format!(
                    "{rel}: {lines} lines, over {MAX_LINES}: split it by job"
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The checker itself: a cycle through a `use`, through a path in code, and through a re-export
/// is found; a parent declaring its children and forwarding their items is not a cycle.
#[test]
fn the_checker_finds_cycles_and_only_cycles() {
    let dir = std::env::temp_dir().join(format!("rbtx-layout-{}", std::process::id()));
    let write = |path: &str, text: &str| {
        let p = dir.join(path);
        fs::create_dir_all(p.parent().expect("a parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    };
    let _ = fs::remove_dir_all(&dir);
    write(
        "src/lib.rs",
        "pub mod a;\npub mod b;\npub mod c;\npub use c::Shared;\n",
    );
    write(
        "src/a/mod.rs",
        "mod inner;\npub use inner::Inner;\npub fn top() -> Inner { inner::make() }\n",
    );
    write(
        "src/a/inner.rs",
        "pub struct Inner;\npub fn make() -> Inner { Inner }\n",
    );
    write(
        "src/b.rs",
        "use crate::a::Inner;\n// crate::c::never, in a comment\npub fn b() -> Inner { crate::a::top() }\n",
    );
    write(
        "src/c.rs",
        "pub struct Shared;\npub fn c() { let _ = \"crate::b::b\"; }\n",
    );
    let clean = Crate::read(&dir.join("src"), "lib.rs", None);
    assert_eq!(clean.cycles(), Vec::<String>::new());

    // b → a (a use through a forward, and a path); now a → b through a path in code as well.
    write(
        "src/a/inner.rs",
        "pub struct Inner;\npub fn make() -> Inner { let _ = crate::b::b; Inner }\n",
    );
    let cyclic = Crate::read(&dir.join("src"), "lib.rs", None);
    let found = cyclic.cycles();
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("src/a/inner.rs → src/b.rs")
            && found[0].contains("src/b.rs → src/a/inner.rs"),
        "{}",
        found[0]
    );
    let _ = fs::remove_dir_all(&dir);
}

fn rel(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// The crates of the workspace: rbtx's library and binary, and each crate under `crates/`.
fn crates(root: &Path) -> Vec<Crate> {
    let lib = Crate::read(&root.join("src"), "lib.rs", None);
    let bin = Crate::read(&root.join("src"), "main.rs", Some(("rbtx", &lib)));
    let mut all = vec![bin];
    if let Ok(entries) = fs::read_dir(root.join("crates")) {
        let mut dirs: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        dirs.sort();
        for d in dirs {
            if d.join("src/lib.rs").exists() {
                all.push(Crate::read(&d.join("src"), "lib.rs", None));
            }
        }
    }
    all.insert(0, lib);
    all
}

struct File {
    path: PathBuf,
    /// The module path from the crate root (`["plan", "compile"]`).
    module: Vec<String>,
    text: String,
    /// The text with comments, strings and `#[cfg(test)]` modules blanked out.
    code: String,
}

struct Crate {
    /// The folder holding `src/`, which paths in messages are relative to.
    base: PathBuf,
    files: Vec<File>,
    by_module: HashMap<Vec<String>, usize>,
    /// Items each file defines, and the names it forwards with `pub use` (name → path).
    defines: Vec<BTreeSet<String>>,
    forwards: Vec<Vec<(String, Vec<String>)>>,
    /// Another crate reached under a name (the binary's `rbtx::`), resolved there, not edged.
    extern_name: Option<String>,
}

impl Crate {
    fn read(src: &Path, root_file: &str, other: Option<(&str, &Crate)>) -> Crate {
        let mut files = Vec::new();
        let mut pending = vec![(src.join(root_file), Vec::<String>::new())];
        while let Some((path, module)) = pending.pop() {
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let code = strip(&text);
            let dir = if module.is_empty() || path.ends_with("mod.rs") {
                path.parent().map(Path::to_path_buf).unwrap_or_default()
            } else {
                path.with_extension("")
            };
            for child in declared_modules(&code) {
                let mut m = module.clone();
                m.push(child.clone());
                let flat = dir.join(format!("{child}.rs"));
                let nested = dir.join(&child).join("mod.rs");
                pending.push((if flat.exists() { flat } else { nested }, m));
            }
            files.push(File {
                path,
                module,
                text,
                code,
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        let by_module = files
            .iter()
            .enumerate()
            .map(|(i, f)| (f.module.clone(), i))
            .collect();
        let defines = files.iter().map(|f| defined_items(&f.code)).collect();
        let forwards = files
            .iter()
            .map(|f| {
                use_trees(&f.code)
                    .into_iter()
                    .filter(|u| u.public)
                    .map(|u| (u.name, u.path))
                    .collect()
            })
            .collect();
        Crate {
            base: src.parent().map(Path::to_path_buf).unwrap_or_default(),
            files,
            by_module,
            defines,
            forwards,
            extern_name: other.map(|(name, _)| name.to_string()),
        }
    }

    /// Every strongly connected group of files, with the edges that join them.
    fn cycles(&self) -> Vec<String> {
        let edges = self.edges();
        let mut graph: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
        for (from, to, _) in &edges {
            graph.entry(*from).or_default().insert(*to);
        }
        let root = &self.base;
        let mut out = Vec::new();
        for group in scc(self.files.len(), &graph) {
            if group.len() < 2 {
                continue;
            }
            let mut lines = vec![format!(
                "files {} import each other:",
                group
                    .iter()
                    .map(|&i| rel(root, &self.files[i].path))
                    .collect::<Vec<_>>()
                    .join(", ")
            )];
            for (from, to, via) in &edges {
                if group.contains(from) && group.contains(to) {
                    lines.push(format!(
                        "  {} → {} ({via})",
                        rel(root, &self.files[*from].path),
                        rel(root, &self.files[*to].path)
                    ));
                }
            }
            out.push(lines.join("\n"));
        }
        out
    }

    /// (importing file, defining file, the path that names it), self-edges left out.
    fn edges(&self) -> Vec<(usize, usize, String)> {
        let mut out = BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            let children: BTreeSet<String> = declared_modules(&file.code).into_iter().collect();
            let mut aliases: HashMap<String, Vec<String>> = HashMap::new();
            for u in use_trees(&file.code) {
                let Some(abs) = self.absolute(&file.module, &children, &u.path) else {
                    continue;
                };
                // A `pub use` forwards; the files that use it get the edge instead.
                if !u.public
                    && let Some(target) = self.resolve(&abs, 0)
                {
                    out.insert((i, target, u.path.join("::")));
                }
                if u.name != "*" && self.by_module.contains_key(&abs) {
                    aliases.insert(u.name, abs);
                }
            }
            for path in code_paths(&file.code) {
                let abs = match aliases.get(&path[0]) {
                    Some(module) => module.iter().cloned().chain(path[1..].to_vec()).collect(),
                    None => match self.absolute(&file.module, &children, &path) {
                        Some(abs) => abs,
                        None => continue,
                    },
                };
                if let Some(target) = self.resolve(&abs, 0) {
                    out.insert((i, target, path.join("::")));
                }
            }
        }
        out.into_iter().filter(|(a, b, _)| a != b).collect()
    }

    /// A path as written in a file, made absolute from the crate root; `None` for other crates.
    fn absolute(
        &self,
        module: &[String],
        children: &BTreeSet<String>,
        path: &[String],
    ) -> Option<Vec<String>> {
        let first = path.first()?;
        let mut base: Vec<String> = match first.as_str() {
            "crate" => vec![],
            "self" => module.to_vec(),
            "super" => {
                let mut m = module.to_vec();
                let mut rest = path;
                while rest.first().map(String::as_str) == Some("super") {
                    m.pop()?;
                    rest = &rest[1..];
                }
                m.extend(rest.iter().cloned());
                return Some(m);
            }
            c if children.contains(c) => {
                let mut m = module.to_vec();
                m.extend(path.iter().cloned());
                return Some(m);
            }
            c if Some(c) == self.extern_name.as_deref() => return None,
            _ => return None,
        };
        base.extend(path[1..].iter().cloned());
        Some(base)
    }

    /// The file that defines what an absolute path names, following forwarding `pub use`s.
    fn resolve(&self, path: &[String], depth: usize) -> Option<usize> {
        if depth > 16 {
            return None;
        }
        // The deepest module the path walks through.
        let mut module_len = 0;
        while module_len < path.len() && self.by_module.contains_key(&path[..=module_len]) {
            module_len += 1;
        }
        let file = *self.by_module.get(&path[..module_len])?;
        let Some(item) = path.get(module_len) else {
            return Some(file);
        };
        if item == "*" || self.defines[file].contains(item) {
            return Some(file);
        }
        let module = &self.files[file].module;
        let children: BTreeSet<String> = declared_modules(&self.files[file].code)
            .into_iter()
            .collect();
        for (name, target) in &self.forwards[file] {
            if name == item || name == "*" {
                let Some(abs) = self.absolute(module, &children, target) else {
                    // Forwarded from another crate: nothing of ours.
                    if name == item {
                        return None;
                    }
                    continue;
                };
                let mut full = abs.clone();
                if name == "*" {
                    full.push(item.clone());
                }
                full.extend(path[module_len + 1..].iter().cloned());
                if let Some(found) = self.resolve(&full, depth + 1) {
                    return Some(found);
                }
            }
        }
        // An item the reader did not recognise (a macro, a variant): the module's file.
        Some(file)
    }
}

/// Tarjan's strongly connected components.
fn scc(n: usize, graph: &BTreeMap<usize, BTreeSet<usize>>) -> Vec<Vec<usize>> {
    struct State<'a> {
        graph: &'a BTreeMap<usize, BTreeSet<usize>>,
        index: Vec<Option<usize>>,
        low: Vec<usize>,
        on_stack: Vec<bool>,
        stack: Vec<usize>,
        next: usize,
        out: Vec<Vec<usize>>,
    }
    fn visit(s: &mut State<'_>, v: usize) {
        s.index[v] = Some(s.next);
        s.low[v] = s.next;
        s.next += 1;
        s.stack.push(v);
        s.on_stack[v] = true;
        let succ: Vec<usize> = s
            .graph
            .get(&v)
            .map(|e| e.iter().copied().collect())
            .unwrap_or_default();
        for w in succ {
            match s.index[w] {
                None => {
                    visit(s, w);
                    s.low[v] = s.low[v].min(s.low[w]);
                }
                Some(iw) if s.on_stack[w] => s.low[v] = s.low[v].min(iw),
                Some(_) => {}
            }
        }
        if Some(s.low[v]) == s.index[v] {
            let mut group = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack[w] = false;
                group.push(w);
                if w == v {
                    break;
                }
            }
            group.sort();
            s.out.push(group);
        }
    }
    let mut s = State {
        graph,
        index: vec![None; n],
        low: vec![0; n],
        on_stack: vec![false; n],
        stack: Vec::new(),
        next: 0,
        out: Vec::new(),
    };
    for v in 0..n {
        if s.index[v].is_none() {
            visit(&mut s, v);
        }
    }
    s.out
}

/// The text with comments and string/char literals replaced by spaces (lines kept), and the
/// bodies of `#[cfg(test)]` modules blanked: a file's tests may reach anywhere.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    let blank = |out: &mut Vec<u8>, c: u8| out.push(if c == b'\n' { b'\n' } else { b' ' });
    while i < b.len() {
        let c = b[i];
        if c == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'/' && b.get(i + 1) == Some(&b'*') {
            let mut depth = 0;
            while i < b.len() {
                if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    out.extend(b"  ");
                    i += 2;
                } else if b[i] == b'*' && b.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    out.extend(b"  ");
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
        } else if c == b'r'
            && (b.get(i + 1) == Some(&b'"') || b.get(i + 1) == Some(&b'#'))
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
        {
            let mut j = i + 1;
            let mut hashes = 0;
            while b.get(j) == Some(&b'#') {
                hashes += 1;
                j += 1;
            }
            if b.get(j) != Some(&b'"') {
                out.push(c);
                i += 1;
                continue;
            }
            let end: Vec<u8> = std::iter::once(b'"')
                .chain(std::iter::repeat_n(b'#', hashes))
                .collect();
            let mut k = j + 1;
            while k < b.len() && !b[k..].starts_with(&end) {
                k += 1;
            }
            let stop = (k + end.len()).min(b.len());
            for &x in &b[i..stop] {
                blank(&mut out, x);
            }
            i = stop;
        } else if c == b'"' {
            blank(&mut out, c);
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    blank(&mut out, b[i]);
                    i += 1;
                }
                if i < b.len() {
                    blank(&mut out, b[i]);
                    i += 1;
                }
            }
            if i < b.len() {
                blank(&mut out, b[i]);
                i += 1;
            }
        } else if c == b'\'' {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime ('a).
            let close = if b.get(i + 1) == Some(&b'\\') {
                (i + 2..b.len().min(i + 12)).find(|&k| b[k] == b'\'')
            } else if b.get(i + 2) == Some(&b'\'') {
                Some(i + 2)
            } else {
                std::str::from_utf8(&b[i + 1..])
                    .ok()
                    .and_then(|s| s.chars().next())
                    .filter(|ch| ch.len_utf8() > 1)
                    .and_then(|ch| {
                        (b.get(i + 1 + ch.len_utf8()) == Some(&b'\''))
                            .then_some(i + 1 + ch.len_utf8())
                    })
            };
            match close {
                Some(k) => {
                    for &x in &b[i..=k] {
                        blank(&mut out, x);
                    }
                    i = k + 1;
                }
                None => {
                    out.push(c);
                    i += 1;
                }
            }
        } else {
            out.push(c);
            i += 1;
        }
    }
    let code = String::from_utf8_lossy(&out).into_owned();
    blank_test_modules(&code)
}

fn blank_test_modules(code: &str) -> String {
    let mut out = code.to_string();
    let mut from = 0;
    while let Some(at) = out[from..].find("#[cfg(test)]") {
        let start = from + at;
        let after = &out[start..];
        let Some(open_rel) = after.find(['{', ';']) else {
            break;
        };
        let header = &after[..open_rel];
        if !header.contains("mod ") || after.as_bytes()[open_rel] == b';' {
            from = start + 1;
            continue;
        }
        let open = start + open_rel;
        let mut depth = 0;
        let mut end = out.len();
        for (k, ch) in out[open..].char_indices() {
            match ch {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + k + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        let blanked: String = out[start..end]
            .chars()
            .map(|ch| if ch == '\n' { '\n' } else { ' ' })
            .collect();
        out.replace_range(start..end, &blanked);
        from = start + blanked.len();
    }
    out
}

fn words(code: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let b = code.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_alphanumeric() || b[i] == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push(&code[s..i]);
        } else if b[i].is_ascii_whitespace() {
            i += 1;
        } else if code[i..].starts_with("::") {
            out.push("::");
            i += 2;
        } else {
            let ch_len = code[i..].chars().next().map_or(1, char::len_utf8);
            out.push(&code[i..i + ch_len]);
            i += ch_len;
        }
    }
    out
}

/// `mod name;` declarations (not inline modules, which are part of the file).
fn declared_modules(code: &str) -> Vec<String> {
    let w = words(code);
    let mut out = Vec::new();
    for k in 0..w.len() {
        if w[k] == "mod"
            && w.get(k + 2) == Some(&";")
            && let Some(name) = w.get(k + 1)
        {
            out.push(name.to_string());
        }
    }
    out
}

/// Items a file defines at any depth outside its test module (inline modules count as the file's).
fn defined_items(code: &str) -> BTreeSet<String> {
    let w = words(code);
    let mut out = BTreeSet::new();
    for k in 0..w.len() {
        let kind = w[k];
        let is_item = matches!(
            kind,
            "fn" | "struct" | "enum" | "trait" | "type" | "const" | "static" | "union"
        ) || (kind == "mod" && w.get(k + 2) == Some(&"{"));
        if is_item
            && let Some(name) = w.get(k + 1)
            && name
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        {
            out.insert(name.to_string());
        }
        if kind == "macro_rules"
            && w.get(k + 1) == Some(&"!")
            && let Some(name) = w.get(k + 2)
        {
            out.insert(name.to_string());
        }
    }
    out
}

struct Use {
    /// The name it brings into scope (`*` for a glob).
    name: String,
    path: Vec<String>,
    /// `pub use` (or `pub(crate) use`): reachable by other files through this one.
    public: bool,
}

/// What a file's `use` declarations bring in.
fn use_trees(code: &str) -> Vec<Use> {
    let w = words(code);
    let mut out = Vec::new();
    let mut k = 0;
    while k < w.len() {
        if w[k] == "use" && (k == 0 || !matches!(w[k - 1], "::" | "." | "_")) {
            let public = k > 0 && (w[k - 1] == "pub" || w[k - 1] == ")");
            let end = (k..w.len()).find(|&j| w[j] == ";").unwrap_or(w.len());
            let mut names = Vec::new();
            expand(&w[k + 1..end], &[], &mut names);
            out.extend(
                names
                    .into_iter()
                    .map(|(name, path)| Use { name, path, public }),
            );
            k = end;
        }
        k += 1;
    }
    out
}

fn expand(tokens: &[&str], prefix: &[String], out: &mut Vec<(String, Vec<String>)>) {
    // Split at top-level commas.
    let mut depth = 0;
    let mut start = 0;
    let mut parts = Vec::new();
    for (j, t) in tokens.iter().enumerate() {
        match *t {
            "{" => depth += 1,
            "}" => depth -= 1,
            "," if depth == 0 => {
                parts.push(&tokens[start..j]);
                start = j + 1;
            }
            _ => {}
        }
    }
    parts.push(&tokens[start..]);
    for part in parts {
        if part.is_empty() {
            continue;
        }
        let mut path = prefix.to_vec();
        let mut j = 0;
        while j < part.len() {
            match part[j] {
                "::" => {}
                "{" => {
                    let inner = &part[j + 1..part.len().saturating_sub(1)];
                    expand(inner, &path, out);
                    path.clear();
                    break;
                }
                "as" => {
                    if let Some(alias) = part.get(j + 1)
                        && !path.is_empty()
                    {
                        out.push((alias.to_string(), path.clone()));
                    }
                    path.clear();
                    break;
                }
                "*" => {
                    out.push(("*".into(), path.clone()));
                    path.clear();
                    break;
                }
                t => path.push(t.to_string()),
            }
            j += 1;
        }
        if let Some(last) = path.last().cloned() {
            if last == "self" {
                path.pop();
                if let Some(name) = path.last().cloned() {
                    out.push((name, path));
                }
            } else {
                out.push((last, path));
            }
        }
    }
}

/// Paths in code (outside `use`): `a::b::c` sequences; the first segment decides whether they
/// are ours (`crate`, `self`, `super`, a child module or a module imported by `use`).
fn code_paths(code: &str) -> Vec<Vec<String>> {
    let w = words(code);
    let mut out = Vec::new();
    let mut k = 0;
    while k < w.len() {
        if w[k] == "use" {
            k = (k..w.len()).find(|&j| w[j] == ";").unwrap_or(w.len()) + 1;
            continue;
        }
        let ident = |t: &str| {
            t.chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
        };
        if ident(w[k]) && w.get(k + 1) == Some(&"::") && (k == 0 || w[k - 1] != "::") {
            let mut path = vec![w[k].to_string()];
            let mut j = k + 1;
            while w.get(j) == Some(&"::") && w.get(j + 1).is_some_and(|t| ident(t)) {
                path.push(w[j + 1].to_string());
                j += 2;
            }
            if path.len() > 1 {
                out.push(path);
            }
            k = j;
            continue;
        }
        k += 1;
    }
    out
}
