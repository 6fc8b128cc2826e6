//! What the fuzz targets share: an allocator that turns a disproportionate allocation into a
//! crash, and a cursor that splits one fuzz input into the pieces a target needs.
//!
//! The targets themselves are in `fuzz_targets/`, one per decoder (see docs/reliability.md);
//! the seed corpora in `corpus/<target>/` are written by `examples/seeds.rs`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::Write as _;

/// The largest single allocation a target may make. Inputs are a few KiB; a decoder that asks
/// for more than this has trusted a length field it read instead of the bytes it has.
pub const ALLOCATION_BYTES_MAX: usize = 64 * 1024 * 1024;

/// The system allocator, aborting (which libFuzzer reports as a crash, with the input saved)
/// on any allocation larger than [`ALLOCATION_BYTES_MAX`].
pub struct CappedAllocator;

// SAFETY: every call is forwarded to `System` unchanged, or the process aborts.
unsafe impl GlobalAlloc for CappedAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc(layout)
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        check(layout.size());
        System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        check(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn check(size_bytes: usize) {
    if size_bytes > ALLOCATION_BYTES_MAX {
        // No formatting: that would allocate inside the allocator.
        let _ = std::io::stderr()
            .write_all(b"stele-fuzz: an allocation exceeds ALLOCATION_BYTES_MAX (64 MiB)\n");
        std::process::abort();
    }
}

#[global_allocator]
static ALLOCATOR: CappedAllocator = CappedAllocator;

/// Reads a fuzz input piece by piece; past the end every piece is empty or zero.
pub struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Input<'a> {
        Input { bytes }
    }

    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (piece, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        piece
    }

    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.bytes)
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Links this crate (and so its allocator) into a target.
pub fn init() {}
