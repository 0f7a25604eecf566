//! Every relative link in the repository's Markdown resolves, offline: the
//! file or folder exists, and an anchor names a heading of the page it
//! points into (GitHub's anchors). The tutorials' links to API items are
//! checked by `cargo doc` (see `build.rs`); here they must point at a
//! source file that exists, so they work on GitHub too.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The Markdown files of the repository, outside build outputs and data.
fn markdown_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if path.is_dir() {
            if !["target", ".git", "data", "cases", "node_modules"].contains(&name.as_str()) && !name.starts_with('.') {
                markdown_files(&path, out);
            }
        } else if name.ends_with(".md") {
            out.push(path);
        }
    }
}

/// The text outside fenced code blocks and inline code spans.
fn prose(text: &str) -> String {
    let mut out = String::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut in_code = false;
        for c in line.chars() {
            if c == '`' {
                in_code = !in_code;
            } else if !in_code {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces
/// to hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown page's headings, with GitHub's `-1`, `-2`
/// suffixes for repeats.
fn anchors(text: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut fenced = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = slug(line.trim_start_matches('#').replace('`', "").as_str());
        let mut s = base.clone();
        let mut n = 0;
        while seen.contains(&s) {
            n += 1;
            s = format!("{base}-{n}");
        }
        seen.insert(s);
    }
    seen
}

/// The targets of the inline links `[text](target "title")` in `text`.
fn link_targets(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split_once(" \"").map_or(&rest[..end], |(t, _)| t).trim();
        out.push(target.to_string());
        rest = &rest[end..];
    }
    out
}

fn check(file: &Path, target: &str) -> Result<(), String> {
    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") {
        return Ok(());
    }
    if target.starts_with("crate::") || target.contains("::") {
        return Err("an intra-doc path: dead on GitHub (give a source file, and the path as the title)".into());
    }
    let (path, anchor) = target.split_once('#').map_or((target, None), |(p, a)| (p, Some(a)));
    let resolved =
        if path.is_empty() { file.to_path_buf() } else { file.parent().unwrap_or(Path::new(".")).join(path) };
    if !resolved.exists() {
        return Err(format!("{} does not exist", resolved.display()));
    }
    if let Some(anchor) = anchor {
        if resolved.extension().is_some_and(|e| e == "md") {
            let text = std::fs::read_to_string(&resolved).map_err(|e| e.to_string())?;
            if !anchors(&text).contains(anchor) {
                return Err(format!("no heading #{anchor} in {}", resolved.display()));
            }
        }
    }
    Ok(())
}

#[test]
fn every_relative_markdown_link_resolves() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    markdown_files(root, &mut files);
    files.sort();
    assert!(files.len() >= 10, "found only {files:?}");
    let mut dead = Vec::new();
    let mut checked = 0;
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for target in link_targets(&prose(&text)) {
            checked += 1;
            if let Err(why) = check(file, &target) {
                dead.push(format!("{}: ({target}): {why}", file.strip_prefix(root).unwrap_or(file).display()));
            }
        }
    }
    assert!(dead.is_empty(), "{} dead link(s) of {checked}:\n{}", dead.len(), dead.join("\n"));
    assert!(checked > 50, "only {checked} links checked: is the parser missing them?");
}

#[test]
fn the_checker_finds_dead_links_and_anchors() {
    let dir = std::env::temp_dir().join(format!("wengert-links-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let page = dir.join("page.md");
    std::fs::write(&page, "# A Title: with `code`\n\n## Twice\n\n## Twice\n").unwrap();
    assert!(check(&page, "#a-title-with-code").is_ok());
    assert!(check(&page, "#twice-1").is_ok());
    assert!(check(&page, "#twice-2").is_err());
    assert!(check(&page, "page.md#nowhere").is_err());
    assert!(check(&page, "missing.md").is_err());
    assert!(check(&page, "crate::Tape").is_err());
    assert_eq!(link_targets("[a](x.md \"crate::X\") and [b](#c)"), ["x.md", "#c"]);
    assert!(prose("```\n[a](gone.md)\n```\n`[b](gone.md)`\n").trim().is_empty());
    std::fs::remove_dir_all(dir).unwrap();
}
