//! The query string of the records endpoints: paging, `skipTotal`, the privileged-reference
//! test of `filter`/`sort` (compiled by [`crate::access`]),
//! `expand` and `fields`, read the way PocketBase reads them (the first occurrence of a
//! repeated parameter wins; malformed values are the generic 400 with no detail).

use domain::AuthContext;

use crate::error::{ApiError, ApiResult};

/// Default and largest page sizes.
pub const DEFAULT_PER_PAGE: u64 = 30;
pub const MAX_PER_PAGE: u64 = 1000;

/// The decoded query string.
#[derive(Debug, Default)]
pub struct QueryParams {
    pairs: Vec<(String, String)>,
}

impl QueryParams {
    /// Decodes `raw` as Go's query parser (hence PocketBase) does: pairs split on `&`, a pair
    /// holding `;` or an escape that is not `%` and two hex digits is dropped (observed on
    /// 0.40.6: `?filter=%zz&sort=title` lists sorted and unfiltered), `+` is a space.
    pub fn parse(raw: Option<&str>) -> Self {
        let pairs = raw
            .map(|raw| raw.split('&').filter_map(decode_pair).collect())
            .unwrap_or_default();
        QueryParams { pairs }
    }

    /// The first value of `name`.
    pub fn first(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Every decoded pair, in order.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// The first value of `name`, or `""`.
    pub fn text(&self, name: &str) -> &str {
        self.first(name).unwrap_or("")
    }
}

/// One `key=value` piece of a query string, decoded; `None` for a piece Go drops.
fn decode_pair(piece: &str) -> Option<(String, String)> {
    if piece.is_empty() || piece.contains(';') {
        return None;
    }
    let (key, value) = piece.split_once('=').unwrap_or((piece, ""));
    Some((unescape(key)?, unescape(value)?))
}

/// Query-string unescaping: `+` is a space, `%` must start two hex digits.
fn unescape(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut at = 0;
    while let Some(&byte) = bytes.get(at) {
        match byte {
            b'%' => {
                let hex = bytes.get(at + 1..at + 3)?;
                if !hex.iter().all(u8::is_ascii_hexdigit) {
                    return None;
                }
                let digits = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(digits, 16).ok()?);
                at += 3;
            }
            b'+' => {
                out.push(b' ');
                at += 1;
            }
            _ => {
                out.push(byte);
                at += 1;
            }
        }
    }
    Some(String::from_utf8_lossy(&out).into_owned())
}

/// Normalized paging of a list request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paging {
    pub page: u64,
    pub per_page: u64,
    pub skip_total: bool,
}

/// `page` (≤ 0 → 1), `perPage` (≤ 0 → 30, capped at 1000) and `skipTotal` (Go `ParseBool`).
pub fn paging(params: &QueryParams) -> ApiResult<Paging> {
    let integer = |name: &str| -> ApiResult<Option<i64>> {
        match params.text(name) {
            "" => Ok(None),
            text => text
                .parse::<i64>()
                .map(Some)
                .map_err(|_| ApiError::bad_request()),
        }
    };
    let page = match integer("page")? {
        Some(n) if n > 0 => n as u64,
        _ => 1,
    };
    let per_page = match integer("perPage")? {
        Some(n) if n > 0 => (n as u64).min(MAX_PER_PAGE),
        _ => DEFAULT_PER_PAGE,
    };
    let skip_total = match params.text("skipTotal") {
        "" => false,
        text => parse_go_bool(text).ok_or_else(ApiError::bad_request)?,
    };
    Ok(Paging {
        page,
        per_page,
        skip_total,
    })
}

/// Go's `strconv.ParseBool`.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// Non-superusers may not reach other collections or the request context from a client
/// filter or sort; PocketBase refuses on the text alone, `filter` before `sort`.
pub fn refuse_privileged_references(filter: &str, sort: &str, auth: &AuthContext) -> ApiResult<()> {
    if auth.is_superuser() {
        return Ok(());
    }
    for text in [filter, sort] {
        if text.contains("@collection.") {
            return Err(ApiError::forbidden(
                "Only superusers can filter by @collection.",
            ));
        }
        if text.contains("@request.") {
            return Err(ApiError::forbidden(
                "Only superusers can filter by @request.",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(raw: &str) -> QueryParams {
        QueryParams::parse(Some(raw))
    }

    #[test]
    fn query_strings_decode_as_go_decodes_them() {
        let pairs = |raw: &str| QueryParams::parse(Some(raw)).pairs().to_vec();
        let owned = |list: &[(&str, &str)]| -> Vec<(String, String)> {
            list.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        };
        assert_eq!(
            pairs("filter=a%3D%27x+y%27&sort=-b&&flag&e="),
            owned(&[
                ("filter", "a='x y'"),
                ("sort", "-b"),
                ("flag", ""),
                ("e", "")
            ])
        );
        // Pairs Go cannot decode, or holding `;`, are dropped; the rest stays.
        assert_eq!(pairs("filter=%zz&sort=title"), owned(&[("sort", "title")]));
        assert_eq!(pairs("sort=-title;x=1&page=2"), owned(&[("page", "2")]));
        assert_eq!(pairs("a=%4&b=%+1&c=%41"), owned(&[("c", "A")]));
        assert_eq!(pairs("%zz=1&k%3D=v"), owned(&[("k=", "v")]));
        assert!(QueryParams::parse(None).pairs().is_empty());
    }

    #[test]
    fn paging_normalizes_like_pocketbase() {
        let paging_of = |raw: &str| paging(&params(raw)).map_err(|e| e.status.as_u16());
        assert_eq!(
            paging_of("page=0&perPage=0"),
            Ok(Paging {
                page: 1,
                per_page: 30,
                skip_total: false
            })
        );
        assert_eq!(
            paging_of("page=-1&perPage=5000&skipTotal=T"),
            Ok(Paging {
                page: 1,
                per_page: 1000,
                skip_total: true
            })
        );
        assert_eq!(
            paging_of("page=%2B2&perPage=&skipTotal=0"),
            Ok(Paging {
                page: 2,
                per_page: 30,
                skip_total: false
            })
        );
        assert_eq!(
            paging_of("page=1&page=abc").map(|p| p.page),
            Ok(1),
            "the first occurrence wins"
        );
        for bad in [
            "page=abc",
            "perPage=1.5",
            "page=1.0",
            "page=+2",
            "page=%202",
            "page=99999999999999999999",
            "skipTotal=yes",
        ] {
            assert_eq!(paging_of(bad), Err(400), "{bad}");
        }
    }

    #[test]
    fn privileged_references_are_refused_filter_first() {
        let guest = AuthContext::Guest;
        let message = |filter: &str, sort: &str| {
            refuse_privileged_references(filter, sort, &guest)
                .err()
                .map(|e| e.message)
        };
        assert_eq!(
            message("@request.a && @collection.b", ""),
            Some("Only superusers can filter by @collection.".into())
        );
        assert_eq!(
            message("@request.a", "@collection.b"),
            Some("Only superusers can filter by @request.".into())
        );
        assert_eq!(
            message("x@request.y", ""),
            Some("Only superusers can filter by @request.".into())
        );
        assert_eq!(message("@REQUEST.a", ""), None);
    }
}
