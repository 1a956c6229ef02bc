//! Turns tokens into an [`Expr`]. Parentheses are handled with an explicit stack rather than
//! recursion, so `((((…` of any depth cannot overflow the stack; redundant parentheses
//! collapse, which keeps the tree's depth bounded by the number of comparisons.
//!
//! `&&` binds tighter than `||`: `a || b && c` is `a || (b && c)`.

use crate::ast::{Comparison, Expr, Operand, Span};
use crate::error::{Error, ErrorKind};
use crate::lexer::{Token, TokenKind, tokenize};

/// The longest filter or rule accepted, in bytes.
pub const MAX_LEN: usize = 3500;
/// The most comparisons one expression may hold.
pub const MAX_EXPRESSIONS: usize = 200;
/// How deeply function calls may nest (`f(g(h(x)))` is the deepest).
pub const MAX_CALL_DEPTH: usize = 3;

/// Parses a whole expression. Empty or whitespace-only text is an error: callers decide what
/// an empty filter or rule means before parsing.
pub fn parse(text: &str) -> Result<Expr, Error> {
    if text.len() > MAX_LEN {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("the expression is longer than {MAX_LEN} bytes"),
            None,
        ));
    }
    let tokens = tokenize(text)?;
    Parser {
        tokens,
        pos: 0,
        end: text.len(),
        comparisons: 0,
    }
    .expression()
}

#[derive(Clone, Copy, PartialEq)]
enum Join {
    And,
    Or,
}

/// Items of one parenthesized level, in order, with the joins between them.
struct Frame {
    items: Vec<Expr>,
    joins: Vec<Join>,
    open: Span,
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    end: usize,
    comparisons: usize,
}

