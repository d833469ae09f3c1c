//! UIDVALIDITY never repeats: a folder created again under a name in use a moment ago
//! must not let a client keep its cached UIDs (RFC 3501 §2.3.1.1).

mod common;

use common::*;

/// The folder's UIDVALIDITY as STATUS reports it.
async fn uidvalidity(c: &mut Client, folder: &str) -> u64 {
    let r = c.cmd(&format!("STATUS {folder} (UIDVALIDITY)")).await;
    let line = r
        .iter()
        .find(|l| l.starts_with("* STATUS "))
        .unwrap_or_else(|| panic!("{r:?}"));
    let (_, rest) = line.split_once("UIDVALIDITY ").unwrap();
    rest.trim_end().trim_end_matches(')').parse().unwrap()
}

#[tokio::test]
async fn uidvalidity_increases_across_delete_rename_and_create() {
    let w = world("").await;
    let mut c = w.login(HOUSE_BAL, HOUSE).await;
    assert!(last(&c.cmd("CREATE Patients").await).contains(" OK "));
    let mut seen = vec![uidvalidity(&mut c, "Patients").await];
    // Well within one second: the clock alone would give the same value each time.
    for i in 0..5 {
        assert!(last(&c.cmd("DELETE Patients").await).contains(" OK "));
        assert!(last(&c.cmd("CREATE Patients").await).contains(" OK "));
        seen.push(uidvalidity(&mut c, "Patients").await);
        let away = format!("Archive{i}");
        assert!(last(&c.cmd(&format!("RENAME Patients {away}")).await).contains(" OK "));
        assert!(last(&c.cmd("CREATE Patients").await).contains(" OK "));
        seen.push(uidvalidity(&mut c, "Patients").await);
    }
    assert!(seen.windows(2).all(|p| p[0] < p[1]), "{seen:?}");
    // A renamed folder keeps its own, which the new folder does not take again.
    let archived = uidvalidity(&mut c, "Archive0").await;
    assert!(seen.contains(&archived), "{archived} {seen:?}");
    assert_eq!(seen.iter().filter(|v| **v == archived).count(), 1);
    w.stop().await;
}
