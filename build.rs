//! Makes the tutorial chapters (`docs/tutorial/*.md`, written to read well
//! on GitHub) into the rustdoc pages of `wengert::tutorial`: links between
//! chapters (`ch02_tensors_and_shapes.md#errors`) become links between the
//! modules, and a link to a source file whose title names the item
//! (`(../../crates/wengert-core/src/tape.rs "crate::Tape")`) becomes an
//! intra-doc link to the item, which `cargo doc` checks.

use std::path::Path;

fn main() {
    let dir = Path::new("docs/tutorial");
    println!("cargo:rerun-if-changed={}", dir.display());
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let mut entries: Vec<_> = std::fs::read_dir(dir).expect("docs/tutorial is there").flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "md") {
            println!("cargo:rerun-if-changed={}", path.display());
            let text = std::fs::read_to_string(&path).expect("a chapter is UTF-8");
            let name = path.file_name().expect("a file name");
            std::fs::write(Path::new(&out).join(name), rustdoc_links(&text)).expect("OUT_DIR is writable");
        }
    }
}

/// Rewrites the targets of inline links `](TARGET)`.
fn rustdoc_links(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        out.push_str(&rest[..i + 2]);
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        out.push_str(&target(&rest[..end]));
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

fn target(t: &str) -> String {
    // `path "crate::item"`: the item.
    if let Some((_, title)) = t.split_once(" \"") {
        if let Some(item) = title.strip_suffix('"').filter(|i| i.contains("crate::")) {
            return item.to_string();
        }
    }
    // `chNN_name.md[#anchor]`: the chapter's module.
    let (file, anchor) = t.split_once('#').map_or((t, None), |(f, a)| (f, Some(a)));
    if let Some(chapter) = file.strip_suffix(".md").filter(|f| f.starts_with("ch") && !f.contains('/')) {
        return match anchor {
            Some(a) => format!("crate::tutorial::{chapter}#{a}"),
            None => format!("crate::tutorial::{chapter}"),
        };
    }
    t.to_string()
}
