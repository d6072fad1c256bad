//! Text the host writes about what others sent: cut to a bound, never
//! mid-character.

/// `text` cut to at most `max` bytes on a character boundary, marked with
/// an ellipsis when cut.
pub fn truncated(mut text: String, max: usize) -> String {
    if text.len() > max {
        let cut = (0..=max).rev().find(|&i| text.is_char_boundary(i)).unwrap_or(0);
        text.truncate(cut);
        text.push('…');
    }
    text
}
