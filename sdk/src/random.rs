//! Randomness from the host, for codes and ids a caller must not guess.

use crate::backend;

/// A random 64-bit number.
pub fn u64() -> u64 {
    backend::random_u64()
}

/// A random code of `len` characters from an alphabet without look-alikes
/// (no 0/O, 1/I/L), the kind a person can read out over the phone.
pub fn code(len: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKMNPQRSTUVWXYZ23456789";
    let mut out = String::with_capacity(len);
    let mut bits = 0u64;
    let mut left = 0;
    while out.len() < len {
        if left == 0 {
            bits = u64();
            left = 12; // 12 draws of 5 bits each from 64 bits
        }
        // 31 symbols: reject the 32nd value instead of skewing the first one.
        let v = (bits & 31) as usize;
        bits >>= 5;
        left -= 1;
        if v < ALPHABET.len() {
            out.push(ALPHABET[v] as char);
        }
    }
    out
}
