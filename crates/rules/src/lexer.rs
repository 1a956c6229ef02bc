//! Splits filter text into tokens with byte spans. Hand-written so that every error points at
//! the exact offending bytes and so that no input can make it loop or recurse.

use crate::ast::{OpKind, Operator, Span};
use crate::error::Error;

/// One token.
#[derive(Debug, Clone, PartialEq)]
pub struct Token {
    pub kind: TokenKind,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq)]
pub enum TokenKind {
    /// A name; may contain dots and colons (`author.name:lower`, `@request.auth.id`).
    Ident(String),
    /// A name immediately followed by `(`: the start of a function call (the `(` is part of
    /// this token).
    Call(String),
    Number(f64),
    Text(String),
    Op(Operator),
    And,
    Or,
    LParen,
    RParen,
    Comma,
}

/// Tokenizes `text`. Whitespace and `//` comments are dropped. A NUL character ends the text,
/// as it ends PocketBase's (observed on 0.40.6: `title='a'` followed by NUL filters as
/// `title='a'`, a NUL inside a string leaves the string unterminated).
pub fn tokenize(text: &str) -> Result<Vec<Token>, Error> {
    let text = text.find('\0').map_or(text, |end| &text[..end]);
    let mut lexer = Lexer {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        tokens: Vec::new(),
    };
    lexer.run()?;
    Ok(lexer.tokens)
}

struct Lexer<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    tokens: Vec<Token>,
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || matches!(b, b'_' | b'@' | b'#')
}

fn is_ident_continue(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':')
}

