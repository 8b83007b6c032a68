//! Peers, each behind its cargo feature (`--features peers` builds them all). Each runs in its
//! strongest honest configuration for the mode, named by [`EngineKind::config`].

use crate::engine::EngineKind;

/// The peers compiled into this binary, in table order.
pub fn peers() -> Vec<&'static dyn EngineKind> {
    #[allow(unused_mut)]
    let mut v: Vec<&'static dyn EngineKind> = Vec::new();
    v
}
