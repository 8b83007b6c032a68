//! Memory mapped in whole huge pages: large buffers that go back to the kernel when freed (not to
//! the C heap, which keeps what it frees below its top) and that the kernel may back with
//! transparent huge pages where they are advised (fewer TLB misses for random access over
//! hundreds of megabytes; see [`Pages`]).

use std::ptr::{self, NonNull};

/// The huge page size this module aligns and rounds to (x86-64's 2 MiB; a multiple of every base
/// page size in use: 4, 16 and 64 KiB).
pub(crate) const HUGE_PAGE: usize = 2 << 20;

/// Whether a mapping is advised for transparent huge pages (`MADV_HUGEPAGE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Pages {
    /// Advised: for memory that lives long and is searched at random (the index's arena).
    Huge,
    /// Base pages: for buffers that live only while recovery runs. On the project's VM a huge
    /// page's first touch costs about five times its base pages' (the hypervisor backs each
    /// fresh 2 MiB block at once, and the kernel may compact memory to find one): with recovery's
    /// buffers advised too, replaying 1 M records took 0.60–0.73 s instead of 0.35–0.43 s
    /// (BENCHMARKS.md, "Recovery of 1M records").
    Base,
}

/// Maps `len` bytes (a non-zero multiple of [`HUGE_PAGE`]) of zeroed, private, anonymous memory
/// aligned to a huge page, advised for transparent huge pages when `pages` says so. `None` if
/// the kernel refuses.
pub(crate) fn map_huge(len: usize, pages: Pages) -> Option<NonNull<u8>> {
    assert!(len > 0 && len.is_multiple_of(HUGE_PAGE), "whole huge pages");
    let map_len = len + HUGE_PAGE;
    // SAFETY: an anonymous private mapping at an address of the kernel's choice: no existing
    // memory is affected.
    let p = unsafe {
        libc::mmap(
            ptr::null_mut(),
            map_len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return None;
    }
    let start = p as usize;
    let aligned = start.next_multiple_of(HUGE_PAGE);
    // SAFETY: the head `[start, aligned)` and the tail `[aligned + len, start + map_len)` are
    // parts of the mapping just made (page-aligned: `start` is, as every mapping is; `aligned`
    // and `len` are multiples of the huge page, hence of the page size), used by nothing;
    // unmapping them leaves `[aligned, aligned + len)`. The madvise is a hint about those pages
    // that never changes their contents.
    unsafe {
        if aligned > start {
            libc::munmap(p, aligned - start);
        }
        let end = aligned + len;
        if start + map_len > end {
            libc::munmap(end as *mut libc::c_void, start + map_len - end);
        }
        if pages == Pages::Huge {
            libc::madvise(aligned as *mut libc::c_void, len, libc::MADV_HUGEPAGE);
        }
    }
    NonNull::new(aligned as *mut u8)
}

/// Faults in, as writes would, the whole pages inside `[p, p + len)`, in one system call
/// (`MADV_POPULATE_WRITE`) instead of a fault per page later. Their contents do not change:
/// pages already there are left as they are, the others are mapped zeroed (and a page first
/// read and then written is not mapped twice, the shared zero page and then its copy, with a
/// flush of every other core's TLB in between). False if the kernel refused (before 5.14), when
/// the pages simply fault in as they are used.
///
/// # Safety
///
/// `[p, p + len)` lies in memory of this process that stays mapped during the call.
pub(crate) unsafe fn populate_write(p: *mut u8, len: usize) -> bool {
    // SAFETY: sysconf has no preconditions.
    let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096);
    let start = (p as usize).next_multiple_of(page);
    let end = (p as usize + len) / page * page;
    if end <= start {
        return true;
    }
    // SAFETY: `[start, end)` is whole pages inside the caller's mapped range; the advice reads
    // and writes no byte of them.
    unsafe {
        libc::madvise(
            start as *mut libc::c_void,
            end - start,
            libc::MADV_POPULATE_WRITE,
        ) == 0
    }
}

/// Unmaps memory from [`map_huge`].
///
/// # Safety
///
/// `p` and `len` are a mapping [`map_huge`] returned, not used afterwards and unmapped once.
pub(crate) unsafe fn unmap_huge(p: NonNull<u8>, len: usize) {
    // SAFETY: per the contract, `[p, p + len)` is a mapping of ours, unused from now on.
    unsafe { libc::munmap(p.as_ptr().cast(), len) };
}

/// A byte buffer of fixed capacity in its own huge-page-aligned mapping of base pages
/// ([`Pages::Base`]): appended to, never grown (growing would copy it), returned to the kernel
/// when dropped.
pub(crate) struct HugeBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: a HugeBuf owns its mapping exclusively (like a Vec<u8>); shared access is read-only.
unsafe impl Send for HugeBuf {}
// SAFETY: as above: `&HugeBuf` only reads.
unsafe impl Sync for HugeBuf {}

impl HugeBuf {
    /// An empty buffer for at least `cap` bytes (rounded up to whole huge pages).
    pub(crate) fn with_capacity(cap: usize) -> HugeBuf {
        let cap = cap.max(1).next_multiple_of(HUGE_PAGE);
        let ptr = map_huge(cap, Pages::Base).unwrap_or_else(|| {
            std::alloc::handle_alloc_error(
                std::alloc::Layout::from_size_align(cap, HUGE_PAGE).expect("a valid layout"),
            )
        });
        HugeBuf { ptr, len: 0, cap }
    }

    /// Bytes that can still be appended.
    pub(crate) fn spare(&self) -> usize {
        self.cap - self.len
    }

    /// Appends `bytes`; they must fit ([`HugeBuf::spare`]).
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        assert!(bytes.len() <= self.spare(), "a HugeBuf never grows");
        // SAFETY: `[len, len + bytes.len())` lies inside the mapping (checked above), which
        // nothing else references (`&mut self`); `bytes` cannot overlap it (a `&[u8]` into this
        // buffer would borrow `self`).
        unsafe {
            ptr::copy_nonoverlapping(bytes.as_ptr(), self.ptr.as_ptr().add(self.len), bytes.len());
        }
        self.len += bytes.len();
    }
}

impl std::ops::Deref for HugeBuf {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes of the mapping were written by `extend_from_slice` (and
        // a fresh mapping is zeroed anyway); the mapping lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for HugeBuf {
    fn drop(&mut self) {
        // SAFETY: the mapping came from `map_huge(cap)` and is unmapped once, here.
        unsafe { unmap_huge(self.ptr, self.cap) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_buf_appends_within_its_capacity() {
        let mut b = HugeBuf::with_capacity(10);
        assert_eq!(b.spare(), HUGE_PAGE);
        b.extend_from_slice(b"hello");
        b.extend_from_slice(b" world");
        assert_eq!(&b[..], b"hello world");
        assert_eq!(b.spare(), HUGE_PAGE - 11);
        let big = vec![7u8; b.spare()];
        b.extend_from_slice(&big);
        assert_eq!(b.len(), HUGE_PAGE);
        assert_eq!(b.spare(), 0);
        assert!(
            (b.as_ptr() as usize).is_multiple_of(HUGE_PAGE),
            "huge-page aligned"
        );
    }

    #[test]
    #[should_panic(expected = "never grows")]
    fn a_huge_buf_refuses_to_overflow() {
        let mut b = HugeBuf::with_capacity(1);
        b.extend_from_slice(&vec![0u8; HUGE_PAGE + 1]);
    }
}