impl Lexer<'_> {
    fn peek(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.pos + offset).copied()
    }

    fn push(&mut self, kind: TokenKind, start: usize) {
        self.tokens.push(Token {
            kind,
            span: Span::new(start, self.pos),
        });
    }

    fn run(&mut self) -> Result<(), Error> {
        while let Some(b) = self.peek(0) {
            let start = self.pos;
            match b {
                b' ' | b'\t' | b'\n' | b'\r' => self.pos += 1,
                b'/' if self.peek(1) == Some(b'/') => {
                    while let Some(c) = self.peek(0) {
                        if c == b'\n' {
                            break;
                        }
                        self.pos += 1;
                    }
                }
                b'(' => {
                    self.pos += 1;
                    self.push(TokenKind::LParen, start);
                }
                b')' => {
                    self.pos += 1;
                    self.push(TokenKind::RParen, start);
                }
                b',' => {
                    self.pos += 1;
                    self.push(TokenKind::Comma, start);
                }
                b'&' if self.peek(1) == Some(b'&') => {
                    self.pos += 2;
                    self.push(TokenKind::And, start);
                }
                b'|' if self.peek(1) == Some(b'|') => {
                    self.pos += 2;
                    self.push(TokenKind::Or, start);
                }
                b'\'' | b'"' => self.text_literal(b)?,
                b'-' | b'0'..=b'9' => self.number()?,
                b'=' | b'!' | b'>' | b'<' | b'~' | b'?' => self.operator()?,
                b if is_ident_start(b) => self.identifier(),
                _ => {
                    let len = self.text[start..].chars().next().map_or(1, char::len_utf8);
                    return Err(Error::syntax(
                        "unexpected character",
                        Span::new(start, start + len),
                    ));
                }
            }
        }
        Ok(())
    }

    fn identifier(&mut self) {
        let start = self.pos;
        self.pos += 1;
        while self.peek(0).is_some_and(is_ident_continue) {
            self.pos += 1;
        }
        let name = self.text[start..self.pos].to_owned();
        if self.peek(0) == Some(b'(') {
            self.pos += 1;
            self.push(TokenKind::Call(name), start);
        } else {
            self.push(TokenKind::Ident(name), start);
        }
    }

    fn digits(&mut self) -> usize {
        let begin = self.pos;
        while self.peek(0).is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - begin
    }

    /// `-?digits(.digits)?`; anything glued to it (`5.`, `1e3`, `10abc`, `1.2.3`) is an error.
    fn number(&mut self) -> Result<(), Error> {
        let start = self.pos;
        if self.peek(0) == Some(b'-') {
            self.pos += 1;
        }
        if self.digits() == 0 {
            return Err(Error::syntax("invalid number", Span::new(start, self.pos)));
        }
        if self.peek(0) == Some(b'.') {
            self.pos += 1;
            if self.digits() == 0 {
                return Err(Error::syntax("invalid number", Span::new(start, self.pos)));
            }
        }
        if self
            .peek(0)
            .is_some_and(|b| is_ident_continue(b) || matches!(b, b'@' | b'#'))
        {
            return Err(Error::syntax(
                "invalid number",
                Span::new(start, self.pos + 1),
            ));
        }
        let value: f64 = self.text[start..self.pos]
            .parse()
            .map_err(|_| Error::syntax("invalid number", Span::new(start, self.pos)))?;
        self.push(TokenKind::Number(value), start);
        Ok(())
    }

    /// A quoted string. A backslash escapes the next character: `\\`, `\'`, `\"` give the
    /// character itself, `\n`, `\r`, `\t` the control characters, and any other pair stays as
    /// written (both characters), as PocketBase does.
    fn text_literal(&mut self, quote: u8) -> Result<(), Error> {
        let start = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut chars = self.text[self.pos..].char_indices();
        while let Some((offset, c)) = chars.next() {
            if c == quote as char {
                self.pos += offset + 1;
                self.push(TokenKind::Text(value), start);
                return Ok(());
            }
            if c != '\\' {
                value.push(c);
                continue;
            }
            match chars.next() {
                Some((_, '\\')) => value.push('\\'),
                Some((_, '\'')) => value.push('\''),
                Some((_, '"')) => value.push('"'),
                Some((_, 'n')) => value.push('\n'),
                Some((_, 'r')) => value.push('\r'),
                Some((_, 't')) => value.push('\t'),
                Some((_, other)) => {
                    value.push('\\');
                    value.push(other);
                }
                None => break,
            }
        }
        Err(Error::syntax(
            "unterminated text literal",
            Span::new(start, self.text.len()),
        ))
    }

    fn operator(&mut self) -> Result<(), Error> {
        let start = self.pos;
        let any = self.peek(0) == Some(b'?');
        if any {
            self.pos += 1;
        }
        let kind = match (self.peek(0), self.peek(1)) {
            (Some(b'!'), Some(b'=')) => Some((OpKind::Neq, 2)),
            (Some(b'!'), Some(b'~')) => Some((OpKind::NotLike, 2)),
            (Some(b'>'), Some(b'=')) => Some((OpKind::Gte, 2)),
            (Some(b'<'), Some(b'=')) => Some((OpKind::Lte, 2)),
            (Some(b'='), _) => Some((OpKind::Eq, 1)),
            (Some(b'>'), _) => Some((OpKind::Gt, 1)),
            (Some(b'<'), _) => Some((OpKind::Lt, 1)),
            (Some(b'~'), _) => Some((OpKind::Like, 1)),
            _ => None,
        };
        let Some((kind, len)) = kind else {
            return Err(Error::syntax(
                "invalid operator",
                Span::new(start, self.pos + 1),
            ));
        };
        self.pos += len;
        self.push(TokenKind::Op(Operator { kind, any }), start);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<TokenKind> {
        tokenize(text)
            .expect("tokenizes")
            .into_iter()
            .map(|t| t.kind)
            .collect()
    }

    #[test]
    fn a_nul_character_ends_the_text() {
        assert_eq!(kinds("a = 'x'\0 || b = 1"), kinds("a = 'x'"));
        assert!(tokenize("a = '\0'").is_err());
        assert!(tokenize("\0a = 1").is_ok_and(|tokens| tokens.is_empty()));
        assert!(crate::parser::parse("\0a = 1").is_err());
    }

    #[test]
    fn every_operator_lexes() {
        let all = "= != > >= < <= ~ !~ ?= ?!= ?> ?>= ?< ?<= ?~ ?!~";
        let ops: Vec<String> = tokenize(all)
            .expect("ok")
            .into_iter()
            .map(|t| match t.kind {
                TokenKind::Op(op) => op.to_string(),
                other => panic!("not an operator: {other:?}"),
            })
            .collect();
        assert_eq!(ops.join(" "), all);
    }

    #[test]
    fn escapes_follow_pocketbase() {
        assert_eq!(
            kinds(r#"'a\'b' "c\"d" 'x\\' 'q\q' 'n\nt\t' "s\'""#),
            vec![
                TokenKind::Text("a'b".into()),
                TokenKind::Text("c\"d".into()),
                TokenKind::Text("x\\".into()),
                TokenKind::Text("q\\q".into()),
                TokenKind::Text("n\nt\t".into()),
                TokenKind::Text("s'".into()),
            ]
        );
    }

    #[test]
    fn numbers_are_strict() {
        assert_eq!(
            kinds("-2.5 007"),
            vec![TokenKind::Number(-2.5), TokenKind::Number(7.0)]
        );
        for bad in [".5", "5.", "- 5", "1e3", "10abc", "1.2.3", "+5", "-"] {
            assert!(tokenize(bad).is_err(), "{bad} should fail");
        }
    }

    #[test]
    fn comments_calls_and_spans() {
        let tokens = tokenize("geoDistance(a, 1) // tail\n&& x.y:lower").expect("ok");
        assert_eq!(tokens[0].kind, TokenKind::Call("geoDistance".into()));
        assert_eq!(tokens[0].span, Span::new(0, 12));
        assert_eq!(tokens[5].kind, TokenKind::And);
        assert_eq!(tokens[6].kind, TokenKind::Ident("x.y:lower".into()));
        assert_eq!(tokens[6].span, Span::new(29, 38));
    }

    #[test]
    fn errors_carry_spans() {
        let err = tokenize("title = 'abc").expect_err("unterminated");
        assert_eq!(err.span, Some(Span::new(8, 12)));
        let err = tokenize("a = 1 & b").expect_err("single ampersand");
        assert_eq!(err.span, Some(Span::new(6, 7)));
        let err = tokenize("a ?? 1").expect_err("bad op");
        assert_eq!(err.span, Some(Span::new(2, 4)));
    }
}
