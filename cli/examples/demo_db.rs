//! Creates a small database to try the `ringlog` tool on:
//! `cargo run -p ringlog-cli --example demo_db -- /tmp/demo-db`, then e.g.
//! `cargo run -p ringlog-cli -- inspect /tmp/demo-db`.

use ringlog_db::{Db, Options, Retention};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .ok_or("usage: demo_db DIR (a new directory)")?;
    let db = Db::open(&path, Options::default().segment_size(1 << 20))?;
    db.set_retention(Retention::All)?;
    db.label_run("import of 2026-12-02")?;
    for i in 0..2000u32 {
        db.put(
            format!("user:{i:04}").as_bytes(),
            format!("{{\"name\":\"user {i}\",\"visits\":{}}}", i % 7).as_bytes(),
        )?;
    }
    for i in (0..2000u32).step_by(100) {
        db.put(
            format!("user:{i:04}").as_bytes(),
            format!("{{\"name\":\"user {i}\",\"visits\":{}}}", i % 7 + 1).as_bytes(),
        )?;
    }
    db.delete(b"user:1999")?;
    let mut tx = db.begin();
    tx.put(b"acct:alice", b"70")?;
    tx.put(b"acct:bob", b"30")?;
    tx.commit()?;
    db.close()?;
    Ok(())
}
