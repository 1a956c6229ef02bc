//! Route patterns of `routerAdd`, matched as Go 1.22's `ServeMux` matches them (PocketBase's
//! router): `{name}` is one decoded segment, `{name...}` the rest (possibly empty), a trailing
//! `/` a prefix, `{$}` the exact end. A more specific pattern wins over a less specific one.

use std::collections::HashMap;

/// One segment of a pattern.
#[derive(Debug, Clone, PartialEq)]
enum Segment {
    Literal(String),
    Param(String),
    Rest(String),
}

/// A compiled `routerAdd` path.
#[derive(Debug, Clone)]
pub struct Pattern {
    segments: Vec<Segment>,
    /// A trailing slash without `{$}`: matches any path under it.
    prefix: bool,
    /// `{$}`: the path ends exactly here, slash included.
    exact_slash: bool,
    /// What every path the pattern matches starts with, as long as the path has no `%`: the
    /// leading literal segments with their slashes (`/bench/hello/` for
    /// `/bench/hello/{name}`). Most requests match no script route, and a path that does not
    /// start with it is told apart by one comparison, before its segments are taken.
    lead: String,
}

/// Why a pattern is refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("invalid route pattern {pattern:?}: {reason}")]
pub struct PatternError {
    pub pattern: String,
    pub reason: &'static str,
}

impl Pattern {
    pub fn parse(text: &str) -> Result<Pattern, PatternError> {
        let fail = |reason| PatternError {
            pattern: text.to_owned(),
            reason,
        };
        // PocketBase also accepts "METHOD /path" in the path; the method is given apart.
        let path = text.split_once(' ').map_or(text, |(_, p)| p.trim());
        if !path.starts_with('/') {
            return Err(fail("a path must start with /"));
        }
        let mut segments = Vec::new();
        let mut prefix = false;
        let mut exact_slash = false;
        let parts: Vec<&str> = path[1..].split('/').collect();
        for (i, part) in parts.iter().enumerate() {
            let last = i + 1 == parts.len();
            if part.is_empty() {
                if last {
                    prefix = !segments.is_empty() || path == "/";
                    continue;
                }
                return Err(fail("empty segment"));
            }
            if *part == "{$}" {
                if !last {
                    return Err(fail("{$} must end the pattern"));
                }
                exact_slash = true;
                continue;
            }
            if let Some(inner) = part.strip_prefix('{').and_then(|p| p.strip_suffix('}')) {
                if let Some(name) = inner.strip_suffix("...") {
                    if !last {
                        return Err(fail("a {name...} wildcard must end the pattern"));
                    }
                    segments.push(Segment::Rest(name.to_owned()));
                } else {
                    segments.push(Segment::Param(inner.to_owned()));
                }
                continue;
            }
            if part.contains('{') || part.contains('}') {
                return Err(fail("a wildcard must be a whole segment"));
            }
            segments.push(Segment::Literal((*part).to_owned()));
        }
        if path == "/" {
            prefix = true;
        }
        let mut lead = String::from("/");
        for (at, segment) in segments.iter().enumerate() {
            match segment {
                Segment::Literal(text) => {
                    if at > 0 {
                        lead.push('/');
                    }
                    lead.push_str(text);
                }
                // A wildcard after a literal takes a segment after the literal's slash.
                Segment::Param(_) | Segment::Rest(_) => {
                    if at > 0 {
                        lead.push('/');
                    }
                    break;
                }
            }
        }
        Ok(Pattern {
            segments,
            prefix,
            exact_slash,
            lead,
        })
    }

    /// How specific the pattern is: more literal segments first, then fewer wildcards.
    pub fn specificity(&self) -> (usize, usize, bool) {
        let literals = self
            .segments
            .iter()
            .filter(|s| matches!(s, Segment::Literal(_)))
            .count();
        let anchored = !self.prefix && !matches!(self.segments.last(), Some(Segment::Rest(_)));
        (literals, self.segments.len(), anchored)
    }

