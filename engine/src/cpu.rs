//! Processor hints shared by the index and the loader.

/// Asks for the cache line holding `p` (a hint: no effect on what the program computes). A
/// prefetch never faults, whatever the address.
#[inline(always)]
pub(crate) fn prefetch_read(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` only hints the cache; it reads nothing the program sees and does not
    // fault on any address (SSE, which every x86-64 processor has).
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
