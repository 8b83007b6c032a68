//! Bank transfers with optimistic transactions: eight threads move money between accounts
//! through `Db::transact`, a ninth checks in snapshots that the total never changes, and the
//! total survives a reopen.
//!
//! ```text
//! cargo run --release -p ringlog-db --example bank_transfer [DIR]
//! ```

use std::sync::atomic::{AtomicBool, Ordering};

use ringlog_db::{Db, Durability, Options, RetryPolicy, Value};

const ACCOUNTS: u64 = 100;
const START: i64 = 1_000;

fn key(i: u64) -> Vec<u8> {
    format!("account/{i:04}").into_bytes()
}

fn balance(v: Option<Value>) -> i64 {
    v.map_or(0, |v| {
        i64::from_le_bytes(v.as_bytes().try_into().expect("8 bytes"))
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tmp;
    let dir = match std::env::args().nth(1) {
        Some(d) => std::path::PathBuf::from(d),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let opts = Options::with_durability(Durability::Strict);
    let db = Db::open(&dir, opts.clone())?;
    let mut tx = db.begin();
    for i in 0..ACCOUNTS {
        tx.put(&key(i), &START.to_le_bytes())?;
    }
    tx.commit()?;
    let want = START * ACCOUNTS as i64;
    let done = AtomicBool::new(false);
    let policy = RetryPolicy::default().max_attempts(1_000);
    std::thread::scope(|s| -> Result<(), ringlog_db::Error> {
        let auditor = s.spawn(|| -> Result<u64, ringlog_db::Error> {
            let mut audits = 0;
            while !done.load(Ordering::Acquire) {
                let snap = db.snapshot();
                let mut total = 0;
                for e in snap.prefix(b"account/")? {
                    total += balance(Some(e?.1));
                }
                assert_eq!(total, want, "total at LSN {}", snap.lsn());
                audits += 1;
            }
            Ok(audits)
        });
        let workers: Vec<_> = (0..8u64)
            .map(|t| {
                let (db, policy) = (&db, &policy);
                s.spawn(move || -> Result<(), ringlog_db::Error> {
                    let mut x = t.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
                    for _ in 0..200 {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        let (from, to) = (x % ACCOUNTS, (x >> 20) % ACCOUNTS);
                        if from == to {
                            continue;
                        }
                        // The closure may run more than once: it only reads and writes via tx.
                        db.transact(policy, |tx| {
                            let a = balance(tx.get(&key(from))?);
                            let b = balance(tx.get(&key(to))?);
                            let amount = (a / 10).max(0);
                            tx.put(&key(from), &(a - amount).to_le_bytes())?;
                            tx.put(&key(to), &(b + amount).to_le_bytes())
                        })?;
                    }
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().expect("worker")?;
        }
        done.store(true, Ordering::Release);
        let audits = auditor.join().expect("auditor")?;
        let st = db.stats();
        println!(
            "{} commits, {} conflicts retried, {audits} audits saw the total {want}",
            st.commits, st.txn_retries
        );
        Ok(())
    })?;
    db.close()?;
    let db = Db::open(&dir, opts)?;
    let mut total = 0;
    for e in db.prefix(b"account/")? {
        total += balance(Some(e?.1));
    }
    assert_eq!(total, want);
    println!("after reopening: total {total}");
    Ok(())
}
