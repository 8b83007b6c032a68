//! The runner's global allocator: the system allocator, except that large zeroed allocations with
//! page alignment (the engine's `AlignedBuf`: batch buffers, the 1 MiB zero-fill chunk of a new
//! segment) come straight from `mmap`, whose pages are already zero. `posix_memalign` + `memset`
//! would touch every page of them, and the power mode opens a database for every crash state
//! (tens of thousands per second), so this halves the cost of a state.

use std::alloc::{GlobalAlloc, Layout, System};

/// Threshold above which page-aligned zeroed allocations are mapped directly.
const MAP_MIN: usize = 64 << 10;

/// See the module documentation.
pub struct ZeroPageAlloc;

fn mapped(layout: &Layout) -> bool {
    layout.size() >= MAP_MIN && layout.align() > 16 && layout.align() <= 4096
}

// SAFETY: every method upholds GlobalAlloc's contract: mapped blocks are page aligned (mmap
// returns page-aligned memory, satisfying any alignment up to 4096), at least `size` bytes, zero
// filled, and released by `dealloc` with the same layout (the same `mapped` test routes them
// back to munmap); everything else is delegated to `System` unchanged.
unsafe impl GlobalAlloc for ZeroPageAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            // SAFETY: same contract as alloc_zeroed (a zeroed block is a valid block).
            return unsafe { self.alloc_zeroed(layout) };
        }
        // SAFETY: forwarded with the caller's valid layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if mapped(&layout) {
            // SAFETY: an anonymous private mapping; no pointer is passed in.
            let p = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    layout.size(),
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            return if p == libc::MAP_FAILED {
                std::ptr::null_mut()
            } else {
                p.cast()
            };
        }
        // SAFETY: forwarded with the caller's valid layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if mapped(&layout) {
            // SAFETY: ptr came from our mmap of exactly layout.size() bytes.
            unsafe {
                libc::munmap(ptr.cast(), layout.size());
            }
            return;
        }
        // SAFETY: ptr came from System with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: the caller guarantees new_size and layout.align() form a valid layout.
        let new = unsafe { Layout::from_size_align_unchecked(new_size, layout.align()) };
        if !mapped(&layout) && !mapped(&new) {
            // SAFETY: ptr came from System with `layout`; forwarded unchanged.
            return unsafe { System.realloc(ptr, layout, new_size) };
        }
        // SAFETY: a fresh block from this allocator; the copy covers the smaller of the two
        // sizes, both valid; the old block is released with its own layout.
        unsafe {
            let p = self.alloc(new);
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(ptr, p, layout.size().min(new_size));
                self.dealloc(ptr, layout);
            }
            p
        }
    }
}
