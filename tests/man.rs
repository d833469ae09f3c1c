//! The manual pages the Debian package ships (contrib/man/) are what `mssante man`
//! writes from the command line's own definitions: a command or flag added without
//! writing them again fails here, with the command that brings them up to date.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

/// Every `*.1` in `dir`, by name.
fn pages(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

#[test]
fn the_shipped_manual_pages_are_the_command_lines_own() {
    let out = tempfile::tempdir().unwrap();
    let unused = out.path().join("no-config.toml");
    let written = out.path().join("man");
    std::fs::create_dir(&written).unwrap();
    common::cli::ok(&unused, &["man", written.to_str().unwrap()]);
    let fresh = pages(&written);
    let shipped = pages(&Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/man"));
    let hint = "run `cargo run -- man contrib/man` (after removing contrib/man/*.1)";
    assert_eq!(
        fresh.keys().collect::<Vec<_>>(),
        shipped.keys().collect::<Vec<_>>(),
        "{hint}"
    );
    for (name, text) in &fresh {
        assert!(
            text == &shipped[name],
            "contrib/man/{name} is stale: {hint}"
        );
    }
    // The server as packaged: the development commands are not in it.
    assert!(fresh["mssante.1"].contains("check\\-config"));
    assert!(
        !fresh
            .keys()
            .any(|n| n.contains("dev") || n.contains("conformance"))
    );
}
