//! SQLite's `LIKE`, for the places where SQLite's own cannot be used as it is: in memory (rules
//! and realtime filters decided without the database) and inside SQLite as the
//! `plinth_like` function, which unlike the built-in one stops when its caller's deadline
//! passes. One `LIKE` of SQLite's is a single step of its virtual machine, so a deadline
//! cannot interrupt it, and its cost is the text's length times the pattern's: a 3.5 KB
//! filter pattern against a 1 MiB text took 3.6 s in one call.
//!
//! The answer is SQLite's for every input: ASCII letters match either case (other characters
//! only themselves), `_` is one character, `%` any run of them, and the escape character
//! makes the next pattern character literal (an escape at the very end matches nothing).
//! Characters are read as SQLite reads them, malformed UTF-8 included, and both strings end
//! at a NUL byte as SQLite's C strings do. The escape character disables the wildcard it
//! equals (`ESCAPE '%'` makes `%%` a literal `%`).

/// The matcher gave up: its budget said stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GaveUp;

/// SQLite's limit on a pattern's length in bytes (`SQLITE_LIMIT_LIKE_PATTERN_LENGTH`); a longer
/// pattern is an error there.
pub const MAX_PATTERN_BYTES: usize = 50_000;

/// How many steps pass between two calls of the budget.
const STEPS_PER_CHECK: u32 = 1 << 16;

#[derive(Clone, Copy)]
enum Token {
    /// `%`.
    Any,
    /// `_`.
    One,
    Char(u32),
}

/// A LIKE pattern read once, to match many texts.
pub struct Pattern {
    tokens: Vec<Token>,
    /// An escape with nothing after it: the pattern matches nothing (every way through it
    /// reaches the dangling escape).
    dead: bool,
}

impl Pattern {
    /// `pattern` with `escape` as the ESCAPE character (`None`: no escape).
    pub fn new(pattern: &[u8], escape: Option<u32>) -> Pattern {
        let pattern = until_nul(pattern);
        // The escape character, when it is `%` or `_`, takes that wildcard's place.
        let any = Some(u32::from(b'%')).filter(|c| Some(*c) != escape);
        let one = Some(u32::from(b'_')).filter(|c| Some(*c) != escape);
        let mut tokens = Vec::with_capacity(pattern.len());
        let mut dead = false;
        let mut i = 0;
        while i < pattern.len() {
            let (c, next) = read(pattern, i);
            i = next;
            if Some(c) == any {
                tokens.push(Token::Any);
            } else if Some(c) == escape {
                if i < pattern.len() {
                    let (literal, next) = read(pattern, i);
                    i = next;
                    tokens.push(Token::Char(literal));
                } else {
                    dead = true;
                }
            } else if Some(c) == one {
                tokens.push(Token::One);
            } else {
                tokens.push(Token::Char(c));
            }
        }
        Pattern { tokens, dead }
    }

    /// Whether `text` is LIKE this pattern. `keep_going` is asked every 65,536 steps; when it
    /// answers `false`, the match stops with [`GaveUp`]. A step is one character compared;
    /// after a `%`, the next place its following character occurs is found with a byte
    /// search, as SQLite does. The work is at most about `text.len() × pattern.len()`
    /// steps, without recursion and without copying the text.
    pub fn matches(
        &self,
        text: &[u8],
        keep_going: &mut dyn FnMut() -> bool,
    ) -> Result<bool, GaveUp> {
        if self.dead {
            return Ok(false);
        }
        // The text ends at its first NUL, found as the match goes rather than by a scan of
        // the whole text first (see [`at_end`]).
        let tokens = &self.tokens;
        let mut steps: u32 = 0;
        let (mut t, mut p) = (0usize, 0usize);
        // The last `%` seen: the token after it, and where in the text its run ends for now.
        let mut star: Option<(usize, usize)> = None;
        loop {
            steps = steps.wrapping_add(1);
            if steps.is_multiple_of(STEPS_PER_CHECK) && !keep_going() {
                return Err(GaveUp);
            }
            if let Some(token) = tokens.get(p) {
                match *token {
                    Token::Any => {
                        p += 1;
                        if p == tokens.len() {
                            // A `%` at the end takes whatever is left.
                            return Ok(true);
                        }
                        // The run starts empty: the token after it is tried here first.
                        match candidate(text, t, tokens[p]) {
                            Some(at) => {
                                star = Some((p, at));
                                t = at;
                            }
                            None => return Ok(false),
                        }
                        continue;
                    }
                    Token::One if !at_end(text, t) => {
                        t = read(text, t).1;
                        p += 1;
                        continue;
                    }
                    Token::Char(c) if !at_end(text, t) => {
                        let (c2, next) = read(text, t);
                        if same(c, c2) {
                            t = next;
                            p += 1;
                            continue;
                        }
                    }
                    _ => {}
                }
            } else if at_end(text, t) {
                return Ok(true);
            }
            // A mismatch: let the last `%` take one more character (up to the next place its
            // following token can match), or fail.
            match star {
                Some((after, run_end)) if !at_end(text, run_end) => {
                    let next = read(text, run_end).1;
                    match candidate(text, next, tokens[after]) {
                        Some(at) => {
                            star = Some((after, at));
                            p = after;
                            t = at;
                        }
                        None => return Ok(false),
                    }
                }
                _ => return Ok(false),
            }
        }
    }
}

/// Whether `text` is LIKE `pattern`: [`Pattern::new`] then [`Pattern::matches`].
pub fn like(
    text: &[u8],
    pattern: &[u8],
    escape: Option<u32>,
    keep_going: &mut dyn FnMut() -> bool,
) -> Result<bool, GaveUp> {
    Pattern::new(pattern, escape).matches(text, keep_going)
}

