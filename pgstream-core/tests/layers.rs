//! The compiler is a pipeline: each top-level module of `src/` may use only the
//! modules below it in [`LAYERS`], so the import graph has no cycle and a reader can
//! go bottom-up. This test reads every source file and checks each `crate::<module>`
//! path (in `use` lines and inline paths, outside comments and `#[cfg(test)] mod
//! tests`) against that order. `lib.rs`, the driver, may use everything.
//!
//! A new module goes into `LAYERS` where it belongs; a failure here means an import
//! points up: move the item it needs down, or the importing code up.

use std::path::{Path, PathBuf};

/// Bottom first. Modules on one line of the pipeline in `docs/ARCHITECTURE.md`.
const LAYERS: &[&str] = &[
    "error",      // diagnostics
    "cron",       // cron expressions
    "spec",       // what a stream table is (name, query, schedule, mode)
    "contract",   // names shared with the runtime
    "immediate",  // IMMEDIATE mode's wording of what it cannot maintain
    "sql",        // parse, identifiers, AST helpers, the Rust ↔ SQL type table
    "catalog",    // tables and views, lookup
    "analyze",    // view expansion, types, names, volatility, recursive shape
    "migrations", // DDL → catalog
    "ir",         // the shared model: Block, Tree, Leaf, Shape, Compiled
    "bind",       // AST → Block
    "pushdown",   // predicate pushdown on the Block
    "plan",       // strategy choice: Compiled
    "relevance",  // change filters: which changes of a source can alter the result
    "render",     // whole statements: window, apply, frontier, refresh function
    "strategy",   // one delta rule per operator; Compiled::render
    "explain",    // operator tree and SQL, for people
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `crate::<name>` references of a source text, with their line numbers.
fn crate_refs(text: &str) -> Vec<(usize, String)> {
    let code = match text.find("#[cfg(test)]\nmod tests") {
        Some(at) => &text[..at],
        None => text,
    };
    let mut refs = Vec::new();
    for (n, line) in code.lines().enumerate() {
        if line.trim_start().starts_with("//") {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let name: String = rest[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            let before = rest[..at].chars().last();
            // `pgstream_core::...` or `some_crate::` are not this crate.
            if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                refs.push((n + 1, name));
            }
            rest = &rest[at + "crate::".len()..];
        }
    }
    refs
}

#[test]
fn imports_point_down() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files.sort();
    let rank = |m: &str| LAYERS.iter().position(|l| *l == m);
    let mut errors = Vec::new();
    for file in &files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let Some(own) = rank(&top) else {
            errors.push(format!(
                "{}: module `{top}` is not in LAYERS",
                rel.display()
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in crate_refs(&text) {
            match rank(&used) {
                None => errors.push(format!(
                    "{}:{line}: `crate::{used}` is not in LAYERS",
                    rel.display()
                )),
                Some(r) if r > own => errors.push(format!(
                    "{}:{line}: `{top}` uses `crate::{used}`, which is above it",
                    rel.display()
                )),
                _ => {}
            }
        }
        if rel.components().count() == 1 {
            // In a top-level file `super::` is the crate root: it must not go around
            // the rule.
            let code = text.split("#[cfg(test)]\nmod tests").next().unwrap_or("");
            for (n, l) in code.lines().enumerate() {
                if l.contains("super::") && !l.trim_start().starts_with("//") {
                    errors.push(format!(
                        "{}:{}: `super::` in a top-level module",
                        rel.display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(
        errors.is_empty(),
        "imports that do not point down:\n{}",
        errors.join("\n")
    );
}

#[test]
fn the_check_sees_an_upward_import() {
    let refs = crate_refs(
        "use crate::ir::Block;\n// crate::explain in a comment\nlet x = crate::plan::compile(); pgstream_core::spec::Mode;\n#[cfg(test)]\nmod tests { use crate::strategy; }",
    );
    assert_eq!(refs, vec![(1, "ir".to_string()), (3, "plan".to_string())]);
}
