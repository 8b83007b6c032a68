//! An event store on ringlog with a Dynamic Consistency Boundary style append condition: a
//! command reads the events of its stream, decides, and appends "only if nothing was appended to
//! this stream after the position I read". Two racing commands: one appends, the other gets a
//! conflict, reads again and decides again.
//!
//! ```text
//! cargo run -p ringlog-db --example event_store
//! ```

use ringlog_db::{Db, Error, Lsn};

/// Events of a stream: `event/{stream}/{sequence}`.
fn event_key(stream: &str, seq: u64) -> Vec<u8> {
    format!("event/{stream}/{seq:012}").into_bytes()
}

/// The events of `stream` as of now, and the position (LSN) they were read at.
fn read_stream(db: &Db, stream: &str) -> Result<(Vec<String>, Lsn), Error> {
    let snap = db.snapshot();
    let mut events = Vec::new();
    for e in snap.prefix(format!("event/{stream}/").as_bytes())? {
        events.push(String::from_utf8_lossy(e?.1.as_bytes()).into_owned());
    }
    Ok((events, snap.lsn()))
}

/// Appends `event` to `stream` if no event was appended to it after `position`.
fn append(db: &Db, stream: &str, next_seq: u64, event: &str, position: Lsn) -> Result<Lsn, Error> {
    let mut tx = db.begin();
    tx.fail_if_prefix_changed(format!("event/{stream}/").as_bytes(), Some(position))?;
    tx.put(&event_key(stream, next_seq), event.as_bytes())?;
    tx.commit()
}

fn main() -> Result<(), Error> {
    let db = Db::in_memory();
    // A new stream: the guard without a position says "the stream must not exist yet".
    let mut tx = db.begin();
    tx.fail_if_prefix_changed(b"event/cart-7/", None)?;
    tx.put(&event_key("cart-7", 0), b"CartCreated")?;
    tx.commit()?;

    // Two commands decide on the same state.
    let (events_a, pos_a) = read_stream(&db, "cart-7")?;
    let (events_b, pos_b) = read_stream(&db, "cart-7")?;
    let a = append(
        &db,
        "cart-7",
        events_a.len() as u64,
        "ItemAdded(book)",
        pos_a,
    )?;
    println!("command A appended at LSN {a}");
    match append(
        &db,
        "cart-7",
        events_b.len() as u64,
        "CartCheckedOut",
        pos_b,
    ) {
        Err(Error::Conflict { by_lsn, .. }) => {
            println!("command B conflicted with the append at LSN {by_lsn}: deciding again");
            let (events, pos) = read_stream(&db, "cart-7")?;
            let lsn = append(&db, "cart-7", events.len() as u64, "CartCheckedOut", pos)?;
            println!("command B appended at LSN {lsn} after seeing {events:?}");
        }
        other => panic!("B must conflict: {other:?}"),
    }
    // Another stream's appends never conflict with this one's.
    let (events, pos) = read_stream(&db, "cart-8")?;
    db.put(&event_key("cart-7", 3), b"Unrelated")?;
    append(&db, "cart-8", events.len() as u64, "CartCreated", pos)?;
    let (all, _) = read_stream(&db, "cart-7")?;
    println!("cart-7: {all:?}");
    assert_eq!(all.len(), 4);
    Ok(())
}