/// The first place at or after `from` where a run of `%` may end so that `token` matches
/// next, or `None` when there is none. An ASCII character is searched for in either case
/// (ASCII bytes are always characters of their own); a wider one character by character;
/// `_` and `%` match anywhere (`_` needs a character left).
fn candidate(text: &[u8], from: usize, token: Token) -> Option<usize> {
    match token {
        Token::Char(c) if c < 0x80 => {
            let byte = c as u8;
            let rest = text.get(from..)?;
            // The NUL that ends the text stops the search too.
            let at = from
                + memchr::memchr3(
                    byte.to_ascii_lowercase(),
                    byte.to_ascii_uppercase(),
                    0,
                    rest,
                )?;
            (text[at] != 0).then_some(at)
        }
        Token::Char(c) => {
            // Character by character: a byte inside a character is not a place to start.
            let mut at = from;
            while !at_end(text, at) {
                let (c2, next) = read(text, at);
                if c2 == c {
                    return Some(at);
                }
                at = next;
            }
            None
        }
        Token::One => (!at_end(text, from)).then_some(from),
        Token::Any => Some(from),
    }
}

/// Whether the text has ended at `at`: past its bytes, or at a NUL (SQLite's strings are C
/// strings; a NUL is never inside a character as SQLite reads them).
fn at_end(text: &[u8], at: usize) -> bool {
    text.get(at).is_none_or(|byte| *byte == 0)
}

fn until_nul(bytes: &[u8]) -> &[u8] {
    match memchr::memchr(0, bytes) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

/// A pattern character against a text character: equal, or the same ASCII letter.
fn same(pattern: u32, text: u32) -> bool {
    pattern == text
        || (pattern < 0x80 && text < 0x80 && (pattern as u8).eq_ignore_ascii_case(&(text as u8)))
}

/// One character at `at` as SQLite reads it, and where the next starts: an ASCII byte is
/// itself; a lead byte takes every continuation byte after it (however many), and a result
/// that is overlong, a surrogate or U+FFFE/U+FFFF becomes U+FFFD; a stray continuation byte
/// is its own value.
fn read(bytes: &[u8], at: usize) -> (u32, usize) {
    let lead = bytes[at];
    let mut next = at + 1;
    if lead < 0xc0 {
        return (u32::from(lead), next);
    }
    let mut c: u32 = match lead {
        0xc0..=0xdf => u32::from(lead & 0x1f),
        0xe0..=0xef => u32::from(lead & 0x0f),
        0xf0..=0xf7 => u32::from(lead & 0x07),
        0xf8..=0xfb => u32::from(lead & 0x03),
        0xfc..=0xfd => u32::from(lead & 0x01),
        _ => 0,
    };
    while let Some(&byte) = bytes.get(next)
        && byte & 0xc0 == 0x80
    {
        c = (c << 6).wrapping_add(u32::from(byte & 0x3f));
        next += 1;
    }
    if c < 0x80 || c & 0xffff_f800 == 0xd800 || c & 0xffff_fffe == 0xfffe {
        c = 0xfffd;
    }
    (c, next)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text LIKE pattern ESCAPE '\'`, without a budget.
    fn m(text: &str, pattern: &str) -> bool {
        like(
            text.as_bytes(),
            pattern.as_bytes(),
            Some(u32::from(b'\\')),
            &mut || true,
        )
        .unwrap_or(false)
    }

    #[test]
    fn wildcards_escapes_and_case() {
        assert!(m("First Post", "%post%"));
        assert!(m("a_b", r"%a\_b%"));
        assert!(!m("axb", r"%a\_b%"));
        assert!(!m("É", "é"));
        assert!(m("É", "_"));
        assert!(!m("a", "a\\"));
        assert!(!m("a", "%\\"));
        assert!(m("abcabd", "%ab_"));
        assert!(m("", "%"));
        assert!(!m("", "_"));
        assert!(m("50%", r"50\%"));
        assert!(!m("500", r"50\%"));
        assert!(m("aXb", "a%b"));
        assert!(!m("aXbc", "a%b"));
        assert!(m("ab\0zz", "ab"), "strings end at NUL");
    }

    #[test]
    fn an_escape_that_is_a_wildcard_disables_it() {
        let pct = Some(u32::from(b'%'));
        let yes = |t: &str, p: &str| like(t.as_bytes(), p.as_bytes(), pct, &mut || true);
        assert_eq!(yes("%", "%%"), Ok(true));
        assert_eq!(yes("a", "%%"), Ok(false));
        assert_eq!(yes("ab", "a_"), Ok(true));
    }

    #[test]
    fn malformed_utf8_reads_as_sqlite_reads_it() {
        // A lead byte swallows every continuation byte after it; `_` takes all of them.
        assert_eq!(like(b"\xc3\xa9\xa9x", b"_x", None, &mut || true), Ok(true));
        // A stray continuation byte is one character.
        assert_eq!(like(b"\xa9x", b"_x", None, &mut || true), Ok(true));
        assert_eq!(read(b"\xc0\x80", 0), (0xfffd, 2), "overlong");
    }

    #[test]
    fn a_costly_match_stops_when_its_budget_says_so() {
        let text = "a".repeat(1 << 20);
        let pattern = format!("%{}b%", "a".repeat(3000));
        let mut asked = 0;
        let answer = like(text.as_bytes(), pattern.as_bytes(), None, &mut || {
            asked += 1;
            asked < 3
        });
        assert_eq!(answer, Err(GaveUp));
        assert_eq!(asked, 3);
    }
}
