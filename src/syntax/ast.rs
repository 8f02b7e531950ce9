//! The typed syntax tree. Every node carries the span it was parsed from, so
//! diagnostics raised long after parsing still point into the source.

use crate::diag::Span;

/// A value with the source span it came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Spanned<T> {
    pub node: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(node: T, span: Span) -> Self {
        Spanned { node, span }
    }
}

pub type Ident = Spanned<String>;
pub type Expr = Spanned<ExprKind>;
pub type Stmt = Spanned<StmtKind>;

/// A parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    pub stmts: Vec<Stmt>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum StmtKind {
    Use(Spanned<String>),
    Let(Ident, Expr),
    Fn(FnDef),
    Set(Ident, Expr),
    Sweep(Vec<Binding>, Vec<Stmt>),
    Eval(Ident, Expr),
    Save(Expr, Expr),
    /// `plot KIND(ARGS) to PATH`.
    Plot(PlotStmt),
}

/// A figure: its kind, its arguments (columns named as bare names) and
/// its file.
#[derive(Clone, Debug, PartialEq)]
pub struct PlotStmt {
    pub kind: Ident,
    pub args: Vec<Arg>,
    pub target: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<Param>,
    pub body: Expr,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Param {
    pub name: Ident,
    pub default: Option<Expr>,
}

/// One `V in DOMAIN` of a sweep.
#[derive(Clone, Debug, PartialEq)]
pub struct Binding {
    pub var: Ident,
    pub domain: Domain,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    /// Any expression that evaluates to a list.
    List(Expr),
    Range {
        start: Expr,
        end: Expr,
        inclusive: bool,
        step: Option<Expr>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
}

impl BinOp {
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Num(f64),
    Str(Vec<StrPart>),
    Var(String),
    List(Vec<Expr>),
    Call(Ident, Vec<Arg>),
    Neg(Box<Expr>),
    Binary(BinOp, Box<Expr>, Box<Expr>),
}

#[derive(Clone, Debug, PartialEq)]
pub enum StrPart {
    Lit(String),
    /// `{name}`: the span covers the name.
    Interp(Ident),
}

impl StrPart {
    /// The text of a string that interpolates nothing (the parser joins
    /// adjacent literal pieces, so there is at most one).
    pub fn literal(parts: &[StrPart]) -> Option<&str> {
        match parts {
            [] => Some(""),
            [StrPart::Lit(s)] => Some(s),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: Option<Ident>,
    pub value: Expr,
}
