use std::alloc::{self, Layout};
use std::ptr::NonNull;

/// A growable byte buffer whose start is aligned to [`AlignedBuf::ALIGN`] (4096) bytes, as
/// `O_DIRECT` I/O requires. Bytes beyond `len` up to the capacity are always zero, so padding a
/// batch to a block boundary is just a length change.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    len: usize,
    cap: usize,
}

// SAFETY: AlignedBuf owns its allocation exclusively (like Vec<u8>); no interior mutability.
unsafe impl Send for AlignedBuf {}
// SAFETY: shared references only allow reading the bytes.
unsafe impl Sync for AlignedBuf {}

impl AlignedBuf {
    /// Alignment of the buffer's first byte and granularity of its capacity.
    pub const ALIGN: usize = 4096;

    /// An empty buffer with room for at least `cap` bytes.
    pub fn with_capacity(cap: usize) -> Self {
        let cap = cap.max(Self::ALIGN).next_multiple_of(Self::ALIGN);
        let layout =
            Layout::from_size_align(cap, Self::ALIGN).expect("capacity overflows a layout");
        // SAFETY: layout has a non-zero size (cap >= ALIGN).
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        AlignedBuf { ptr, len: 0, cap }
    }

    /// Number of bytes in use.
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when no byte is in use.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Allocated bytes.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The bytes in use.
    #[inline]
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is valid for cap >= len initialised (zeroed or written) bytes.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }

    /// The bytes in use, mutably.
    #[inline]
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as in as_slice, and &mut self guarantees exclusivity.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }

    /// Grows the buffer by `n` zero bytes and returns them for writing.
    pub fn extend_zeroed(&mut self, n: usize) -> &mut [u8] {
        let start = self.len;
        let end = start.checked_add(n).expect("AlignedBuf length overflow");
        if end > self.cap {
            self.grow(end);
        }
        self.len = end;
        // SAFETY: [start, end) lies within the allocation and is zero by the buffer's invariant.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr().add(start), n) }
    }

    /// Appends `bytes`.
    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        self.extend_zeroed(bytes.len()).copy_from_slice(bytes);
    }

    /// Shortens the buffer to `len` bytes, zeroing what is cut so the invariant holds.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len {
            self.as_mut_slice()[len..].fill(0);
            self.len = len;
        }
    }

    /// Empties the buffer (zeroing its bytes), keeping the allocation.
    pub fn clear(&mut self) {
        self.truncate(0);
    }

    fn grow(&mut self, min: usize) {
        let new_cap = min.max(self.cap * 2).next_multiple_of(Self::ALIGN);
        let mut bigger = AlignedBuf::with_capacity(new_cap);
        bigger.extend_from_slice(self.as_slice());
        std::mem::swap(self, &mut bigger);
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        let layout =
            Layout::from_size_align(self.cap, Self::ALIGN).expect("layout was valid at allocation");
        // SAFETY: ptr was allocated with exactly this layout and is freed once.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), layout) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field("cap", &self.cap)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_growth_and_zero_invariant() {
        let mut b = AlignedBuf::with_capacity(10);
        assert_eq!(b.as_slice().as_ptr() as usize % AlignedBuf::ALIGN, 0);
        b.extend_from_slice(&[1; 5000]);
        assert_eq!(b.len(), 5000);
        assert_eq!(b.as_slice().as_ptr() as usize % AlignedBuf::ALIGN, 0);
        b.truncate(10);
        let tail = b.extend_zeroed(100);
        assert!(tail.iter().all(|&x| x == 0));
        b.clear();
        assert!(b.is_empty());
        assert!(b.extend_zeroed(5000).iter().all(|&x| x == 0));
    }
}
