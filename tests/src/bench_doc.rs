//! What the benchmarks share: their `main` ([`bench_main`]), their knobs ([`env_or`]),
//! and the sections of `docs/BENCHMARKS.md` that one benchmark writes and the others
//! keep, each between `<!-- begin NAME -->` and `<!-- end NAME -->` lines.

fn markers(name: &str) -> (String, String) {
    (
        format!("<!-- begin {name} -->"),
        format!("<!-- end {name} -->"),
    )
}

/// The section `name` of `doc`, markers included, if it has one.
pub fn section(doc: &str, name: &str) -> Option<String> {
    let (begin, end) = markers(name);
    let start = doc.find(&begin)?;
    let stop = doc[start..].find(&end)? + start + end.len();
    Some(doc[start..stop].to_string())
}

/// `doc` with its section `name` replaced by `body` (which must carry the markers),
/// or with `body` appended when it has none.
pub fn replace_section(doc: &str, name: &str, body: &str) -> String {
    match section(doc, name) {
        Some(old) => doc.replacen(&old, body, 1),
        None => format!("{}\n\n{body}\n", doc.trim_end()),
    }
}

/// `body` between the markers of section `name`.
pub fn wrap(name: &str, body: &str) -> String {
    let (begin, end) = markers(name);
    format!("{begin}\n{}\n{end}", body.trim_end())
}

/// The error type of a benchmark's `run`.
pub type BenchError = Box<dyn std::error::Error + Send + Sync>;

/// The value of the environment variable `key`, parsed (surrounding white space
/// ignored), or `default` when it is unset or does not parse.
pub fn env_or<T: std::str::FromStr>(key: &str, default: T) -> T {
    std::env::var(key)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// The `main` of a benchmark (`harness = false`): run `run` on a two-thread tokio
/// runtime when `cargo bench` invokes it (with `--bench`), and exit with status 1,
/// saying why, when it fails; otherwise (`cargo test` runs bench targets too) print
/// how to run it.
pub fn bench_main<F>(name: &str, run: impl FnOnce() -> F)
where
    F: std::future::Future<Output = Result<(), BenchError>>,
{
    if !std::env::args().any(|a| a == "--bench") {
        println!("{name} benchmark: run it with `cargo bench --bench {name}`");
        return;
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run()) {
        eprintln!("{name} benchmark failed: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_are_replaced_or_appended() {
        let doc = "# B\n\ntext\n";
        let once = replace_section(doc, "scale", &wrap("scale", "## Scale\n1"));
        assert_eq!(
            once,
            "# B\n\ntext\n\n<!-- begin scale -->\n## Scale\n1\n<!-- end scale -->\n"
        );
        let twice = replace_section(&once, "scale", &wrap("scale", "## Scale\n2"));
        assert!(twice.contains("## Scale\n2") && !twice.contains("## Scale\n1"));
        assert_eq!(
            section(&twice, "scale").unwrap(),
            wrap("scale", "## Scale\n2")
        );
    }
}