    /// The path values when `path` matches.
    ///
    /// The path's segments are taken one at a time, not split into a list first: every
    /// request is matched against every route, most match none, and a differing literal then
    /// ends the check before anything is allocated.
    pub fn matches(&self, path: &str) -> Option<HashMap<String, String>> {
        // A literal may match an escaped segment: only a path without `%` can be refused by
        // its start alone.
        if !path.starts_with(&self.lead) && !path.contains('%') {
            return None;
        }
        let rest = path.strip_prefix('/')?;
        // What follows the segments taken so far; `None` once there is no segment left (an
        // empty path has none; `a/` has two, the second empty).
        let mut remaining = (!rest.is_empty()).then_some(rest);
        let mut values = HashMap::new();
        for (at, segment) in self.segments.iter().enumerate() {
            match segment {
                Segment::Rest(name) => {
                    // `/a/{rest...}` needs the slash after `a` (Go redirects `/a` to `/a/`);
                    // `/{rest...}` matches `/`.
                    if remaining.is_none() && at > 0 {
                        return None;
                    }
                    values.insert(name.clone(), decode(remaining.unwrap_or_default()));
                    return Some(values);
                }
                Segment::Literal(text) => {
                    let part = next_segment(&mut remaining)?;
                    let same = if part.contains('%') {
                        decode(part) == *text
                    } else {
                        part == text
                    };
                    if !same {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let part = next_segment(&mut remaining)?;
                    if part.is_empty() {
                        return None;
                    }
                    values.insert(name.clone(), decode(part));
                }
            }
        }
        if self.exact_slash {
            // `/a/{$}` is `/a/` exactly: one more segment, empty.
            return (remaining == Some("")).then_some(values);
        }
        if self.prefix {
            // More segments, or the root pattern `/`, which matches every path.
            return (remaining.is_some() || self.segments.is_empty()).then_some(values);
        }
        remaining.is_none().then_some(values)
    }
}

/// The next segment of `remaining` (as `str::split('/')` would give it), and what follows it.
fn next_segment<'a>(remaining: &mut Option<&'a str>) -> Option<&'a str> {
    let text = remaining.take()?;
    match text.split_once('/') {
        Some((segment, rest)) => {
            *remaining = Some(rest);
            Some(segment)
        }
        None => Some(text),
    }
}

fn decode(text: &str) -> String {
    percent_decode(text)
}