impl Parser {
    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.pos).cloned();
        if token.is_some() {
            self.pos += 1;
        }
        token
    }

    fn eof_span(&self) -> Span {
        Span::new(self.end, self.end)
    }

    fn expression(&mut self) -> Result<Expr, Error> {
        let mut stack = vec![Frame {
            items: Vec::new(),
            joins: Vec::new(),
            open: Span::new(0, 0),
        }];
        let mut expect_item = true;
        loop {
            let token = self.next();
            if expect_item {
                match token {
                    Some(Token {
                        kind: TokenKind::LParen,
                        span,
                    }) => stack.push(Frame {
                        items: Vec::new(),
                        joins: Vec::new(),
                        open: span,
                    }),
                    Some(token) => {
                        let comparison = self.comparison(token)?;
                        if let Some(frame) = stack.last_mut() {
                            frame.items.push(Expr::Compare(comparison));
                        }
                        expect_item = false;
                    }
                    None => {
                        return Err(Error::syntax(
                            "invalid or incomplete expression",
                            self.eof_span(),
                        ));
                    }
                }
                continue;
            }
            match token {
                Some(Token {
                    kind: TokenKind::And,
                    ..
                }) => {
                    push_join(&mut stack, Join::And);
                    expect_item = true;
                }
                Some(Token {
                    kind: TokenKind::Or,
                    ..
                }) => {
                    push_join(&mut stack, Join::Or);
                    expect_item = true;
                }
                Some(Token {
                    kind: TokenKind::RParen,
                    span,
                }) => {
                    if stack.len() < 2 {
                        return Err(Error::syntax("unbalanced closing parenthesis", span));
                    }
                    let Some(frame) = stack.pop() else {
                        return Err(Error::syntax("unbalanced closing parenthesis", span));
                    };
                    let group = build(frame);
                    if let Some(parent) = stack.last_mut() {
                        parent.items.push(group);
                    }
                }
                Some(token) => {
                    return Err(Error::syntax("expected && or ||", token.span));
                }
                None => {
                    if stack.len() > 1 {
                        let open = stack.last().map_or(self.eof_span(), |f| f.open);
                        return Err(Error::syntax("unclosed parenthesis", open));
                    }
                    let Some(root) = stack.pop() else {
                        return Err(Error::syntax("empty expression", self.eof_span()));
                    };
                    return Ok(build(root));
                }
            }
        }
    }

    /// `operand SIGN operand`, starting at `first`.
    fn comparison(&mut self, first: Token) -> Result<Comparison, Error> {
        let left = self.operand(first, 1)?;
        let op = match self.next() {
            Some(Token {
                kind: TokenKind::Op(op),
                ..
            }) => op,
            Some(token) => return Err(Error::syntax("expected a comparison sign", token.span)),
            None => {
                return Err(Error::syntax("expected a comparison sign", self.eof_span()));
            }
        };
        let Some(token) = self.next() else {
            return Err(Error::syntax("missing right operand", self.eof_span()));
        };
        let right = self.operand(token, 1)?;
        self.comparisons += 1;
        if self.comparisons > MAX_EXPRESSIONS {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("the expression has more than {MAX_EXPRESSIONS} comparisons"),
                Some(left.span()),
            ));
        }
        let span = left.span().to(right.span());
        Ok(Comparison {
            left,
            op,
            right,
            span,
        })
    }

    /// An operand; `depth` is the call depth it would have if it is a call.
    fn operand(&mut self, token: Token, depth: usize) -> Result<Operand, Error> {
        match token.kind {
            TokenKind::Ident(name) => Ok(Operand::Ident {
                name,
                span: token.span,
            }),
            TokenKind::Number(value) => Ok(Operand::Number {
                value,
                span: token.span,
            }),
            TokenKind::Text(value) => Ok(Operand::Text {
                value,
                span: token.span,
            }),
            TokenKind::Call(name) => {
                if depth > MAX_CALL_DEPTH {
                    return Err(Error::new(
                        ErrorKind::Syntax,
                        format!("function calls nest deeper than {MAX_CALL_DEPTH} levels"),
                        Some(token.span),
                    ));
                }
                self.call(name, token.span, depth)
            }
            _ => Err(Error::syntax("expected an operand", token.span)),
        }
    }

    /// The arguments of a call whose `name(` was already read. A trailing comma is allowed.
    fn call(&mut self, name: String, start: Span, depth: usize) -> Result<Operand, Error> {
        let mut args = Vec::new();
        loop {
            let Some(token) = self.next() else {
                return Err(Error::syntax("unclosed function call", start));
            };
            if token.kind == TokenKind::RParen {
                return Ok(Operand::Call {
                    name,
                    args,
                    span: start.to(token.span),
                });
            }
            args.push(self.operand(token, depth + 1)?);
            match self.next() {
                Some(Token {
                    kind: TokenKind::Comma,
                    ..
                }) => {}
                Some(Token {
                    kind: TokenKind::RParen,
                    span,
                }) => {
                    return Ok(Operand::Call {
                        name,
                        args,
                        span: start.to(span),
                    });
                }
                Some(token) => return Err(Error::syntax("expected , or )", token.span)),
                None => return Err(Error::syntax("unclosed function call", start)),
            }
        }
    }
}

fn push_join(stack: &mut [Frame], join: Join) {
    if let Some(frame) = stack.last_mut() {
        frame.joins.push(join);
    }
}

/// Folds one level's items into `Or` of `And`s, flattening nested groups of the same kind.
fn build(frame: Frame) -> Expr {
    let mut ors: Vec<Expr> = Vec::new();
    let mut ands: Vec<Expr> = Vec::new();
    let mut joins = frame.joins.into_iter();
    for item in frame.items {
        push_flat(&mut ands, item, true);
        if joins.next() == Some(Join::Or) {
            push_flat(&mut ors, fold(std::mem::take(&mut ands), true), false);
        }
    }
    push_flat(&mut ors, fold(ands, true), false);
    fold(ors, false)
}

fn push_flat(into: &mut Vec<Expr>, item: Expr, and: bool) {
    match item {
        Expr::And(items) if and => into.extend(items),
        Expr::Or(items) if !and => into.extend(items),
        other => into.push(other),
    }
}

