//! The repository's own rules, checked from its files: no file of a crate
//! imports a file that imports it back (directly or round a longer loop),
//! every public module of the facade is in `src/lib.rs`'s list, and the
//! counts of chapters and crates that the README and the docs give are the
//! tree's.
//!
//! The import graph is read from the source text, not from the compiler:
//! every path that starts with `crate::` or `super::` (in `use` lines and
//! in code, outside comments) is an edge from the file it is written in to
//! the file of the module it names (`crate::kernel::build` names
//! `kernel.rs`, `use super::{arrays, cifar}` names two files). A folder's
//! index (`lib.rs`, `main.rs`, `mod.rs`) declares its files and re-exports
//! the crate's vocabulary (`crate::Tensor`, `crate::Error`, `super::Conv`):
//! a path through it is an edge to the index, which points at no file in
//! turn, since an index names its children by nature. So a type that two
//! files share is reached by the name the crate gives it, and a file that
//! reaches into a sibling's module does so in one direction only.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `.rs` files below `dir`, as paths relative to it.
fn rust_files(dir: &Path, rel: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir.join(rel)) else { return };
    for entry in entries.flatten() {
        let name = PathBuf::from(entry.file_name());
        let path = rel.join(&name);
        if entry.path().is_dir() {
            rust_files(dir, &path, out);
        } else if name.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// A file's module path from the crate's source root, and whether the
/// file is a folder's index.
fn module_of(rel: &Path) -> (Vec<String>, bool) {
    let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let file = parts.pop().expect("a file name");
    let stem = file.trim_end_matches(".rs");
    let index = matches!(stem, "lib" | "main" | "mod");
    if !index {
        parts.push(stem.to_string());
    }
    (parts, index)
}

/// The text with comments (line and block, doc comments included) and
/// string literals blanked, so that only code remains.
fn code_only(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let mut depth = 0;
            while i < b.len() {
                if b[i..].starts_with(b"/*") {
                    depth += 1;
                    i += 2;
                } else if b[i..].starts_with(b"*/") {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A character literal ('"', '\''), not a lifetime.
            i += 2;
            while i < b.len() && b[i] != b'\'' {
                i += 1;
            }
            i += 1;
            out.push_str("' '");
        } else {
            let c = text[i..].chars().next().expect("in bounds");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// The paths written from `start` on: `a::b::c`, or a group
/// `a::{b, c::d}` as one path per member.
fn paths_at(text: &str, start: usize) -> Vec<Vec<String>> {
    let mut segs = Vec::new();
    let mut rest = &text[start..];
    loop {
        let n = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if n == 0 {
            break;
        }
        segs.push(rest[..n].to_string());
        rest = &rest[n..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r.trim_start(),
            None => break,
        }
    }
    let Some(group) = rest.strip_prefix('{') else { return vec![segs] };
    let mut depth = 1;
    let end = group
        .char_indices()
        .find(|&(_, c)| {
            depth += match c {
                '{' => 1,
                '}' => -1,
                _ => 0,
            };
            depth == 0
        })
        .map_or(group.len(), |(i, _)| i);
    let mut out = Vec::new();
    let mut member_start = 0;
    let mut d = 0;
    for (i, c) in group[..end].char_indices().chain([(end, ',')]) {
        match c {
            '{' => d += 1,
            '}' => d -= 1,
            ',' if d == 0 => {
                let member = &group[member_start..i];
                let offset = member.len() - member.trim_start().len();
                for tail in paths_at(group, member_start + offset) {
                    let tail: Vec<String> = tail.into_iter().filter(|s| s != "self").collect();
                    out.push(segs.iter().cloned().chain(tail).collect());
                }
                member_start = i + 1;
            }
            _ => {}
        }
    }
    out
}

/// Every `crate::` and `super::` path of a file's code, made absolute from
/// the crate's root. `super` inside an inline module (`mod tests { … }`)
/// is the file itself.
fn absolute_paths(code: &str, module: &[String]) -> Vec<Vec<String>> {
    let inline_from = code
        .match_indices("mod ")
        .find(|&(i, _)| {
            let before_ok = i == 0 || !code[..i].ends_with(is_ident);
            let after = &code[i + 4..];
            let n = after.find(|c: char| !is_ident(c)).unwrap_or(0);
            before_ok && n > 0 && after[n..].trim_start().starts_with('{')
        })
        .map_or(usize::MAX, |(i, _)| i);
    let mut out = Vec::new();
    for prefix in ["crate::", "super::"] {
        for (i, _) in code.match_indices(prefix) {
            if i > 0 && (code[..i].ends_with(is_ident) || code[..i].ends_with("::")) {
                continue;
            }
            for path in paths_at(code, i) {
                let mut segs = path.into_iter().peekable();
                let mut base: Vec<String> = match segs.next().as_deref() {
                    Some("crate") => Vec::new(),
                    _ => {
                        let mut b = module.to_vec();
                        if i < inline_from {
                            b.pop();
                        }
                        b
                    }
                };
                while segs.peek().is_some_and(|s| s == "super") {
                    segs.next();
                    base.pop();
                }
                base.extend(segs);
                out.push(base);
            }
        }
    }
    out
}

/// One crate's files: module path → (file, is index, code).
struct Crate {
    files: BTreeMap<Vec<String>, (PathBuf, bool, String)>,
}

impl Crate {
    fn read(src: &Path) -> Crate {
        let mut rels = Vec::new();
        rust_files(src, Path::new(""), &mut rels);
        let mut files = BTreeMap::new();
        for rel in rels {
            let text = std::fs::read_to_string(src.join(&rel)).expect("source files are UTF-8");
            let (module, index) = module_of(&rel);
            files.insert(module, (src.join(rel), index, code_only(&text)));
        }
        Crate { files }
    }

    /// The file whose module `path` names: its longest prefix that is one.
    fn resolve(&self, path: &[String]) -> Option<&Vec<String>> {
        let len = (0..=path.len()).rev().find(|&n| self.files.contains_key(&path[..n]))?;
        self.files.get_key_value(&path[..len]).map(|(module, _)| module)
    }

    /// Edges between the crate's files (indexes only as targets).
    fn edges(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (module, (_, index, code)) in &self.files {
            if *index {
                continue;
            }
            for path in absolute_paths(code, module) {
                if let Some(target) = self.resolve(&path) {
                    if target != module {
                        edges.entry(module.clone()).or_default().insert(target.clone());
                    }
                }
            }
        }
        edges
    }
}

/// The loops of a directed graph: its strongly connected components of
/// more than one node (Tarjan's algorithm).
fn loops<N: Ord + Clone>(edges: &BTreeMap<N, BTreeSet<N>>) -> Vec<Vec<N>> {
    struct State<N> {
        index: BTreeMap<N, usize>,
        low: BTreeMap<N, usize>,
        stack: Vec<N>,
        on_stack: BTreeSet<N>,
        out: Vec<Vec<N>>,
    }
    fn visit<N: Ord + Clone>(n: &N, edges: &BTreeMap<N, BTreeSet<N>>, s: &mut State<N>) {
        let i = s.index.len();
        s.index.insert(n.clone(), i);
        s.low.insert(n.clone(), i);
        s.stack.push(n.clone());
        s.on_stack.insert(n.clone());
        for m in edges.get(n).into_iter().flatten() {
            if !s.index.contains_key(m) {
                visit(m, edges, s);
                let low = s.low[n].min(s.low[m]);
                s.low.insert(n.clone(), low);
            } else if s.on_stack.contains(m) {
                let low = s.low[n].min(s.index[m]);
                s.low.insert(n.clone(), low);
            }
        }
        if s.low[n] == s.index[n] {
            let mut component = Vec::new();
            while let Some(m) = s.stack.pop() {
                s.on_stack.remove(&m);
                let done = &m == n;
                component.push(m);
                if done {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.out.push(component);
            }
        }
    }
    let mut s = State {
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        out: Vec::new(),
    };
    for n in edges.keys() {
        if !s.index.contains_key(n) {
            visit(n, edges, &mut s);
        }
    }
    s.out
}

/// The source roots: each crate's `src/`, and the facade's (library and
/// program share `src/`, under distinct module names).
fn source_roots() -> Vec<PathBuf> {
    let mut roots = vec![root().join("src")];
    let mut crates: Vec<PathBuf> =
        std::fs::read_dir(root().join("crates")).expect("crates/").flatten().map(|e| e.path().join("src")).collect();
    crates.sort();
    roots.extend(crates);
    roots
}

#[test]
fn no_file_imports_a_file_that_imports_it_back() {
    let mut found = Vec::new();
    for src in source_roots() {
        let krate = Crate::read(&src);
        for component in loops(&krate.edges()) {
            let names: Vec<String> = component
                .iter()
                .map(|m| krate.files[m].0.strip_prefix(root()).unwrap_or(&krate.files[m].0).display().to_string())
                .collect();
            found.push(names.join(" ↔ "));
        }
    }
    assert!(found.is_empty(), "files that import each other (directly or round a loop):\n{}", found.join("\n"));
}

#[test]
fn the_cycle_check_sees_a_cycle() {
    // Two files that name each other, one through a group and `super`, the
    // other by a path from the crate's root in code: the check must see
    // them, and not the comment, the test module's `super` or the root.
    let dir = std::env::temp_dir().join(format!("wengert-house-rules-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("a")).unwrap();
    std::fs::write(dir.join("lib.rs"), "mod a;\npub use a::b::Thing;\n").unwrap();
    std::fs::write(dir.join("a/mod.rs"), "pub mod b;\npub mod c;\n").unwrap();
    std::fs::write(
        dir.join("a/b.rs"),
        "// crate::a::c is only a comment here\nuse super::{c::Other, b};\npub struct Thing;\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("a/c.rs"),
        "pub struct Other;\nfn f() -> crate::a::b::Thing { crate::Thing }\n#[cfg(test)]\nmod tests { use super::*; }\n",
    )
    .unwrap();
    let krate = Crate::read(&dir);
    let found = loops(&krate.edges());
    std::fs::remove_dir_all(&dir).unwrap();
    let b = vec!["a".to_string(), "b".to_string()];
    let c = vec!["a".to_string(), "c".to_string()];
    assert_eq!(found, vec![vec![b, c]]);
}

#[test]
fn every_public_module_of_the_facade_is_in_its_list() {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let list: String = lib.lines().filter(|l| l.starts_with("//!")).collect::<Vec<_>>().join("\n");
    let mut names = Vec::new();
    for line in lib.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("pub mod ") {
            names.push(rest.trim_end_matches(';').trim_end_matches(" {}").to_string());
        } else if let Some(rest) = line.strip_prefix("pub use ") {
            if let Some((_, alias)) = rest.trim_end_matches(';').split_once(" as ") {
                names.push(alias.to_string());
            }
        }
    }
    assert!(names.len() >= 6, "read the facade's modules: {names:?}");
    for name in names {
        assert!(
            list.contains(&format!("[`{name}`]")) || list.contains(&format!("[`{name}`](")),
            "src/lib.rs has `pub` module `{name}` but its list in the crate doc does not name it"
        );
    }
}

/// A number written as an English word, for the counts the prose gives.
fn word(n: usize) -> &'static str {
    const WORDS: [&str; 21] = [
        "zero",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "eleven",
        "twelve",
        "thirteen",
        "fourteen",
        "fifteen",
        "sixteen",
        "seventeen",
        "eighteen",
        "nineteen",
        "twenty",
    ];
    WORDS.get(n).copied().unwrap_or("many")
}

#[test]
fn the_counts_of_chapters_and_crates_are_the_trees() {
    let chapters = std::fs::read_dir(root().join("docs/tutorial"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".md"))
        .count();
    let crates = std::fs::read_dir(root().join("crates")).unwrap().flatten().filter(|e| e.path().is_dir()).count();
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let tutorial = std::fs::read_to_string(root().join("src/tutorial.rs")).unwrap();
    let numbered = |text: &str, prefix: &str| {
        text.lines()
            .filter(|l| l.trim_start().trim_start_matches(prefix).starts_with(|c: char| c.is_ascii_digit()))
            .count()
    };

    let chapter_claim = format!("{} short chapters", word(chapters));
    assert!(readme.contains(&chapter_claim), "README.md should say \"{chapter_claim}\"");
    assert!(lib.contains(&chapter_claim), "src/lib.rs should say \"{chapter_claim}\"");
    assert_eq!(numbered(&readme[readme.find("## Learning Wengert").unwrap()..], ""), chapters, "README's chapter list");
    assert_eq!(numbered(&tutorial, "//! "), chapters, "src/tutorial.rs's chapter list");
    for n in 1..=chapters {
        assert!(tutorial.contains(&format!("pub mod ch{n:02}_")), "src/tutorial.rs has no module for chapter {n}");
    }

    // Each crate is named in the README's tour and in the facade's list.
    for entry in std::fs::read_dir(root().join("crates")).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(readme.contains(&format!("`crates/{name}`")), "README.md's \"What is here\" does not describe {name}");
        assert!(lib.contains(&format!("(`{name}`)")), "src/lib.rs's list does not name {name}");
    }
    assert!(crates >= 6, "read the crates: {crates}");
}