/// Percent-decoding of a path segment (`%20` → space); invalid escapes stay as written.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && i + 2 < bytes.len()
            && let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl crate::state::scripts::PathPattern for Pattern {
    fn matches(&self, path: &str) -> Option<HashMap<String, String>> {
        Pattern::matches(self, path)
    }

    fn is_subtree(&self) -> bool {
        !self.segments.is_empty()
            && (self.prefix || matches!(self.segments.last(), Some(Segment::Rest(_))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pattern: &str, path: &str) -> Option<Vec<(String, String)>> {
        let mut v: Vec<_> = Pattern::parse(pattern)
            .expect("valid pattern")
            .matches(path)?
            .into_iter()
            .collect();
        v.sort();
        Some(v)
    }

    /// The matcher as it was before it took segments one at a time: the path split into a
    /// list first. The two must agree everywhere.
    fn matches_by_list(pattern: &Pattern, path: &str) -> Option<HashMap<String, String>> {
        let rest = path.strip_prefix('/')?;
        let parts: Vec<&str> = if rest.is_empty() {
            Vec::new()
        } else {
            rest.split('/').collect()
        };
        let mut values = HashMap::new();
        for (i, segment) in pattern.segments.iter().enumerate() {
            match segment {
                Segment::Rest(name) => {
                    if i > 0 && parts.len() <= i {
                        return None;
                    }
                    let tail = parts.get(i..).map(|p| p.join("/")).unwrap_or_default();
                    values.insert(name.clone(), decode(&tail));
                    return Some(values);
                }
                Segment::Literal(text) => {
                    if decode(parts.get(i)?) != *text {
                        return None;
                    }
                }
                Segment::Param(name) => {
                    let part = parts.get(i)?;
                    if part.is_empty() {
                        return None;
                    }
                    values.insert(name.clone(), decode(part));
                }
            }
        }
        let n = pattern.segments.len();
        if pattern.exact_slash {
            return (parts.len() == n + 1 && parts[n].is_empty()).then_some(values);
        }
        if pattern.prefix {
            return (parts.len() > n || (n == 0 && parts.is_empty())).then_some(values);
        }
        (parts.len() == n).then_some(values)
    }

    #[test]
    fn segment_at_a_time_matching_agrees_with_splitting_the_path() {
        let patterns = [
            "/",
            "/a",
            "/a/",
            "/a/{$}",
            "/a/b",
            "/a/{x}",
            "/a/{x}/",
            "/{x}",
            "/{x}/b",
            "/a/{x}/{y}",
            "/a/{rest...}",
            "/{rest...}",
            "/a/b/{$}",
            "/a%2Fb",
            "/caf%C3%A9",
            "/ab/cd/{x}",
            "/ab/{x}/cd",
            "/ab/cd/{rest...}",
        ];
        let paths = [
            "",
            "/",
            "//",
            "/a",
            "/a/",
            "/a//",
            "/a/b",
            "/a/b/",
            "/a/b/c",
            "/a//b",
            "/b",
            "/b/b",
            "/a/%62",
            "/a%2Fb",
            "/caf%C3%A9",
            "/café",
            "/a/b/c/d/",
            "a/b",
            "/x/y/z",
            "/ab/cd",
            "/ab/cd/",
            "/ab/cde/f",
            "/ab/cd/e",
            "/a%62/cd/e",
            "/ab/c%64/e/f",
            "/ab/e/cd",
            "/abc/e/cd",
        ];
        let mut compared = 0;
        for pattern in patterns {
            let Ok(parsed) = Pattern::parse(pattern) else {
                continue;
            };
            for path in paths {
                assert_eq!(
                    parsed.matches(path),
                    matches_by_list(&parsed, path),
                    "{pattern} against {path:?}"
                );
                compared += 1;
            }
        }
        assert!(
            compared >= 13 * paths.len(),
            "too few patterns parsed: {compared}"
        );
    }

    #[test]
    fn patterns_match_like_go_serve_mux() {
        assert_eq!(
            values("/p/{name}", "/p/john%20doe"),
            Some(vec![("name".into(), "john doe".into())])
        );
        assert_eq!(values("/p/{name}", "/p/"), None);
        assert_eq!(values("/p/{name}", "/p/a/b"), None);
        assert_eq!(
            values("/f/{path...}", "/f/a/b.txt"),
            Some(vec![("path".into(), "a/b.txt".into())])
        );
        assert_eq!(
            values("/f/{path...}", "/f/"),
            Some(vec![("path".into(), "".into())])
        );
        // Without the slash, the subtree's root is not matched (Go redirects it to the slash).
        assert_eq!(values("/f/{path...}", "/f"), None);
        assert_eq!(
            values("/{path...}", "/"),
            Some(vec![("path".into(), "".into())])
        );
        assert_eq!(values("/a/", "/a/x/y"), Some(vec![]));
        assert_eq!(values("/a/{$}", "/a/"), Some(vec![]));
        assert_eq!(values("/a/{$}", "/a/x"), None);
        assert_eq!(values("/hello", "/hello"), Some(vec![]));
        assert_eq!(values("/hello", "/hello/"), None);
        // Literal segments compare decoded, with or without an escape to decode.
        assert_eq!(values("/café/x", "/caf%C3%A9/x"), Some(vec![]));
        assert_eq!(values("/café/x", "/café/x"), Some(vec![]));
        assert_eq!(values("/hello/x", "/hell%6F/x"), Some(vec![]));
        assert_eq!(values("/hello/x", "/hellp/x"), None);
        assert_eq!(values("/hello/x", "/hell%70/x"), None);
        assert!(Pattern::parse("nope").is_err());
        assert_eq!(values("/", "/"), Some(vec![]));
        assert_eq!(values("/", "/any/thing"), Some(vec![]));
        assert_eq!(values("/a/", "/a"), None);
        assert_eq!(values("/a/", "/a/"), Some(vec![]));
        assert!(Pattern::parse("/a/{x...}/b").is_err());
        assert!(
            Pattern::parse("/a/b").expect("valid pattern").specificity()
                > Pattern::parse("/a/{x}")
                    .expect("valid pattern")
                    .specificity()
        );
    }
}
