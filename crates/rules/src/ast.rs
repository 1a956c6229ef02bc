//! The syntax tree of a filter: what the text says, before any name is resolved. The checker
//! turns it into the resolved program; nothing here knows about collections.

use std::fmt;

/// A byte range in the source text, for error messages (`start..end`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

impl Span {
    pub fn new(start: usize, end: usize) -> Self {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}..{}", self.start, self.end)
    }
}

/// A boolean expression. `And`/`Or` hold at least two items; a parenthesized single item is
/// stored as the item itself.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Compare(Comparison),
    And(Vec<Expr>),
    Or(Vec<Expr>),
}

impl Expr {
    /// How many comparisons the expression holds (the 200-expression limit counts these).
    pub fn comparison_count(&self) -> usize {
        match self {
            Expr::Compare(_) => 1,
            Expr::And(items) | Expr::Or(items) => items.iter().map(Expr::comparison_count).sum(),
        }
    }
}

/// `left op right`.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    pub left: Operand,
    pub op: Operator,
    pub right: Operand,
    pub span: Span,
}

/// A comparison sign. `any` is the `?` prefix: "at least one item" for multi-valued operands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub kind: OpKind,
    pub any: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    Eq,
    Neq,
    Gt,
    Gte,
    Lt,
    Lte,
    Like,
    NotLike,
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = match self.kind {
            OpKind::Eq => "=",
            OpKind::Neq => "!=",
            OpKind::Gt => ">",
            OpKind::Gte => ">=",
            OpKind::Lt => "<",
            OpKind::Lte => "<=",
            OpKind::Like => "~",
            OpKind::NotLike => "!~",
        };
        if self.any {
            write!(f, "?{sign}")
        } else {
            f.write_str(sign)
        }
    }
}

/// One side of a comparison, or a function argument.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    /// A name such as `title`, `author.name:lower`, `@request.auth.id`, `@now`, `true`.
    Ident { name: String, span: Span },
    /// `-?digits(.digits)?`, kept with its text for messages.
    Number { value: f64, span: Span },
    /// A quoted string, escapes already resolved.
    Text { value: String, span: Span },
    /// `name(args…)`.
    Call {
        name: String,
        args: Vec<Operand>,
        span: Span,
    },
}

impl Operand {
    pub fn span(&self) -> Span {
        match self {
            Operand::Ident { span, .. }
            | Operand::Number { span, .. }
            | Operand::Text { span, .. }
            | Operand::Call { span, .. } => *span,
        }
    }

    /// A short rendering for error messages (`title:lower`, `geoDistance`, `'abc'`).
    pub fn describe(&self) -> String {
        match self {
            Operand::Ident { name, .. } => name.clone(),
            Operand::Number { value, .. } => value.to_string(),
            Operand::Text { value, .. } => format!("{value:?}"),
            Operand::Call { name, .. } => name.clone(),
        }
    }
}