fn fold(mut items: Vec<Expr>, and: bool) -> Expr {
    if items.len() == 1
        && let Some(only) = items.pop()
    {
        return only;
    }
    if and {
        Expr::And(items)
    } else {
        Expr::Or(items)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering: comparisons as `l op r`, groups in brackets.
    fn show(expr: &Expr) -> String {
        match expr {
            Expr::Compare(c) => format!("{} {} {}", c.left.describe(), c.op, c.right.describe()),
            Expr::And(items) => format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(" && ")
            ),
            Expr::Or(items) => format!(
                "[{}]",
                items.iter().map(show).collect::<Vec<_>>().join(" || ")
            ),
        }
    }

    fn ok(text: &str) -> String {
        show(&parse(text).expect(text))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(ok("a = 1 || b = 2 && c = 3"), "[a = 1 || [b = 2 && c = 3]]");
        assert_eq!(
            ok("(a = 1 || b = 2) && c = 3"),
            "[[a = 1 || b = 2] && c = 3]"
        );
        assert_eq!(
            ok("a = 1 && b = 2 || c = 3 && d = 4"),
            "[[a = 1 && b = 2] || [c = 3 && d = 4]]"
        );
        assert_eq!(
            ok("((a = 1)) && (b = 2 && c = 3)"),
            "[a = 1 && b = 2 && c = 3]"
        );
    }

    #[test]
    fn calls_and_operands() {
        assert_eq!(
            ok("geoDistance(a.lon, a.lat, 1, -2.5,) < 'x'"),
            "geoDistance < \"x\""
        );
        let Expr::Compare(c) = parse("strftime('%Y', d) = '2024'").expect("ok") else {
            panic!("comparison expected");
        };
        let Operand::Call { name, args, span } = c.left else {
            panic!("call expected");
        };
        assert_eq!(
            (name.as_str(), args.len(), span),
            ("strftime", 2, Span::new(0, 17))
        );
        assert!(parse("strftime('%Y', strftime('%Y', strftime('%Y', d))) = 1").is_ok());
        let err = parse("strftime('%Y', strftime('%Y', strftime('%Y', strftime('%Y', d)))) = 1")
            .expect_err("too deep");
        assert_eq!(err.kind, ErrorKind::Syntax);
    }

    #[test]
    fn malformed_input_is_rejected_with_spans() {
        for bad in [
            " ",
            "title",
            "title ==  'x'",
            "a = 'a' b = 'b'",
            "a = 1 &&",
            "&& a = 1",
            "()",
            "(a = 1",
            "a = 1)",
            "a = 1 || ()",
            "a =",
            "= 1",
            "f(1 = 2",
            "f(,) = 1",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} should fail");
        }
        let err = parse("a = 1 && (b = 2").expect_err("unclosed");
        assert_eq!(err.span, Some(Span::new(9, 10)));
        let err = parse("a = 1 b = 2").expect_err("no join");
        assert_eq!(err.span, Some(Span::new(6, 7)));
    }

    #[test]
    fn limits_match_pocketbase() {
        let many = |n: usize| vec!["views = 1"; n].join(" && ");
        assert!(parse(&many(200)).is_ok());
        assert_eq!(parse(&many(201)).expect_err("201").kind, ErrorKind::Limit);
        let long = format!("title = '{}'", "x".repeat(MAX_LEN - 10));
        assert_eq!(long.len(), MAX_LEN);
        assert!(parse(&long).is_ok());
        let too_long = format!("title = '{}'", "x".repeat(MAX_LEN - 9));
        assert_eq!(parse(&too_long).expect_err("long").kind, ErrorKind::Limit);
    }

    #[test]
    fn deep_parentheses_do_not_overflow() {
        let depth = 1745;
        let text = format!("{}a = 1{}", "(".repeat(depth), ")".repeat(depth));
        assert_eq!(ok(&text), "a = 1");
        let unclosed = "(".repeat(MAX_LEN);
        assert!(parse(&unclosed).is_err());
    }
}
