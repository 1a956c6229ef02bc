//! The global allocator: mimalloc, asked for plain blocks when plain blocks are aligned enough.
//!
//! The `mimalloc` crate passes every allocation to `mi_malloc_aligned`, even at the 1, 8 or 16
//! bytes of alignment that every mimalloc block already has. In mimalloc 3 that call is fast only
//! for a block of at most 1 KiB whose size class has a free block at hand. Otherwise it takes the
//! generic path, where a size that is not a power of two is over-allocated by `alignment - 1`
//! bytes and aligned inside its block (which then also costs `mi_free` a lookup). A health check
//! made 29 allocations, 6 of them that way: about 1,000 of its 30,000 instructions.
//!
//! So plain `mi_malloc`, `mi_zalloc` and `mi_realloc` are used where their blocks meet the
//! layout's alignment, and the aligned calls only where they may not. Every mimalloc block is
//! aligned to 8 bytes (its size classes are whole words); one whose size is a multiple of 16 is
//! aligned to 16 (those classes are even numbers of words, laid out from 16-byte boundaries).
//! The tests below check both on the blocks handed out.

#![allow(unsafe_code)]

use std::alloc::{GlobalAlloc, Layout};
use std::ffi::c_void;

use libmimalloc_sys as mi;

/// mimalloc, called as described in the module's documentation.
pub struct Allocator;

/// Whether a plain mimalloc block of `layout`'s size is aligned enough for it.
#[inline]
fn plain_block_fits(size: usize, align: usize) -> bool {
    align <= 8 || (align == 16 && size.is_multiple_of(16))
}

// SAFETY: each method forwards to the mimalloc call that meets `GlobalAlloc`'s contract for the
// layout (alignment as above, `mi_free` for every block, whichever call made it), and mimalloc
// is thread-safe.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: `GlobalAlloc::alloc`'s caller gives a non-zero size; mimalloc takes any.
        unsafe {
            if plain_block_fits(layout.size(), layout.align()) {
                mi::mi_malloc(layout.size()).cast()
            } else {
                mi::mi_malloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as in `alloc`.
        unsafe {
            if plain_block_fits(layout.size(), layout.align()) {
                mi::mi_zalloc(layout.size()).cast()
            } else {
                mi::mi_zalloc_aligned(layout.size(), layout.align()).cast()
            }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, _layout: Layout) {
        // SAFETY: `ptr` came from this allocator, so from mimalloc, which frees any of its
        // blocks with `mi_free`.
        unsafe { mi::mi_free(ptr.cast::<c_void>()) }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: `ptr` is a live block of this allocator with `layout`; the new block must
        // meet the same alignment at `new_size`, which decides the call as in `alloc`.
        unsafe {
            if plain_block_fits(new_size, layout.align()) {
                mi::mi_realloc(ptr.cast::<c_void>(), new_size).cast()
            } else {
                mi::mi_realloc_aligned(ptr.cast::<c_void>(), new_size, layout.align()).cast()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Allocates `layout` through the allocator, checks the block's alignment and that all of
    /// it can be written, grows it, checks again, and frees it.
    fn exercise(layout: Layout) {
        let allocator = Allocator;
        // SAFETY: the layouts below have non-zero sizes; every block is written only within
        // its size and freed once, with its layout.
        unsafe {
            for zeroed in [false, true] {
                let block = if zeroed {
                    allocator.alloc_zeroed(layout)
                } else {
                    allocator.alloc(layout)
                };
                assert!(!block.is_null(), "{layout:?}");
                assert_eq!(block as usize % layout.align(), 0, "{layout:?}");
                if zeroed {
                    assert!(
                        std::slice::from_raw_parts(block, layout.size())
                            .iter()
                            .all(|b| *b == 0),
                        "{layout:?} not zeroed"
                    );
                }
                std::ptr::write_bytes(block, 0xA5, layout.size());
                let grown_size = layout.size() * 3 + 5;
                let grown = allocator.realloc(block, layout, grown_size);
                assert!(!grown.is_null(), "{layout:?}");
                assert_eq!(grown as usize % layout.align(), 0, "{layout:?} grown");
                let kept = std::slice::from_raw_parts(grown, layout.size());
                assert!(kept.iter().all(|b| *b == 0xA5), "{layout:?} lost its bytes");
                std::ptr::write_bytes(grown, 0x5A, grown_size);
                allocator.dealloc(
                    grown,
                    Layout::from_size_align(grown_size, layout.align()).unwrap_or(layout),
                );
            }
        }
    }

    #[test]
    fn blocks_meet_every_alignment_up_to_a_page_at_every_size() {
        let mut sizes: Vec<usize> = (1..=300).collect();
        sizes.extend([
            511,
            512,
            513,
            1000,
            1024,
            1025,
            1500,
            2048,
            3000,
            4096,
            5000,
            65_536,
            70_000,
            1 << 20,
            3 << 20,
        ]);
        let mut checked = 0;
        for align in [1, 2, 4, 8, 16, 32, 64, 128, 4096] {
            for &size in &sizes {
                let Ok(layout) = Layout::from_size_align(size, align) else {
                    continue;
                };
                // Many at once, so that blocks come from the middle of pages, not only their
                // starts.
                let held: Vec<Vec<u8>> = (0..8).map(|_| Vec::with_capacity(size)).collect();
                exercise(layout);
                drop(held);
                checked += 1;
            }
        }
        assert_eq!(checked, 9 * sizes.len());
    }

    #[test]
    fn plain_blocks_are_used_only_where_their_alignment_suffices() {
        assert!(plain_block_fits(1, 1));
        assert!(plain_block_fits(24, 8));
        assert!(plain_block_fits(48, 16));
        assert!(plain_block_fits(4096, 16));
        // A 24-byte block is only 8-aligned; a size under 16 may share a class with 8.
        assert!(!plain_block_fits(24, 16));
        assert!(!plain_block_fits(8, 16));
        assert!(!plain_block_fits(64, 32));
        assert!(!plain_block_fits(4096, 4096));
    }
}
