//! Runs: each open of a database is a run. Two nightly imports of a price list, each labelled;
//! then what each run committed and how they differ, read back from the log.
//!
//! ```text
//! cargo run -p ringlog-db --example run_diff
//! ```

use ringlog_db::{Db, Options, Written};

fn import(
    dir: &std::path::Path,
    label: &str,
    prices: &[(&str, Option<&str>)],
) -> ringlog_db::Result<u64> {
    let db = Db::open(dir, Options::default())?;
    db.label_run(label)?;
    let mut tx = db.begin();
    for (item, price) in prices {
        match price {
            Some(p) => tx.put(format!("price/{item}").as_bytes(), p.as_bytes())?,
            None => tx.delete(format!("price/{item}").as_bytes())?,
        }
    }
    tx.commit()?;
    let run = db.run_id();
    db.close()?;
    Ok(run)
}

fn show(w: &Written) -> String {
    match w {
        Written::Nothing => "-".into(),
        Written::Put(v) => String::from_utf8_lossy(v).into_owned(),
        Written::Deleted => "deleted".into(),
        other => format!("{other:?}"),
    }
}

fn main() -> ringlog_db::Result<()> {
    let tmp = tempfile::tempdir().expect("a temporary directory");
    let monday = import(
        tmp.path(),
        "import monday",
        &[
            ("apple", Some("1.10")),
            ("pear", Some("2.00")),
            ("fig", Some("3.50")),
        ],
    )?;
    let tuesday = import(
        tmp.path(),
        "import tuesday",
        &[
            ("apple", Some("1.20")),
            ("pear", Some("2.00")),
            ("fig", None),
            ("kiwi", Some("0.90")),
        ],
    )?;

    let db = Db::open(tmp.path(), Options::default())?;
    for r in db.runs()? {
        println!(
            "run {} {:?}: LSNs {}..={}, {} transaction(s){}",
            r.id,
            r.label.as_deref().unwrap_or(""),
            r.first_lsn,
            r.last_lsn,
            r.commits,
            if r.complete {
                ""
            } else {
                " (its beginning was compacted away)"
            }
        );
    }
    for change in db.run_changes(tuesday)? {
        let change = change?;
        println!(
            "tuesday's transaction at LSN {}: {} write(s)",
            change.lsn,
            change.writes.len()
        );
    }
    println!("{:<12} {:>8} {:>8}", "key", "monday", "tuesday");
    let diff = db.diff_runs(monday, tuesday)?;
    for d in &diff {
        println!(
            "{:<12} {:>8} {:>8}",
            String::from_utf8_lossy(&d.key),
            show(&d.a),
            show(&d.b)
        );
    }
    // pear was written the same by both: not a difference.
    assert_eq!(diff.len(), 3);
    db.close()
}
